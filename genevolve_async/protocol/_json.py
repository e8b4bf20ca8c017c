"""Lenient JSON for model and judge output: the one scanner both parsers share.

Models wrap JSON in code fences, leave trailing commas, put prose around it;
judges add single-quoted keys. Everything here is linear in the text by
construction, because the text is foreign and is parsed on the event loop:

- the code fence is peeled with string operations, not a regex (the old
  fence regex backtracked for seconds on a fence followed by newlines);
- the regexes left have no two quantifiers over the same characters side
  by side, so each character is looked at a bounded number of times;
- one pass finds every balanced ``{...}`` span (as a tree), and the spans
  handed to ``json.loads`` add up to at most ``_PARSE_FACTOR`` times the
  text: a span that parses is not looked into, one that does not gives way
  to the spans inside it until the budget is spent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "JSONRecoveryError",
    "drop_trailing_commas",
    "iter_objects",
    "loads_lenient",
    "nesting_depth",
    "strip_fence",
]

_FENCE_TAG = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
# A string body: disjoint alternatives, so no backtracking whatever follows.
_DQ_BODY = re.compile(r'(?:[^"\\]|\\.)*', re.DOTALL)
_SQ_BODY = re.compile(r"(?:[^'\\]|\\.)*", re.DOTALL)
# A trailing comma outside strings: strings are matched (and kept) whole so
# that a comma inside one is never touched. The lookahead after a comma only
# scans the whitespace up to the next character, which no other comma scans.
_STRINGS_OR_TRAILING_COMMA = re.compile(r'("(?:[^"\\]|\\.)*"?)|,(?=\s*[}\]])', re.DOTALL)
_STRINGS_OR_TRAILING_COMMA_SQ = re.compile(
    r"(\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?)|,(?=\s*[}\]])", re.DOTALL
)
_SINGLE_QUOTED_KEY = re.compile(r"'([A-Za-z_][\w ]*)'(\s*:)")
_INTERESTING = re.compile(r'"|\{+|\}+')
_INTERESTING_SQ = re.compile(r"\"|'|\{+|\}+")
_LONG_DIGITS = re.compile(r"[0-9]{19}")
_PARSE_FACTOR = 4
"""``json.loads`` sees at most this many times the text, over all spans tried."""
_PARSE_FLOOR = 4096


class JSONRecoveryError(ValueError):
    """The text holds no JSON we could recover."""


def strip_fence(text: str) -> str:
    """The body of a Markdown code fence that wraps the whole text, else the text.

    A fence is three backticks, an optional language tag, the body, and
    three closing backticks at the very end (whitespace aside).
    """
    stripped = text.strip()
    if len(stripped) < 6 or not stripped.startswith("```") or not stripped.endswith("```"):
        return text
    inner = stripped[3:-3]
    return inner.lstrip(_FENCE_TAG).strip()


def drop_trailing_commas(text: str, *, single_quotes: bool = False) -> str:
    """Remove commas that directly precede ``}`` or ``]``, outside strings."""
    pattern = _STRINGS_OR_TRAILING_COMMA_SQ if single_quotes else _STRINGS_OR_TRAILING_COMMA
    return pattern.sub(lambda m: m.group(1) or "", text)


@dataclass(slots=True)
class _Span:
    start: int
    end: int = 0
    children: list[_Span] = field(default_factory=list)


def _span_tree(text: str, single_quotes: bool, *, first_only: bool = False) -> list[_Span]:
    """Every balanced ``{...}`` span as a forest, in one pass.

    Braces inside double-quoted strings do not count; with ``single_quotes``,
    a single quote opens a string too, but only inside an object, so
    apostrophes in the surrounding prose are harmless. Spans inside an
    opener that never closes are promoted to the top. A run of openers is
    kept as one entry (first index, count, children of its innermost), so a
    megabyte of ``{`` costs one step, not a million.
    """
    interesting = _INTERESTING_SQ if single_quotes else _INTERESTING
    runs: list[tuple[int, list[int], list[_Span]]] = []
    roots: list[_Span] = []
    pos = 0
    while (match := interesting.search(text, pos)) is not None:
        char = match.group()[0]
        if char == '"' or (char == "'" and runs):
            body = (_DQ_BODY if char == '"' else _SQ_BODY).match(text, match.start() + 1)
            pos = body.end() + 1 if body is not None else len(text)
            continue
        pos = match.end()
        if char == "{":
            runs.append((match.start(), [len(match.group())], []))
            continue
        for closer in range(match.start(), pos):
            if not runs:
                break
            first, count, children = runs[-1]
            count[0] -= 1
            span = _Span(start=first + count[0], end=closer + 1, children=children)
            if count[0]:
                runs[-1] = (first, count, [span])  # the next opener out holds it
                continue
            runs.pop()
            (runs[-1][2] if runs else roots).append(span)
            if first_only and not runs:
                return roots  # the first outermost span closed: nothing before it is left
    for _, _, children in runs:  # openers that never closed: their spans come up
        roots.extend(children)
    roots.sort(key=lambda s: s.start)
    return roots


def _loads(text: str) -> Any:
    # orjson first: a tenth of json's cost per call, which matters when a reply
    # holds thousands of tiny objects. json for what orjson refuses and models
    # write (NaN, Infinity, lone surrogates, deep nesting), and for integers of
    # 19 digits or more, which orjson would turn into floats.
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _try(text: str, single_quotes: bool) -> tuple[bool, Any]:
    try:
        return True, _loads(text)
    except (ValueError, RecursionError):
        pass
    fixed = drop_trailing_commas(text, single_quotes=single_quotes)
    candidates = [fixed] if fixed != text else []
    if single_quotes:
        candidates.append(_SINGLE_QUOTED_KEY.sub(r'"\1"\2', fixed))
    for candidate in candidates:
        try:
            return True, _loads(candidate)
        except (ValueError, RecursionError):
            pass
    return False, None


def iter_objects(text: str, *, single_quotes: bool = False, descend: bool = True) -> Iterator[Any]:
    """Values parsed from the balanced ``{...}`` spans of ``text``, in text order.

    A span that parses is yielded whole (the caller can walk inside the
    value); one that does not gives way to the spans inside it when
    ``descend`` is true. The spans tried add up to a bounded multiple of the
    text, so the cost is linear however the braces nest.

    Args:
        text: Foreign text (a model's or a judge's reply).
        single_quotes: Also accept single-quoted strings and keys.
        descend: Look inside spans that do not parse.
    """
    budget = _PARSE_FACTOR * len(text) + _PARSE_FLOOR
    pending = list(reversed(_span_tree(text, single_quotes)))
    while pending:
        span = pending.pop()
        size = span.end - span.start
        if size > budget:
            return
        budget -= size
        ok, value = _try(text[span.start : span.end], single_quotes)
        if ok:
            yield value
        elif descend:
            pending.extend(reversed(span.children))


def loads_lenient(text: str) -> Any:
    """Parse JSON the way a model tends to write it.

    Tries, in order: the text as is; without a Markdown code fence; without
    trailing commas; the first balanced object inside surrounding prose.
    Linear in the length of the text.

    Raises:
        JSONRecoveryError: nothing parseable was found.
    """
    candidate = strip_fence(text.strip())
    ok, value = _try(candidate, False)
    if ok:
        return value
    roots = _span_tree(candidate, False, first_only=True)
    if roots and (roots[0].start, roots[0].end) != (0, len(candidate)):
        ok, value = _try(candidate[roots[0].start : roots[0].end], False)
        if ok:
            return value
    raise JSONRecoveryError("not valid JSON")


def nesting_depth(value: Any, limit: int = 64) -> int:
    """Depth of nested containers in ``value``, counting stops past ``limit``."""
    depth = 0
    frontier = [value]
    while frontier and depth <= limit:
        nxt: list[Any] = []
        for item in frontier:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        if not nxt:
            break
        depth += 1
        frontier = nxt
    return depth
