"""Fast JSON helpers (orjson) used on the hot paths."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["dumps", "dumps_bytes", "loads"]


def dumps_bytes(obj: Any) -> bytes:
    """Serialise to compact UTF-8 JSON bytes (non-str keys allowed)."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def dumps(obj: Any) -> str:
    """Serialise to a compact JSON string."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON text or bytes."""
    return orjson.loads(data)
