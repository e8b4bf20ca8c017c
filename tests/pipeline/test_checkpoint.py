"""Append-only checkpoints: lines, torn tails, settings, locks and merges."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from genevolve_async import ConfigurationError
from genevolve_async.pipeline import merge_checkpoints, scan_checkpoint
from genevolve_async.pipeline._checkpoint import (
    CheckpointWriter,
    OutputLock,
    check_settings,
    read_records,
)

SETTINGS = {"model": "GenEvolve", "max_rounds": 11, "shard": None}


async def _write(
    path: Path,
    items: list[tuple[str, int, bool]],
    settings: dict[str, object] = SETTINGS,
    stage: str = "run",
    upstream: int | None = None,
) -> CheckpointWriter:
    scan = scan_checkpoint(path, repair=True)
    writer = CheckpointWriter(path, stage=stage, settings=settings)
    await writer.open(scan)
    for row_id, index, ok in items:
        await writer.append(
            row_id=row_id, index=index, ok=ok, record={"id": row_id, "ok": ok}, upstream=upstream
        )
    await writer.aclose()
    return writer


async def test_lines_round_trip_and_the_last_line_of_an_id_wins(tmp_path: Path) -> None:
    path = tmp_path / "rollouts.jsonl"
    await _write(path, [("b", 1, True), ("a", 0, False), ("c", 2, True)])
    await _write(path, [("a", 0, True)])
    scan = scan_checkpoint(path)
    assert scan.stage == "run" and scan.settings == SETTINGS
    assert scan.lines == 5 and not scan.bad_lines and not scan.torn_bytes
    assert [e.id for e in scan.ordered()] == ["a", "b", "c"]
    assert scan.entries["a"].ok and scan.entries["a"].line == 5
    records = list(read_records(path, scan.ordered()))
    assert records == [{"id": "a", "ok": True}, {"id": "b", "ok": True}, {"id": "c", "ok": True}]
    header = json.loads(path.read_text().splitlines()[0])
    assert header["genevolve_checkpoint"] == 1  # one header, written once


async def test_failed_items_are_retried_unless_told_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    await _write(path, [("a", 0, True), ("b", 1, False)])
    scan = scan_checkpoint(path)
    assert scan.finished() == {"a"}
    assert scan.finished(retry_failed=False) == {"a", "b"}


async def test_a_torn_last_line_is_cut_off_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    await _write(path, [("a", 0, True), ("b", 1, True)])
    intact = path.read_bytes()
    with path.open("ab") as f:
        f.write(b'{"id": "c", "index": 2, "ok": true, "rec')
    scan = scan_checkpoint(path)
    assert scan.torn_bytes > 0 and set(scan.entries) == {"a", "b"}
    assert path.read_bytes() != intact  # a read-only scan leaves the file alone
    await _write(path, [("c", 2, True)])
    text = path.read_bytes()
    assert text.startswith(intact) and text.count(b"\n") == 4
    assert [json.loads(line)["id"] for line in text.splitlines()[1:]] == ["a", "b", "c"]


async def test_a_line_that_is_no_envelope_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    await _write(path, [("a", 0, True)])
    with path.open("ab") as f:
        f.write(b"garbage\n" + json.dumps({"id": 3}).encode() + b"\n")
    await _write(path, [("b", 1, True)])
    scan = scan_checkpoint(path)
    assert scan.bad_lines == [3, 4] and set(scan.entries) == {"a", "b"}


async def test_cancelled_appends_never_leave_half_a_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    writer = CheckpointWriter(path, stage="run", settings=SETTINGS)
    await writer.open(scan_checkpoint(path, repair=True))
    big = {"blob": "x" * 2_000_000}
    with anyio.move_on_after(0.0001):
        for i in range(20):
            await writer.append(row_id=str(i), index=i, ok=True, record=big)
    await writer.aclose()
    scan = scan_checkpoint(path)
    assert not scan.torn_bytes and not scan.bad_lines


def test_other_settings_or_another_stage_are_refused_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    anyio.run(_write, path, [("a", 0, True)])
    scan = scan_checkpoint(path)
    check_settings(scan, "run", SETTINGS)
    with pytest.raises(ConfigurationError) as info:
        check_settings(scan, "run", {**SETTINGS, "model": "Other"})
    message = str(info.value)
    assert "model: 'GenEvolve' in the checkpoint, 'Other' now" in message and "--force" in message
    check_settings(scan, "run", {**SETTINGS, "model": "Other"}, force=True)
    with pytest.raises(ConfigurationError, match="checkpoint of stage 'run'"):
        check_settings(scan, "render", SETTINGS)
    check_settings(scan_checkpoint(tmp_path / "missing.jsonl"), "run", {"anything": 1})


def test_the_output_lock_keeps_a_second_writer_out(tmp_path: Path) -> None:
    first, second = OutputLock(tmp_path), OutputLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(ConfigurationError, match="another genevolve-async process"):
            second.acquire()
    finally:
        first.release()
    second.acquire()
    second.release()


async def test_merge_joins_shards_in_input_order(tmp_path: Path) -> None:
    a, b, dest = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "out" / "m.jsonl"
    await _write(
        a,
        [("2", 2, True), ("0", 0, True), ("dup", 9, True)],
        settings={**SETTINGS, "shard": "1/2"},
        upstream=4,
    )
    await _write(b, [("1", 1, True), ("dup", 9, False)], settings={**SETTINGS, "shard": "2/2"})
    report = merge_checkpoints([a, b], dest)
    assert (report.items, report.duplicates, report.stage) == (4, 1, "run")
    scan = scan_checkpoint(dest)
    assert [e.id for e in scan.ordered()] == ["0", "1", "2", "dup"]
    assert scan.entries["dup"].ok  # the success wins over a later failure
    assert all(e.upstream is None for e in scan.entries.values())  # line numbers do not travel
    assert scan.settings == {"model": "GenEvolve", "max_rounds": 11}
    with pytest.raises(ConfigurationError, match="exists already"):
        merge_checkpoints([a, b], dest)


async def test_merge_refuses_checkpoints_of_other_settings(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    await _write(a, [("0", 0, True)])
    await _write(b, [("1", 1, True)], settings={**SETTINGS, "max_rounds": 5})
    with pytest.raises(ConfigurationError, match="max_rounds"):
        merge_checkpoints([a, b], tmp_path / "m.jsonl")
    assert merge_checkpoints([a, b], tmp_path / "m.jsonl", force=True).items == 2
