"""Append-only JSONL checkpoints: one line per finished item, safe against ``kill -9``.

A checkpoint starts with a header line naming the stage and the settings
that shape its results, then holds one envelope line per finished item::

    {"genevolve_checkpoint": 1, "stage": "run", "settings": {...}}
    {"id": "12", "index": 12, "ok": true, "record": {...}}

In a chain of stages a line also carries ``up``: the previous stage's line
it was made from.

Each line is written with one ``write`` and flushed before the next item, so
a killed process leaves at most a torn last line, which the next run
detects and cuts off before appending. An id may appear again when a failed
item is retried: the last line wins.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiofiles
import anyio
import anyio.to_thread
import orjson

from .._errors import ConfigurationError

__all__ = [
    "CheckpointEntry",
    "CheckpointScan",
    "CheckpointWriter",
    "OutputLock",
    "check_settings",
    "read_records",
    "scan_checkpoint",
]

HEADER_KEY = "genevolve_checkpoint"
FORMAT_VERSION = 1


@dataclass(kw_only=True, slots=True, frozen=True)
class CheckpointEntry:
    """Where one item's latest line sits in a checkpoint."""

    id: str
    index: int
    """The row's position in the input (results are written in this order)."""
    ok: bool
    """Whether the item succeeded (failed items are retried on resume)."""
    offset: int
    """Byte offset of the line."""
    length: int
    """Bytes of the line, newline included."""
    line: int
    """Line number, from 1."""
    upstream: int | None = None
    """In a chain, the previous stage's checkpoint line this item was made from."""


@dataclass(kw_only=True, slots=True)
class CheckpointScan:
    """What a checkpoint file holds."""

    path: Path
    stage: str | None = None
    settings: dict[str, Any] | None = None
    entries: dict[str, CheckpointEntry] = field(default_factory=dict)
    """The latest line of each id."""
    lines: int = 0
    """Complete lines, header included."""
    bad_lines: list[int] = field(default_factory=list)
    """Complete lines that are not envelopes (left in place, ignored)."""
    torn_bytes: int = 0
    """Size of a torn last line (cut off when the file is opened to append)."""
    end: int = 0
    """Offset where the complete lines end."""

    @property
    def exists(self) -> bool:
        """Whether the file holds anything (a torn line counts)."""
        return self.lines > 0 or self.torn_bytes > 0

    def finished(self, *, retry_failed: bool = True) -> set[str]:
        """Ids a resumed run skips: successes, and failures unless they are retried."""
        return {e.id for e in self.entries.values() if e.ok or not retry_failed}

    def ordered(self) -> list[CheckpointEntry]:
        """Latest entries in input order."""
        return sorted(self.entries.values(), key=lambda e: (e.index, e.id))


def scan_checkpoint(path: str | os.PathLike[str], *, repair: bool = False) -> CheckpointScan:
    """Index a checkpoint (blocking; run it in a worker thread).

    Args:
        path: The checkpoint file; a missing file scans as empty.
        repair: Cut off a torn last line (only the process that will append
            may do this).

    Returns:
        The header, the latest entry per id, and what was wrong.
    """
    scan = CheckpointScan(path=Path(path))
    try:
        handle = open(path, "r+b" if repair else "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return scan
    with handle:
        offset = 0
        for number, raw in enumerate(handle, 1):
            if not raw.endswith(b"\n"):
                scan.torn_bytes = len(raw)
                break
            _index_line(scan, number, raw, offset)
            offset += len(raw)
            scan.lines = number
        scan.end = offset
        if repair and scan.torn_bytes:
            handle.truncate(offset)
    return scan


def _index_line(scan: CheckpointScan, number: int, raw: bytes, offset: int) -> None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        scan.bad_lines.append(number)
        return
    if number == 1 and isinstance(data, dict) and HEADER_KEY in data:
        scan.stage = data.get("stage") if isinstance(data.get("stage"), str) else None
        settings = data.get("settings")
        scan.settings = settings if isinstance(settings, dict) else {}
        return
    if not (
        isinstance(data, dict)
        and isinstance(data.get("id"), str)
        and isinstance(data.get("index"), int)
        and isinstance(data.get("record"), dict)
    ):
        scan.bad_lines.append(number)
        return
    scan.entries[data["id"]] = CheckpointEntry(
        id=data["id"],
        index=data["index"],
        ok=data.get("ok") is True,
        offset=offset,
        length=len(raw),
        line=number,
        upstream=data["up"] if isinstance(data.get("up"), int) else None,
    )


def read_records(
    path: str | os.PathLike[str], entries: Sequence[CheckpointEntry]
) -> Iterator[dict[str, Any]]:
    """The records of ``entries``, in the order given (blocking)."""
    with open(path, "rb") as handle:
        for entry in entries:
            handle.seek(entry.offset)
            record: dict[str, Any] = orjson.loads(handle.read(entry.length))["record"]
            yield record


def check_settings(
    scan: CheckpointScan, stage: str, settings: Mapping[str, Any], *, force: bool = False
) -> None:
    """Refuse to resume a checkpoint written for another stage or other settings.

    Raises:
        ConfigurationError: The stage or a setting differs, and ``force`` is off.
    """
    if not scan.exists or force:
        return
    if scan.stage is not None and scan.stage != stage:
        raise ConfigurationError(
            f"{scan.path} is a checkpoint of stage {scan.stage!r}, not {stage!r}; "
            "use another --output-dir"
        )
    if scan.settings is None:
        return
    changed = [
        f"{key}: {scan.settings.get(key)!r} in the checkpoint, {settings.get(key)!r} now"
        for key in sorted(set(scan.settings) | set(settings))
        if scan.settings.get(key) != settings.get(key)
    ]
    if changed:
        raise ConfigurationError(
            f"{scan.path} was written with other settings ({'; '.join(changed)}). "
            "Resuming would mix results; use a new --output-dir, or --force to resume anyway"
        )


class CheckpointWriter:
    """Appends envelope lines to one checkpoint, one item at a time.

    Args:
        path: The checkpoint file (created with its header if missing or empty).
        stage: The stage name written in the header.
        settings: The settings written in the header.
        fsync: Also ``fsync`` after each line (survives a power cut, costs a disk sync).
    """

    def __init__(
        self, path: Path, *, stage: str, settings: Mapping[str, Any], fsync: bool = False
    ) -> None:
        self.path = path
        self.stage = stage
        self.settings = dict(settings)
        self.fsync = fsync
        self.written = 0
        self.lines = 0
        """Complete lines in the file (the last one written is line ``lines``)."""
        self._lock = anyio.Lock()
        self._file: Any = None

    async def open(self, scan: CheckpointScan) -> None:
        """Open for appending after ``scan`` (made with ``repair=True``)."""
        self._file = await aiofiles.open(self.path, "ab")
        self.lines = scan.lines
        if scan.end == 0:
            header = {
                HEADER_KEY: FORMAT_VERSION,
                "stage": self.stage,
                "settings": self.settings,
                "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            }
            await self._write(orjson.dumps(header) + b"\n")

    async def append(
        self,
        *,
        row_id: str,
        index: int,
        ok: bool,
        record: Mapping[str, Any],
        upstream: int | None = None,
    ) -> int:
        """Write one finished item's line and flush it.

        Args:
            row_id: The item's id.
            index: Its position in the input.
            ok: Whether it succeeded.
            record: Its record.
            upstream: The previous stage's checkpoint line it was made from.

        Returns:
            The line number written.
        """
        envelope: dict[str, Any] = {"id": row_id, "index": index, "ok": ok}
        if upstream is not None:
            envelope["up"] = upstream
        envelope["record"] = record
        line = orjson.dumps(envelope, option=orjson.OPT_NON_STR_KEYS)
        number = await self._write(line + b"\n")
        self.written += 1
        return number

    async def _write(self, data: bytes) -> int:
        if self._file is None:
            raise RuntimeError(f"checkpoint {self.path} is not open")
        # A cancelled write could leave half a line in the buffer for the
        # next item to complete wrongly: each line is written whole.
        with anyio.CancelScope(shield=True):
            async with self._lock:
                await self._file.write(data)
                await self._file.flush()
                if self.fsync:
                    await anyio.to_thread.run_sync(os.fsync, self._file.fileno())
                self.lines += 1
                number = self.lines
        return number

    async def aclose(self) -> None:
        """Flush and close. Idempotent."""
        handle, self._file = self._file, None
        if handle is not None:
            with anyio.CancelScope(shield=True):
                await handle.close()


class OutputLock:
    """An exclusive lock on an output folder, so two processes never append to one checkpoint.

    The kernel drops the lock when the process dies, even by ``kill -9``.
    The lock file is removed when the lock is released; one left behind by a
    killed process is stale and harmless (the next run takes it over).
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".genevolve.lock"
        self._handle: IO[bytes] | None = None

    def acquire(self) -> None:
        """Take the lock (blocking but instant).

        Raises:
            ConfigurationError: Another process holds it.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no advisory locks on this platform
            return
        while True:
            handle = open(self.path, "a+b")  # noqa: SIM115 - kept open while locked
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise ConfigurationError(
                    f"another genevolve-async process is writing to {self.path.parent}; "
                    "give each process its own --output-dir (use --shard and merge)"
                ) from None
            # The holder removes the file when it lets go: a lock taken on a
            # file no longer at our path locks nothing anyone else will see.
            try:
                same = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._handle = handle
                return
            handle.close()

    def release(self) -> None:
        """Let go of the lock and remove its file. Idempotent."""
        handle, self._handle = self._handle, None
        if handle is not None:
            # Removed while still held, so no one locks the old file after us.
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            handle.close()
