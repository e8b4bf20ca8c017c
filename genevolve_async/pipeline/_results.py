"""Result files written atomically: a reader sees the old file or the new one, never half.

Everything here blocks (file I/O, JSON encoding); async callers run it in a
worker thread.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = ["replace_atomically", "write_json_rows", "write_text"]


def _read_umask() -> int:
    # os.umask can only be read by setting it; do that once, at import
    # (single-threaded), not in the worker threads that write files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()
"""Mode of the files we write: what ``open()`` would give, like the JSONL checkpoints
(``mkstemp`` makes its files 0600)."""


def replace_atomically(dest: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``dest`` through a temporary file in its folder, then rename it into place.

    Args:
        dest: The file to create or replace.
        write: Writes the whole content to the binary file it is given.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), _FILE_MODE)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_rows(dest: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` as one indented JSON array, atomically, streaming row by row.

    Args:
        dest: The file (``results.json`` and the like).
        rows: The rows, in the order they should appear.

    Returns:
        How many rows were written.
    """
    count = 0

    def write(handle: IO[bytes]) -> None:
        nonlocal count
        handle.write(b"[")
        for row in rows:
            encoded = orjson.dumps(row, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
            # Indent each row inside the array; JSON strings never hold a raw
            # newline, so this touches layout only.
            handle.write((b",\n  " if count else b"\n  ") + encoded.replace(b"\n", b"\n  "))
            count += 1
        handle.write(b"\n]\n" if count else b"]\n")

    replace_atomically(dest, write)
    return count


def write_text(dest: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    data = text.encode("utf-8")

    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    replace_atomically(dest, write)
