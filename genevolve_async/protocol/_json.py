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
    """The first balanced ``{...}`` in ``text``, respecting strings."""
    closer = "}" if opener == "{" else "]"
    start = text.find(opener)
    while start != -1:
        depth = 0
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
                depth += 1
            elif ch == closer:
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find(opener, start + 1)
    return None


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
