"""Joining the checkpoints of shards: ``genevolve-async merge``."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from .._errors import ConfigurationError
from ._checkpoint import (
    FORMAT_VERSION,
    HEADER_KEY,
    CheckpointEntry,
    CheckpointScan,
    check_settings,
    scan_checkpoint,
)
from ._results import replace_atomically

__all__ = ["MergeReport", "merge_checkpoints"]

# Settings that may differ between the shards of one benchmark.
_SHARD_KEYS = frozenset({"shard"})


@dataclass(kw_only=True, slots=True)
class MergeReport:
    """What :func:`merge_checkpoints` did."""

    stage: str | None
    sources: int
    items: int
    duplicates: int
    """Ids found in more than one source (the success, else the last, was kept)."""


def merge_checkpoints(sources: Sequence[Path], dest: Path, *, force: bool = False) -> MergeReport:
    """Join the checkpoints of several shards into one (blocking).

    Args:
        sources: Checkpoints of one stage, written with the same settings
            (the shard aside).
        dest: The merged checkpoint, written atomically; it must not exist.
        force: Merge even when stages or settings differ.

    Returns:
        Counts of what was merged.

    Raises:
        ConfigurationError: No source, ``dest`` exists, or the sources disagree.
    """
    if not sources:
        raise ConfigurationError("merge needs at least one checkpoint")
    if dest.exists():
        raise ConfigurationError(f"{dest} exists already; merge into a new --output-dir")
    scans = [scan_checkpoint(path) for path in sources]
    first = scans[0]
    base = {k: v for k, v in (first.settings or {}).items() if k not in _SHARD_KEYS}
    for scan in scans[1:]:
        other = {k: v for k, v in (scan.settings or {}).items() if k not in _SHARD_KEYS}
        probe = CheckpointScan(path=scan.path, stage=scan.stage, settings=other, lines=1)
        check_settings(probe, first.stage or "", base, force=force)
    chosen: dict[str, tuple[CheckpointScan, CheckpointEntry]] = {}
    duplicates = 0
    for scan in scans:
        for entry in scan.entries.values():
            held = chosen.get(entry.id)
            if held is not None:
                duplicates += 1
                if held[1].ok and not entry.ok:
                    continue
            chosen[entry.id] = (scan, entry)
    header = {HEADER_KEY: FORMAT_VERSION, "stage": first.stage, "settings": base}

    def write(out: IO[bytes]) -> None:
        out.write(orjson.dumps(header) + b"\n")
        handles: dict[Path, IO[bytes]] = {}
        with contextlib.ExitStack() as stack:
            for scan, entry in sorted(
                chosen.values(), key=lambda pair: (pair[1].index, pair[1].id)
            ):
                if scan.path not in handles:
                    handles[scan.path] = stack.enter_context(open(scan.path, "rb"))
                source = handles[scan.path]
                source.seek(entry.offset)
                raw = source.read(entry.length)
                if entry.upstream is not None:
                    # Line numbers of the sources mean nothing in the merged files.
                    envelope = orjson.loads(raw)
                    envelope.pop("up", None)
                    raw = orjson.dumps(envelope, option=orjson.OPT_NON_STR_KEYS) + b"\n"
                out.write(raw)

    replace_atomically(dest, write)
    return MergeReport(
        stage=first.stage, sources=len(sources), items=len(chosen), duplicates=duplicates
    )
