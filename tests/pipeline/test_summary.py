"""Final summaries and results files written from checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio

from genevolve_async.judge import SUMMARY_CSV_COLUMNS
from genevolve_async.pipeline import EvalOutputs, finalize_stage
from genevolve_async.pipeline._checkpoint import CheckpointWriter, scan_checkpoint
from genevolve_async.pipeline._summary import StageSummary


def _rollout(i: int, termination: str = "answer", kind: str | None = None) -> dict[str, Any]:
    return {
        "id": str(i),
        "termination": termination,
        "error": {"kind": kind, "message": "x"} if kind else None,
        "tool_calls": {"search": 1, "image_search": 2},
        "usage": {"prompt_tokens": 100, "completion_tokens": 10},
        "timings": {"total": float(i + 1)},
    }


def test_rollout_figures() -> None:
    summary = StageSummary(kind="run")
    for i in range(4):
        summary.add(_rollout(i))
    summary.add(_rollout(9, "error", "service_unavailable"))
    summary.add(_rollout(8, "max_rounds_reached"))
    text = "\n".join(summary.lines(session=[0.5, 1.5]))
    assert summary.terminations == {"answer": 4, "error": 1, "max_rounds_reached": 1}
    assert "errors by kind: service_unavailable 1" in text
    assert "tool calls per rollout: mean 3.00, max 3 (image_search 12, search 6)" in text
    assert "tokens: prompt 600, completion 60, 110 per rollout" in text
    assert "rollout seconds: p50 3.50" in text and "this session: 2 items" in text


def test_render_and_judge_failures_are_counted_by_kind() -> None:
    render = StageSummary(kind="render")
    render.add({"success": True})
    render.add({"success": False, "image_status": "error: service_unavailable: qwen answered 503"})
    assert (render.ok, render.errors) == (1, {"service_unavailable": 1})
    judge = StageSummary(kind="evaluate")
    judge.add({"eval_success": False, "error_kind": "missing_image"})
    assert judge.errors == {"missing_image": 1}


async def _checkpoint(path: Path, stage: str, records: list[dict[str, Any]]) -> None:
    writer = CheckpointWriter(path, stage=stage, settings={})
    await writer.open(scan_checkpoint(path, repair=True))
    for index, record in reversed(list(enumerate(records))):
        await writer.append(row_id=record["id"], index=index, ok=True, record=record)
    await writer.aclose()


def test_the_judge_stage_writes_eval_files_in_input_order(tmp_path: Path) -> None:
    scores = {
        "faithfulness": 1.0,
        "visual_correctness": 0.5,
        "text_accuracy": 0.5,
        "aesthetics": 1.0,
        "text_accuracy_na": True,
        "overall": 0.6,
    }
    rows = [
        {
            "id": str(i),
            "eval_type": "Quality-Anchored",
            "eval_success": i != 2,
            "scores": scores if i != 2 else None,
        }
        for i in range(4)
    ]
    anyio.run(_checkpoint, tmp_path / "eval.jsonl", "evaluate", rows)
    summary = finalize_stage("evaluate", tmp_path, tmp_path / "eval.jsonl", "results_eval.json")
    written = json.loads((tmp_path / "results_eval.json").read_text())
    assert [r.get("id") for r in written[:4]] == ["0", "1", "2", "3"]
    assert [r["summary_type"] for r in written[4:]] == ["eval_type:Quality-Anchored", "overall_avg"]
    assert written[5]["count"] == 3 and written[5]["avg_scores"]["overall"] == 0.6
    layout = json.loads((tmp_path / "summary.json").read_text())
    assert layout["eval_json"] == str((tmp_path / "results_eval.json").resolve())
    assert layout["all"]["denominator"] == 4
    assert layout["all"]["overall_missing_zero"] == round(0.6 * 3 / 4, 4)
    assert (tmp_path / "summary.csv").read_text().splitlines()[0] == ",".join(SUMMARY_CSV_COLUMNS)
    assert "all" in summary.eval_table and summary.ok == 3


def test_the_judge_stage_writes_where_the_original_flags_say(tmp_path: Path) -> None:
    rows = [
        {"id": "0", "eval_success": True, "success": True, "scores": {"overall": 0.5}},
        {"id": "1", "eval_success": False, "success": False, "scores": None},
    ]
    anyio.run(_checkpoint, tmp_path / "eval.jsonl", "evaluate", rows)
    outputs = EvalOutputs(
        results_eval=tmp_path / "o" / "eval.json",
        summary_json=tmp_path / "s" / "sum.json",
        summary_csv=tmp_path / "c" / "sum.csv",
        total_cases=10,
    )
    finalize_stage(
        "evaluate", tmp_path, tmp_path / "eval.jsonl", "results_eval.json", eval_outputs=outputs
    )
    assert not (tmp_path / "results_eval.json").exists()
    layout = json.loads((tmp_path / "s" / "sum.json").read_text())
    assert layout["eval_json"] == str(tmp_path / "o" / "eval.json")
    assert (layout["total_cases"], layout["all"]["overall_missing_zero"]) == (10, 0.05)
    assert layout["missing_case_ids"] == ["1"]
    assert (tmp_path / "c" / "sum.csv").read_text().splitlines()[1].startswith("all,1,10,9,")


def test_summarising_only_writes_nothing(tmp_path: Path) -> None:
    anyio.run(_checkpoint, tmp_path / "rollouts.jsonl", "run", [_rollout(0)])
    summary = finalize_stage("run", tmp_path, tmp_path / "rollouts.jsonl", None)
    assert summary.items == 1 and not (tmp_path / "results.json").exists()
    finalize_stage("run", tmp_path, tmp_path / "rollouts.jsonl", "results.json")
    assert [r["id"] for r in json.loads((tmp_path / "results.json").read_text())] == ["0"]


def test_each_error_kind_comes_with_its_first_reason() -> None:
    judge = StageSummary(kind="evaluate")
    judge.add(
        {"eval_success": False, "error_kind": "missing_image", "error": "the row names no gt_image"}
    )
    judge.add({"eval_success": False, "error_kind": "missing_image", "error": "another reason"})
    judge.add({"eval_success": True})
    lines = judge.lines()
    assert lines[0] == "[evaluate] 3 items, 1 ok, 2 not ok"
    assert "  errors by kind: missing_image 2" in lines
    assert "    missing_image, e.g.: the row names no gt_image" in lines
    single = StageSummary(kind="render")
    single.add({"success": False, "image_status": "error: timeout: no answer in 30s"})
    assert single.lines()[0] == "[render] 1 item, 0 ok, 1 not ok"
    assert "    timeout, e.g.: error: timeout: no answer in 30s" in single.lines()


def test_answers_without_references_are_counted() -> None:
    run = StageSummary(kind="run")
    run.add({"termination": "answer", "reference_images": [{"img_id": "IMG_001"}]})
    run.add({"termination": "answer", "reference_images": []})
    run.add({"termination": "error", "error": {"kind": "timeout", "message": "no answer"}})
    lines = run.lines()
    assert "  reference images per answer: mean 0.50; 1 answer with none" in lines
    assert "    timeout, e.g.: no answer" in lines
