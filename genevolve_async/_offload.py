"""Parse foreign text on the loop when it is small, in a worker thread when not.

The parsers of model and judge replies are linear, but linear in a megabyte
of Python-level work is still a second of a stalled event loop. Replies of a
few kilobytes (nearly all of them) are parsed in place, where a thread hop
would cost more than the parse.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

__all__ = ["LOOP_PARSE_CHARS", "parse_foreign"]

T = TypeVar("T")

LOOP_PARSE_CHARS = 4_096
"""Text up to this many characters is parsed on the loop.

An ordinary reply of that size parses in well under a millisecond; the worst
hostile one (two thousand tiny ``{}`` objects for the judge) in about
10 ms. Past it, a thread hop (tens of microseconds) is the cheaper risk.
"""


async def parse_foreign(parse: Callable[..., T], text: str | None, *args: Any, **kwargs: Any) -> T:
    """``parse(text, *args, **kwargs)``, moved to a worker thread when the text is large."""
    if text is None or len(text) <= LOOP_PARSE_CHARS:
        return parse(text, *args, **kwargs)
    return await anyio.to_thread.run_sync(functools.partial(parse, text, *args, **kwargs))
