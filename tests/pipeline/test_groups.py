"""Rollout groups: K samples per prompt through the pipeline, group summaries, best-of-K."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from genevolve_async import ConfigurationError, RetryPolicy, Runtime, RuntimeConfig
from genevolve_async.judge import JudgeScores, normalize_scores
from genevolve_async.pipeline import (
    BatchOptions,
    BatchReport,
    GroupReport,
    InputRow,
    InputSource,
    JudgeStage,
    RenderStage,
    RolloutStage,
    Sampling,
    Stage,
    run_batch,
)
from genevolve_async.pipeline._cli import build_parser
from genevolve_async.pipeline._commands import run_command
from genevolve_async.renderers import QwenServiceRenderer
from genevolve_async.sim import SimJudge

from ._sims import Sims, bench_rows, load_json, start_sims, write_bench

QUIET = BatchOptions(quiet=True)


async def _no_sleep(_: float) -> None:
    await anyio.lowlevel.checkpoint()


@pytest.fixture
async def sims() -> AsyncIterator[Sims]:
    async with start_sims() as started:
        yield started


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(RuntimeConfig(retry=RetryPolicy(sleep=_no_sleep))) as rt:
        yield rt


def sim_overall(sample_id: str) -> float:
    """The ``overall`` the simulated judge gives ``sample_id``."""
    verdict = SimJudge.verdict(sample_id)
    verdict.pop("rationale")
    return normalize_scores(JudgeScores(rationale="", **verdict))["overall"]


async def run_sampled_pipeline(
    sims: Sims, runtime: Runtime, tmp_path: Path, *, prompts: int, k: int, seed: int | None = None
) -> tuple[Path, BatchReport]:
    """Run, render and judge ``prompts`` benchmark rows with ``k`` samples each."""
    data = write_bench(tmp_path / "bench", bench_rows(prompts))
    out = tmp_path / "out"
    agent = sims.agent(runtime, tmp_path / "cache", seed=seed)
    async with QwenServiceRenderer([sims.qwen_url], runtime=runtime, long_side=64) as renderer:
        stages: list[Stage] = [
            RolloutStage(agent, parallel=64, samples_per_prompt=k),
            RenderStage(renderer, out_dir=out, parallel=32),
            JudgeStage(sims.judge_client(runtime, rpm=600000), image_root=out, parallel=32),
        ]
        report = await run_batch(InputSource(path=data), out, stages, options=QUIET)
    return out, report


def _row(data: dict[str, Any], row_id: str = "7") -> InputRow:
    return InputRow(id=row_id, safe_id=row_id, index=3, line=4, prompt="p", data=data)


def test_samples_get_ids_stems_order_and_stable_seeds() -> None:
    row = _row({"id": "7", "prompt": "p", "sample_index": "theirs"})
    assert Sampling(count=1).expand(row) == [row]
    samples = Sampling(count=3, base_seed=11).expand(row)
    assert [s.id for s in samples] == ["7#0", "7#1", "7#2"]
    assert [s.safe_id for s in samples] == ["7_s0", "7_s1", "7_s2"]
    assert [s.index for s in samples] == [9, 10, 11]
    assert [s.data["sample_index"] for s in samples] == [0, 1, 2]
    assert {s.data["prompt_id"] for s in samples} == {"7"} and row.data["sample_index"] == "theirs"
    seeds = [s.data["seed"] for s in samples]
    assert len(set(seeds)) == 3 and all(0 <= x < 2**31 for x in seeds)
    # Derived, not counted: the same sample keeps its seed under a larger K.
    assert [s.data["seed"] for s in Sampling(count=5, base_seed=11).expand(row)][:3] == seeds
    assert Sampling(count=3, base_seed=12).expand(row)[0].data["seed"] != seeds[0]
    with pytest.raises(ConfigurationError, match="at least 1"):
        Sampling(count=0)


async def test_sampling_at_temperature_zero_is_refused(sims: Sims, runtime: Runtime) -> None:
    agent = sims.agent(runtime, Path("unused"), temperature=0.0)
    with pytest.raises(ConfigurationError, match="temperature 0"):
        RolloutStage(agent, samples_per_prompt=4)
    assert RolloutStage(agent).settings().get("samples_per_prompt") is None


def _eval_row(prompt_id: str, k: int, overall: float | None, **extra: Any) -> dict[str, Any]:
    judged = overall is not None
    return {
        "id": f"{prompt_id}#{k}",
        "prompt": f"request {prompt_id}",
        "prompt_id": prompt_id,
        "sample_index": k,
        "seed": 100 + k,
        "eval_success": judged,
        "scores": {"overall": overall} if judged else None,
        **extra,
    }


def test_group_figures_best_ties_and_unjudged_samples() -> None:
    rows = [
        _eval_row("a", 0, 0.3, eval_type="K"),
        _eval_row("a", 1, 0.7, eval_type="K"),
        _eval_row("a", 2, 0.7, eval_type="K"),  # a tie: the lower index wins
        _eval_row("b", 0, None, eval_type="Q"),
        _eval_row("b", 1, 0.2, eval_type="Q"),
        _eval_row("c", 0, None, eval_type="Q"),
        {"summary_type": "overall_avg", "prompt_id": "x", "sample_index": 0},
        {"id": "plain", "eval_success": True, "scores": {"overall": 1.0}},
    ]
    report = GroupReport.from_rows(rows)
    assert report is not None
    a, b, c = (g.to_dict() for g in report.groups)
    assert (a["best_id"], a["best_sample_index"], a["best_seed"]) == ("a#1", 1, 101)
    assert (a["mean_overall"], a["max_overall"], a["min_overall"], a["spread"]) == (
        0.5667,
        0.7,
        0.3,
        0.4,
    )
    assert a["overalls"] == [0.3, 0.7, 0.7] and a["eval_type"] == "K"
    assert (b["samples"], b["judged"], b["best_id"], b["spread"]) == (2, 1, "b#1", 0.0)
    assert (c["judged"], c["best_id"], c["mean_overall"]) == (0, None, None)
    splits = report.summary_dict()
    assert splits["overall_avg"] == {
        "prompts": 3,
        "prompts_judged": 2,
        "samples": 6,
        "samples_judged": 4,
        "k": 3,
        "best_of_k": 0.45,
        "mean_of_k": 0.3833,
        "mean_spread": 0.2,
        "best_of_k_missing_zero": 0.3,
    }
    assert splits["eval_type:Q"]["best_of_k"] == 0.2
    assert "best-of-K" in report.table()
    assert GroupReport.from_rows([{"id": "1", "eval_success": True}]) is None


async def test_k_samples_of_50_prompts_give_200_records_and_50_groups(
    sims: Sims, runtime: Runtime, tmp_path: Path
) -> None:
    out, report = await run_sampled_pipeline(sims, runtime, tmp_path, prompts=50, k=4, seed=3)
    rollouts = load_json(out / "results.json")
    assert len(rollouts) == 200
    assert [r["id"] for r in rollouts[:5]] == ["0#0", "0#1", "0#2", "0#3", "1#0"]
    sampling = Sampling(count=4, base_seed=3)
    for record in rollouts:
        assert record["seed"] == sampling.seed_for(record["prompt_id"], record["sample_index"])
        assert record["success"] and record["termination"] == "answer"
    assert len({r["image_path"] for r in rollouts}) == 200
    evaluated = [r for r in load_json(out / "results_eval.json") if "summary_type" not in r]
    assert len(evaluated) == 200 and all(r["eval_success"] for r in evaluated)

    groups = load_json(out / "groups.json")
    assert [g["prompt_id"] for g in groups] == [str(i) for i in range(50)]
    best_of_k: dict[str, list[float]] = {"overall_avg": []}
    mean_of_k: dict[str, list[float]] = {"overall_avg": []}
    for group in groups:
        ids = [f"{group['prompt_id']}#{k}" for k in range(4)]
        overalls = [sim_overall(i) for i in ids]
        best = max(range(4), key=lambda k: (overalls[k], -k))
        assert group["sample_ids"] == ids and group["overalls"] == overalls
        assert (group["best_id"], group["max_overall"]) == (ids[best], overalls[best])
        assert group["spread"] == round(max(overalls) - min(overalls), 4)
        for split in ("overall_avg", f"eval_type:{group['eval_type']}"):
            best_of_k.setdefault(split, []).append(max(overalls))
            mean_of_k.setdefault(split, []).append(sum(overalls) / 4)
    summary = load_json(out / "groups_summary.json")
    for split, values in best_of_k.items():
        assert summary[split]["best_of_k"] == pytest.approx(sum(values) / len(values), abs=1e-4)
        assert summary[split]["mean_of_k"] == pytest.approx(
            sum(mean_of_k[split]) / len(values), abs=1e-4
        )
        assert summary[split]["k"] == 4
    assert summary["overall_avg"]["prompts"] == 50 and summary["overall_avg"]["samples"] == 200
    assert "best-of-K" in report.text() and "eval_type:Quality-Anchored" in report.text()
    judge_summary = load_json(out / "summary.json")
    assert judge_summary["all"]["denominator"] == 200

    # A second session finds every sample done; another K is refused.
    _, again = await run_sampled_pipeline(sims, runtime, tmp_path, prompts=50, k=4, seed=3)
    assert [(p.skipped, p.done) for p in again.progress] == [(200, 0)] * 3
    with pytest.raises(ConfigurationError, match="samples_per_prompt"):
        await run_sampled_pipeline(sims, runtime, tmp_path, prompts=50, k=2, seed=3)


async def test_the_command_line_samples_and_resumes(
    sims: Sims, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in sims.env(tmp_path / "cache").items():
        monkeypatch.setenv(key, value)
    data = write_bench(tmp_path / "bench", bench_rows(6))
    argv = [
        "pipeline",
        "--input",
        str(data),
        "--output-dir",
        str(tmp_path / "out"),
        "--base-url",
        sims.policy_url,
        "--service-url",
        sims.qwen_url,
        "--render-option",
        "long_side=64",
        "--samples-per-prompt",
        "3",
        "--seed",
        "5",
        "--quiet",
    ]
    assert await run_command(build_parser().parse_args(argv)) == 0
    groups = load_json(tmp_path / "out" / "groups.json")
    assert [g["samples"] for g in groups] == [3] * 6
    assert len(load_json(tmp_path / "out" / "results.json")) == 18
    assert await run_command(build_parser().parse_args(argv)) == 0  # resumed: nothing to do
    bad = build_parser().parse_args([*argv[:-5], "--samples-per-prompt", "2", "--temperature", "0"])
    assert await run_command(bad) == 1
