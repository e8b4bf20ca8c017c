"""The batch runner: chained stages, the streaming pipeline, resume, backpressure, shards."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
import pytest

from genevolve_async import (
    AuthenticationError,
    ConfigurationError,
    RetryPolicy,
    Runtime,
    RuntimeConfig,
)
from genevolve_async.judge import SUMMARY_CSV_COLUMNS, JudgeScores, normalize_scores
from genevolve_async.pipeline import (
    BatchOptions,
    InputRow,
    InputSource,
    JudgeStage,
    Outcome,
    RenderStage,
    RolloutStage,
    Shard,
    Stage,
    StageKind,
    run_batch,
)
from genevolve_async.pipeline._commands import _merge_folder, finalize_folder
from genevolve_async.renderers import QwenServiceRenderer
from genevolve_async.sim import JudgeFaults, SimJudge

from ._sims import Sims, bench_rows, checkpoint_lines, load_json, start_sims, write_bench
from .test_stages import FakeRenderer

QUIET = BatchOptions(quiet=True)
VOLATILE = {"timings", "output_path", "image_path"}


async def _no_sleep(_: float) -> None:
    await anyio.lowlevel.checkpoint()


def _stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


class FakeStage:
    """A stage that records what it sees; fails, raises or waits on request."""

    kind: ClassVar[StageKind] = "run"
    checkpoint_name: ClassVar[str] = "rollouts.jsonl"
    results_name: ClassVar[str] = "results.json"

    def __init__(
        self,
        *,
        parallel: int = 4,
        fail: set[str] | None = None,
        boom: set[str] | None = None,
        fatal: set[str] | None = None,
        gate: anyio.Event | None = None,
        version: int = 1,
    ) -> None:
        self.parallel = parallel
        self.fail, self.boom, self.fatal = fail or set(), boom or set(), fatal or set()
        self.gate = gate
        self.version = version
        self.seen: list[str] = []
        self.active = 0
        self.peak = 0

    async def prepare(self) -> None:
        return None

    def settings(self) -> dict[str, Any]:
        return {"version": self.version}

    async def process(self, row: InputRow) -> Outcome:
        self.seen.append(row.id)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await anyio.lowlevel.checkpoint()
        finally:
            self.active -= 1
        if row.id in self.fatal:
            raise AuthenticationError("the service refused the key")
        if row.id in self.boom:
            raise RuntimeError("boom")
        return Outcome(
            record={"id": row.id, "seen": len(self.seen), "from": row.data.get("seen")},
            ok=row.id not in self.fail,
        )

    def failure(self, row: InputRow, error: Any) -> Outcome:
        return Outcome(
            record={"id": row.id, "error": error.to_dict()}, ok=False, error_kind=error.kind
        )


class FakeRender(FakeStage):
    kind: ClassVar[StageKind] = "render"
    checkpoint_name: ClassVar[str] = "render.jsonl"


def _glob(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))


def _jsonl(path: Path, count: int) -> InputSource:
    path.write_text(
        "".join(json.dumps({"id": str(i), "prompt": f"p{i}"}) + "\n" for i in range(count))
    )
    return InputSource(path=path)


@pytest.fixture
async def sims() -> AsyncIterator[Sims]:
    faults = JudgeFaults(fenced=0.2, no_json=0.05, rate_429=0.05, rate_500=0.05)
    async with start_sims(judge_faults=faults) as started:
        yield started


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(RuntimeConfig(retry=RetryPolicy(sleep=_no_sleep))) as rt:
        yield rt


async def test_chained_stages_and_the_pipeline_give_the_same_records(
    sims: Sims, runtime: Runtime, tmp_path: Path
) -> None:
    bad = ["{oops", json.dumps({"id": "0", "question": "duplicate"}), json.dumps({"id": "x"})]
    data = write_bench(tmp_path / "bench", bench_rows(200), extra_lines=bad)
    cache = tmp_path / "cache"
    run_dir, render_dir, pipe_dir = tmp_path / "run", tmp_path / "render", tmp_path / "pipe"
    async with QwenServiceRenderer([sims.qwen_url], runtime=runtime, long_side=128) as renderer:
        report = await run_batch(
            InputSource(path=data),
            run_dir,
            [RolloutStage(sims.agent(runtime, cache), parallel=32)],
            options=QUIET,
        )
        assert [(b.line, b.reason.split(":")[0]) for b in report.bad_rows] == [
            (201, "not valid JSON"),
            (202, "duplicate id '0' (the first one is kept)"),
            (203, "no request"),
        ]
        await run_batch(
            InputSource(path=run_dir / "results.json"),
            render_dir,
            [RenderStage(renderer, out_dir=render_dir, parallel=16)],
            options=QUIET,
        )
        judge = sims.judge_client(runtime, rpm=60000)
        report = await run_batch(
            InputSource(path=render_dir / "results.json", gt_root=data.parent),
            render_dir,
            [JudgeStage(judge, image_root=render_dir)],
            options=QUIET,
        )
        assert "\nall " in report.text()
        stages: list[Stage] = [
            RolloutStage(sims.agent(runtime, cache), parallel=32),
            RenderStage(renderer, out_dir=pipe_dir, parallel=16),
            JudgeStage(judge, image_root=pipe_dir),
        ]
        await run_batch(InputSource(path=data), pipe_dir, stages, options=QUIET)

    results = load_json(run_dir / "results.json")
    assert [r["id"] for r in results] == [str(i) for i in range(200)]
    for record in results:
        assert {
            "prompt",
            "gen_prompt",
            "reference_images",
            "messages",
            "termination",
            "rounds",
            "error",
            "id",
            "gt_image",
            "eval_type",
            "category",
            "difficulty",
        } <= set(record)
    rendered = load_json(render_dir / "results.json")
    assert all(r["success"] and r["image_status"] == "ok" for r in rendered)
    assert all((render_dir / r["image_path"]).is_file() for r in rendered)
    evaluated = load_json(render_dir / "results_eval.json")
    samples = [r for r in evaluated if "summary_type" not in r]
    summaries = [r for r in evaluated if "summary_type" in r]
    assert [r["id"] for r in samples] == [str(i) for i in range(200)]
    for row in samples:
        scores = {k: v for k, v in row["scores"].items() if k != "rationale"}
        assert row["eval_success"] and scores == dict(
            normalize_scores(JudgeScores(**SimJudge.verdict(row["id"])))
        )
    assert summaries[-1]["summary_type"] == "overall_avg" and summaries[-1]["count"] == 200
    summary = load_json(render_dir / "summary.json")
    assert summary["all"]["denominator"] == 200
    assert {"Knowledge-Anchored", "Quality-Anchored"} <= set(summary["by_eval_type"])
    assert "easy" in summary["by_difficulty"] and "animal" in summary["by_category"]
    splits = 1 + sum(len(summary[f"by_{f}"]) for f in ("eval_type", "category", "difficulty"))
    csv_lines = (render_dir / "summary.csv").read_text().splitlines()
    assert csv_lines[0] == ",".join(SUMMARY_CSV_COLUMNS) and len(csv_lines) == splits + 1

    assert _stable(load_json(pipe_dir / "results.json")) == _stable(rendered)
    assert _stable(load_json(pipe_dir / "results_eval.json")) == _stable(evaluated)
    pipe_summary = load_json(pipe_dir / "summary.json")
    assert {**pipe_summary, "eval_json": ""} == {**summary, "eval_json": ""}


async def test_workers_pull_rows_only_as_fast_as_they_finish(tmp_path: Path) -> None:
    gate = anyio.Event()
    stage = FakeStage(parallel=4, gate=gate)
    source = _jsonl(tmp_path / "in.jsonl", 2000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_batch(source, tmp_path / "out", [stage], options=QUIET))
        await anyio.sleep(0.2)
        assert len(stage.seen) == 4  # one task per worker, never one per row
        gate.set()
    assert stage.peak == 4 and len(stage.seen) == 2000
    assert len(checkpoint_lines(tmp_path / "out" / "rollouts.jsonl")) == 2000


async def test_resume_skips_finished_ids_and_retries_failures(tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "in.jsonl", 30)
    first = FakeStage(fail={"3", "4"}, boom={"5"})
    report = await run_batch(source, tmp_path / "out", [first], options=QUIET)
    assert report.progress[0].failed == 3
    second = FakeStage()
    report = await run_batch(source, tmp_path / "out", [second], options=QUIET)
    assert sorted(second.seen) == ["3", "4", "5"] and report.progress[0].skipped == 27
    third = FakeStage()
    await run_batch(
        source, tmp_path / "out", [third], options=BatchOptions(quiet=True, retry_failed=False)
    )
    assert third.seen == []
    results = load_json(tmp_path / "out" / "results.json")
    assert [r["id"] for r in results] == [str(i) for i in range(30)]
    assert "error" not in results[5]  # the retried line replaced the failed one


async def test_a_redone_item_is_redone_downstream(tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "in.jsonl", 10)
    run, render = FakeStage(fail={"4"}), FakeRender()
    await run_batch(source, tmp_path / "out", [run, render], options=QUIET)
    assert len(render.seen) == 10  # a failed item flows on (the renderer falls back)
    # A later session retries item 4 upstream only (say it was killed before rendering).
    retry = FakeStage()
    await run_batch(source, tmp_path / "out", [retry], options=QUIET)
    assert retry.seen == ["4"]
    run, render = FakeStage(), FakeRender()
    await run_batch(source, tmp_path / "out", [run, render], options=QUIET)
    assert run.seen == [] and render.seen == ["4"]
    rendered = {r["id"]: r for r in load_json(tmp_path / "out" / "results.json")}
    assert rendered["4"]["from"] == 1  # made from the retried upstream record


async def test_other_settings_are_refused_and_no_resume_starts_over(tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "in.jsonl", 5)
    await run_batch(source, tmp_path / "out", [FakeStage()], options=QUIET)
    with pytest.raises(ConfigurationError, match="version: 1 in the checkpoint, 2 now"):
        await run_batch(source, tmp_path / "out", [FakeStage(version=2)], options=QUIET)
    forced = FakeStage(version=2)
    await run_batch(
        source, tmp_path / "out", [forced], options=BatchOptions(quiet=True, force=True)
    )
    assert forced.seen == []
    fresh = FakeStage(version=2)
    await run_batch(
        source, tmp_path / "out", [fresh], options=BatchOptions(quiet=True, resume=False)
    )
    assert len(fresh.seen) == 5
    assert len(list((tmp_path / "out").glob("rollouts.jsonl.*.bak"))) == 1


async def test_a_missing_input_fails_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="input not found"):
        await run_batch(InputSource(path=tmp_path / "nope.jsonl"), tmp_path / "out", [FakeStage()])
    assert not _glob(tmp_path, "out")


async def test_a_refused_key_stops_the_batch_and_keeps_what_finished(tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "in.jsonl", 50)
    with pytest.raises(AuthenticationError):
        await run_batch(
            source, tmp_path / "out", [FakeStage(parallel=1, fatal={"5"})], options=QUIET
        )
    assert [r["id"] for r in load_json(tmp_path / "out" / "results.json")] == [
        "0",
        "1",
        "2",
        "3",
        "4",
    ]
    resumed = FakeStage(parallel=1)
    await run_batch(source, tmp_path / "out", [resumed], options=QUIET)
    assert resumed.seen[0] == "5" and len(resumed.seen) == 45


async def test_ids_never_write_outside_the_output_folder(tmp_path: Path) -> None:
    ids = ["../../escape", "/tmp/abs", "a/../../b", "..", "C:\\win", "ok"]
    path = tmp_path / "work" / "in.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps({"id": i, "prompt": "p"}) + "\n" for i in ids))
    out = tmp_path / "work" / "out"
    await run_batch(
        InputSource(path=path), out, [RenderStage(FakeRenderer(), out_dir=out)], options=QUIET
    )
    pngs = _glob(tmp_path, "**/*.png")
    assert len(pngs) == len(ids) and all(p.parent == out / "images" for p in pngs)
    results = load_json(out / "results.json")
    assert [r["id"] for r in results] == ids and all(r["success"] for r in results)
    assert not _glob(Path("/tmp"), "abs*.png")


async def test_shards_merged_equal_the_unsharded_run(
    sims: Sims, runtime: Runtime, tmp_path: Path
) -> None:
    data = write_bench(tmp_path / "bench", bench_rows(45))
    cache = tmp_path / "cache"
    whole = tmp_path / "whole"
    await run_batch(
        InputSource(path=data), whole, [RolloutStage(sims.agent(runtime, cache))], options=QUIET
    )
    parts = []
    for k in (1, 2, 3):
        part = tmp_path / f"part{k}"
        source = InputSource(path=data, shard=Shard(number=k, count=3))
        await run_batch(source, part, [RolloutStage(sims.agent(runtime, cache))], options=QUIET)
        parts.append(part)
    merged = tmp_path / "merged"
    await anyio.to_thread.run_sync(_merge_folder, parts, merged, False)
    await anyio.to_thread.run_sync(finalize_folder, merged)
    expected = load_json(whole / "results.json")
    got = load_json(merged / "results.json")
    assert [r["id"] for r in got] == [r["id"] for r in expected] == [str(i) for i in range(45)]
    assert _stable(got) == _stable(expected)
    assert all(load_json(p / "results.json") for p in parts)


async def test_prompts_from_the_command_line(sims: Sims, runtime: Runtime, tmp_path: Path) -> None:
    source = InputSource(prompts=("a fox in snow", "a hare at dawn"))
    report = await run_batch(
        source, tmp_path / "out", [RolloutStage(sims.agent(runtime, tmp_path / "c"))], options=QUIET
    )
    assert report.summaries[0].terminations == {"answer": 2}
    assert [r["prompt"] for r in load_json(tmp_path / "out" / "results.json")] == list(
        source.prompts
    )


class DeepStage(FakeStage):
    """Answers records nested deeper than orjson writes for the ids in ``deep``."""

    def __init__(self, deep: set[str]) -> None:
        super().__init__()
        self.deep = deep

    async def process(self, row: InputRow) -> Outcome:
        outcome = await super().process(row)
        if row.id not in self.deep:
            return outcome
        nested: Any = "bottom"
        for _ in range(300):  # as native tool-call arguments a model nested 300 deep
            nested = {"arguments": nested}
        return Outcome(record={**outcome.record, "tool_calls": nested}, ok=True)


async def test_a_record_that_cannot_be_written_fails_its_item_not_the_batch(
    tmp_path: Path,
) -> None:
    source = _jsonl(tmp_path / "in.jsonl", 6)
    report = await run_batch(source, tmp_path / "out", [DeepStage({"2"})], options=QUIET)
    assert report.progress[0].failed == 1
    rows = {r["id"]: r for r in load_json(tmp_path / "out" / "results.json")}
    assert set(rows) == {str(i) for i in range(6)}
    error = rows["2"]["error"]
    assert error["kind"] == "invalid_request" and "line 3" in error["message"]
    assert "cannot be written" in error["message"]
    # The resume reads the checkpoint back and retries only the failed item.
    again = DeepStage(set())
    await run_batch(source, tmp_path / "out", [again], options=QUIET)
    assert again.seen == ["2"]
    assert "error" not in {r["id"]: r for r in load_json(tmp_path / "out" / "results.json")}["2"]
