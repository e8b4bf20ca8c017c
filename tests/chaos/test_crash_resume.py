"""Crash and resume: a pipeline killed with SIGKILL at random moments, several times in a row.

Each kill lands after a random number of new checkpoint lines plus a random
delay, so it can hit any stage, mid-write included. After every kill the
lines completed before it must still be there byte for byte, and an item
that had finished must never be redone; the last run must end with every id
exactly once, and each finished item's final result must be the one written
before the kill.

``GENEVOLVE_CHAOS_SEED`` replays a failure (the seed is in every message);
``GENEVOLVE_CHAOS_RESUME_ROWS`` and ``GENEVOLVE_CHAOS_KILLS`` scale the test.
"""

from __future__ import annotations

import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson
import pytest
from anyio.abc import Process

from genevolve_async.pipeline import scan_checkpoint

from ..pipeline._sims import Sims, bench_rows, load_json, start_sims, write_bench

ROOT = Path(__file__).resolve().parents[2]
ROWS = int(os.environ.get("GENEVOLVE_CHAOS_RESUME_ROWS", "120"))
KILLS = int(os.environ.get("GENEVOLVE_CHAOS_KILLS", "4"))
SEED = int(os.environ.get("GENEVOLVE_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
CHECKPOINTS = ("rollouts.jsonl", "render.jsonl", "eval.jsonl")


@pytest.fixture
async def sims() -> AsyncIterator[Sims]:
    async with start_sims(model_latency=0.02) as started:
        yield started


def _complete_lines(path: Path) -> bytes:
    """The file up to its last newline (a kill may leave half a line after it)."""
    data = path.read_bytes() if path.exists() else b""
    return data[: data.rfind(b"\n") + 1]


def _total_lines(out: Path) -> int:
    return sum(_complete_lines(out / name).count(b"\n") for name in CHECKPOINTS)


def _finished(out: Path) -> dict[str, dict[str, bytes]]:
    """Per checkpoint, the raw line of each item that had succeeded (latest line per id)."""
    finished: dict[str, dict[str, bytes]] = {}
    for name in CHECKPOINTS:
        data = _complete_lines(out / name)
        scan = scan_checkpoint(out / name)
        finished[name] = {
            e.id: data[e.offset : e.offset + e.length]
            for e in scan.entries.values()
            if e.ok and e.offset + e.length <= len(data)
        }
    return finished


async def _kill_at_random(
    argv: list[str], env: dict[str, str], out: Path, rng: random.Random
) -> bool:
    """Start the pipeline, SIGKILL it at a random moment; False if it finished first."""
    process: Process = await anyio.open_process(argv, env=env, cwd=ROOT)
    try:
        # Every checkpoint together holds 3 lines per row: spread the kills over them.
        target = _total_lines(out) + rng.randint(3, max(4, 3 * ROWS // (KILLS + 1)))
        with anyio.fail_after(120):
            # Nothing to wait on but another process's files: poll them.
            while _total_lines(out) < target:
                if process.returncode is not None:
                    return False
                await anyio.sleep(0.005)
        await anyio.sleep(rng.uniform(0.0, 0.2))
        if process.returncode is not None:
            return False
        process.send_signal(signal.SIGKILL)
        await process.wait()
        return True
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


async def test_repeated_sigkills_lose_nothing_and_rewrite_nothing(
    sims: Sims, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    why = f"(GENEVOLVE_CHAOS_SEED={SEED})"
    data = write_bench(tmp_path / "bench", bench_rows(ROWS))
    out = tmp_path / "out"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "GENEVOLVE_"))},
        **sims.env(tmp_path / "cache"),
        "PYTHONPATH": str(ROOT),
    }
    argv = [
        sys.executable,
        "-m",
        "genevolve_async",
        "pipeline",
        "--input",
        str(data),
        "--output-dir",
        str(out),
        "--base-url",
        sims.policy_url,
        "--service-url",
        sims.qwen_url,
        "--parallel",
        "16",
        "--rpm",
        "60000",
        "--render-option",
        "long_side=128",
        "--quiet",
    ]
    before: dict[str, bytes] = {name: b"" for name in CHECKPOINTS}
    kept: dict[str, dict[str, bytes]] = {name: {} for name in CHECKPOINTS}
    kills = 0
    for _ in range(KILLS):
        if not await _kill_at_random(argv, env, out, rng):
            break
        kills += 1
        for name in CHECKPOINTS:
            now = _complete_lines(out / name)
            assert now.startswith(before[name]), f"{name}: earlier lines changed {why}"
            before[name] = now
        for name, lines in _finished(out).items():
            for row_id, line in kept[name].items():
                assert lines.get(row_id) == line, f"{name}: finished {row_id} was redone {why}"
            kept[name].update(lines)
    assert kills >= 2, f"the pipeline finished before the kills could land {why}"

    result = await anyio.run_process(argv, env=env, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    ids = [str(i) for i in range(ROWS)]
    for name in CHECKPOINTS:
        assert (out / name).read_bytes().startswith(before[name]), f"{name} {why}"
        scan = scan_checkpoint(out / name)
        assert sorted(scan.entries, key=int) == ids, f"{name} {why}"
        for row_id, line in kept[name].items():
            entry = scan.entries[row_id]
            assert entry.ok, why
            with (out / name).open("rb") as handle:  # the very line: never redone
                handle.seek(entry.offset)
                assert handle.read(entry.length) == line, f"{name}: {row_id} {why}"
    judged = [r for r in load_json(out / "results_eval.json") if "summary_type" not in r]
    assert [r["id"] for r in judged] == ids, why  # every id exactly once, in input order
    rendered = load_json(out / "results.json")
    assert [r["id"] for r in rendered] == ids, why
    # A finished item's final result is the record written before the kill, byte for byte.
    by_id = {r["id"]: r for r in judged}
    for row_id, line in kept["eval.jsonl"].items():
        record = orjson.loads(line)["record"]
        assert orjson.dumps(by_id[row_id]) == orjson.dumps(record), f"{row_id} {why}"
    assert all(r["eval_success"] for r in judged), why
