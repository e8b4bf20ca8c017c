"""What the commands build from flags: judge endpoint, tools, merges, finalize."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import anyio
import pytest

from genevolve_async import ConfigurationError
from genevolve_async.pipeline._checkpoint import CheckpointWriter, scan_checkpoint
from genevolve_async.pipeline._cli import build_parser
from genevolve_async.pipeline._commands import (
    _merge_folder,
    _tools,
    finalize_folder,
    judge_endpoint,
)


def test_the_judge_endpoint_comes_from_flags_then_ours_then_the_originals() -> None:
    env = {
        "GENEVOLVE_JUDGE_BASE_URL": "http://ours/v1",
        "GENEVOLVE_JUDGE_API_KEY": "ours-key",
        "OPENAI_API_BASE": "http://original/v1",
        "OPENAI_API_KEY": "original-key",
        "OPENAI_BASE_URL": "http://policy/v1",
    }
    assert judge_endpoint("http://flag/v1", "flag-key", env) == ("http://flag/v1", "flag-key")
    assert judge_endpoint(None, None, env) == ("http://ours/v1", "ours-key")
    original = {k: v for k, v in env.items() if not k.startswith("GENEVOLVE")}
    assert judge_endpoint(None, None, original) == ("http://original/v1", "original-key")
    # The policy's OPENAI_BASE_URL never stands in for the judge.
    with pytest.raises(ConfigurationError, match="GENEVOLVE_JUDGE_BASE_URL") as info:
        judge_endpoint(None, None, {"OPENAI_BASE_URL": "http://policy/v1", "OPENAI_API_KEY": "k"})
    assert "OPENAI_BASE_URL is the policy's server" in str(info.value)
    assert judge_endpoint("http://x/v1", None, {}) == ("http://x/v1", "EMPTY")


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", "--prompt", "p", "--output-dir", "o", *argv])


def test_search_tools_need_a_serper_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SERPER_API_KEY"):
        _tools(_args())
    assert [t.name for t in _tools(_args("--tools", "query_knowledge"))] == ["query_knowledge"]
    with pytest.raises(ConfigurationError, match="unknown tool"):
        _tools(_args("--tools", "paint"))
    monkeypatch.setenv("SERPER_API_KEY", "k")
    assert [t.name for t in _tools(_args())] == ["search", "image_search", "query_knowledge"]


async def _checkpoint(path: Path, stage: str, ids: list[str], shard: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = CheckpointWriter(path, stage=stage, settings={"backend": "fake", "shard": shard})
    await writer.open(scan_checkpoint(path, repair=True))
    for row_id in ids:
        record = {
            "id": row_id,
            "prompt": "p",
            "success": True,
            "image_path": f"images/{row_id}.png",
        }
        await writer.append(row_id=row_id, index=int(row_id), ok=True, record=record)
    await writer.aclose()
    (path.parent / "images").mkdir(exist_ok=True)
    for row_id in ids:
        (path.parent / "images" / f"{row_id}.png").write_bytes(b"png " + row_id.encode())


def test_merge_joins_folders_with_their_images(tmp_path: Path) -> None:
    anyio.run(_checkpoint, tmp_path / "a" / "render.jsonl", "render", ["3", "0"], "1/2")
    anyio.run(_checkpoint, tmp_path / "b" / "render.jsonl", "render", ["1", "2"], "2/2")
    notes = _merge_folder([tmp_path / "a", tmp_path / "b" / "render.jsonl"], tmp_path / "m", False)
    assert notes == ["render.jsonl: 4 items from 2 checkpoints"]
    finalize_folder(tmp_path / "m")
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert [r["id"] for r in results] == ["0", "1", "2", "3"]
    assert all(
        (tmp_path / "m" / r["image_path"]).read_bytes() == b"png " + r["id"].encode()
        for r in results
    )
    with pytest.raises(ConfigurationError, match="no checkpoint"):
        _merge_folder([tmp_path / "nothing"], tmp_path / "m2", False)
    with pytest.raises(ConfigurationError, match="no checkpoint"):
        finalize_folder(tmp_path / "nothing")


def test_finalize_writes_results_json_from_the_last_stage_of_a_chain(tmp_path: Path) -> None:
    anyio.run(_checkpoint, tmp_path / "rollouts.jsonl", "run", ["0"], "")
    anyio.run(_checkpoint, tmp_path / "render.jsonl", "render", ["0"], "")
    summaries = finalize_folder(tmp_path)
    assert [s.kind for s in summaries] == ["run", "render"]
    assert summaries[0].files == [] and summaries[1].files == [tmp_path / "results.json"]


def test_the_original_flags_parse() -> None:
    parser = build_parser()
    run = parser.parse_args(
        [
            "run",
            "--input",
            "x.jsonl",
            "--output-dir",
            "o",
            "--base-url",
            "http://a/v1",
            "--base-url",
            "http://b/v1",
            "--model",
            "GenEvolve",
            "--parallel",
            "4",
            "--max-samples",
            "10",
            "--resume",
        ]
    )
    assert (
        run.base_url == ["http://a/v1", "http://b/v1"] and run.resume is True and run.parallel == 4
    )
    render = parser.parse_args(
        [
            "render",
            "--input",
            "r.json",
            "--output-dir",
            "o",
            "--backend",
            "qwen-image-edit-service",
            "--service-url",
            "http://q1",
            "--service-url",
            "http://q2",
            "--parallel",
            "8",
        ]
    )
    assert render.service_url == ["http://q1", "http://q2"]
    evaluate = parser.parse_args(
        [
            "evaluate",
            "--results",
            "r.json",
            "--gt-root",
            "bench",
            "--model",
            "gemini-3.1-pro-preview",
            "--max-workers",
            "16",
            "--rpm",
            "60",
            "--resume",
        ]
    )
    assert (evaluate.input, evaluate.judge_model, evaluate.parallel, evaluate.rpm) == (
        Path("r.json"),
        "gemini-3.1-pro-preview",
        16,
        60.0,
    )
    assert evaluate.output_dir is None
    pipe = parser.parse_args(
        [
            "pipeline",
            "--input",
            "b",
            "--output-dir",
            "o",
            "--shard",
            "2/3",
            "--judge-model",
            "j",
            "--render-parallel",
            "3",
        ]
    )
    assert (pipe.shard, pipe.judge_model, pipe.render_parallel, pipe.parallel) == (
        "2/3",
        "j",
        3,
        128,
    )
