"""Lenient JSON for model output: code fences, trailing commas, text around."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["JSONRecoveryError", "loads_lenient", "nesting_depth"]

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


class JSONRecoveryError(ValueError):
    """The text holds no JSON we could recover."""


def _strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text


def _first_balanced(text: str, opener: str = "{") -> str | None:
    """The first balanced ``{...}`` in ``text``, respecting strings.

    One pass, whatever the text: the scan starts at the first opener and
    keeps the openers it has not closed yet on a stack. A model reply can be
    tens of kilobytes of unclosed braces; restarting the scan at each opener
    (the obvious way) is quadratic and stalls the event loop for seconds.

    Returns:
        The span from the first opener to its closer when it closes;
        otherwise the earliest-starting balanced span inside; ``None`` when
        nothing closes.
    """
    closer = "}" if opener == "{" else "]"
    start = text.find(opener)
    if start == -1:
        return None
    stack: list[int] = []
    best: tuple[int, int] | None = None
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == opener:
            stack.append(i)
        elif ch == closer and stack:
            begin = stack.pop()
            if not stack:
                return text[begin : i + 1]  # the outermost span closed: done
            if best is None or begin < best[0]:
                best = (begin, i)
    return text[best[0] : best[1] + 1] if best is not None else None


def _try(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        pass
    fixed = _TRAILING_COMMA.sub(r"\1", text)
    if fixed != text:
        try:
            return True, json.loads(fixed)
        except (ValueError, RecursionError):
            pass
    return False, None


def loads_lenient(text: str) -> Any:
    """Parse JSON the way a model tends to write it.

    Tries, in order: the text as is; without a Markdown code fence; without
    trailing commas; the first balanced object inside surrounding prose.

    Raises:
        JSONRecoveryError: nothing parseable was found.
    """
    candidate = _strip_fence(text.strip())
    ok, value = _try(candidate)
    if ok:
        return value
    inner = _first_balanced(candidate)
    if inner is not None and inner != candidate:
        ok, value = _try(inner)
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
