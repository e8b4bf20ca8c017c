"""Trajectory export in the GenEvolve-Data-SFT layout, loaded back with ``datasets``."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from genevolve_async import ConfigurationError, RetryPolicy, Runtime, RuntimeConfig
from genevolve_async.pipeline import ExportOptions, export_trajectories
from genevolve_async.pipeline._cli import build_parser
from genevolve_async.pipeline._commands import run_command
from genevolve_async.pipeline._trajectory import plan_trajectory, sft_messages
from genevolve_async.protocol import parse_reply
from genevolve_async.sim import make_png
from tests._hostile import json_values

from ._sims import load_json, start_sims
from .test_groups import run_sampled_pipeline, sim_overall


async def _no_sleep(_: float) -> None:
    await anyio.lowlevel.checkpoint()


@pytest.fixture
async def sampled(tmp_path: Path) -> AsyncIterator[Path]:
    """The output folder of K=4 samples of 50 prompts, run, rendered and judged."""
    async with (
        start_sims() as sims,
        Runtime(RuntimeConfig(retry=RetryPolicy(sleep=_no_sleep))) as runtime,
    ):
        out, _ = await run_sampled_pipeline(sims, runtime, tmp_path, prompts=50, k=4)
        yield out


def _load(folder: Path) -> Any:
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset(
        "json",
        data_files=str(folder / "train.jsonl"),
        split="train",
        cache_dir=str(folder.parent / f"hf-cache-{folder.name}"),
    )


def _registered(messages: list[dict[str, str]]) -> list[tuple[str, str]]:
    """``(IMG id, local_path)`` pairs as the image_search observations list them."""
    pairs, current = [], None
    for message in messages[2:]:
        for line in message["content"].splitlines():
            if line.startswith("IMG_"):
                current = line.split(":", 1)[0]
            elif current and line.startswith("  local_path: "):
                pairs.append((current, line.split(": ", 1)[1]))
                current = None
    return pairs


def _provenance(folder: Path) -> list[dict[str, str]]:
    with (folder / "provenance.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


async def test_the_export_loads_with_datasets_and_round_trips(
    sampled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    dest = tmp_path / "sft"
    report = await export_trajectories(sampled, dest)
    assert (report.trajectories, report.images, report.missing_images) == (200, 1000, 0)
    loaded = await anyio.to_thread.run_sync(_load, dest)
    assert loaded.column_names == ["messages", "images"] and len(loaded) == 200

    source = {r["id"]: r for r in load_json(sampled / "results.json")}
    rows = _provenance(dest)
    assert [r["trajectory"] for r in rows] == [f"traj_{n:05d}" for n in range(200)]
    for number, (record, row) in enumerate(zip(loaded, rows, strict=True)):
        original = source[row["id"]]
        assert record["messages"] == original["messages"]  # system prompt to <answer>
        assert record["messages"][0]["role"] == "system"
        answer = parse_reply(record["messages"][-1]["content"]).answer
        assert answer is not None and answer["gen_prompt"] == original["gen_prompt"]
        registered = _registered(original["messages"])
        assert record["images"] == [
            f"images/traj_{number:05d}/{img_id}.jpg" for img_id, _ in registered
        ]
        for relative, (_, local) in zip(record["images"], registered, strict=True):
            with Image.open(dest / relative) as exported, Image.open(local) as downloaded:
                assert exported.format == "JPEG" and exported.size == downloaded.size
        assert float(row["overall"]) == sim_overall(row["id"])
        assert int(row["seed"]) == original["seed"]
    card = (dest / "README.md").read_text()
    assert "200 tool-orchestrated" in card and "path: train.jsonl" in card


async def test_best_of_group_and_min_overall_select_by_judged_score(
    sampled: Path, tmp_path: Path
) -> None:
    groups = load_json(sampled / "groups.json")
    report = await export_trajectories(
        sampled / "results.json", tmp_path / "best", options=ExportOptions(best_of_group=True)
    )
    assert report.trajectories == 50 and report.skipped == {"not the best of its group": 150}
    assert [r["id"] for r in _provenance(tmp_path / "best")] == [g["best_id"] for g in groups]

    scores = [r for r in load_json(sampled / "results_eval.json") if "summary_type" not in r]
    expected = [r["id"] for r in scores if r["scores"]["overall"] >= 0.5]
    report = await export_trajectories(
        sampled / "results_eval.json", tmp_path / "good", options=ExportOptions(min_overall=0.5)
    )
    assert [r["id"] for r in _provenance(tmp_path / "good")] == expected
    assert report.skipped == {"below --min-overall": 200 - len(expected)}


def _record(cache: Path, **changes: Any) -> dict[str, Any]:
    for name in ("a.png", "b.png", "c.png"):
        (cache / name).write_bytes(make_png((200, 20, 20)))
    observation = "\n".join(
        [
            "<tool_response>",
            "--- image search result for [x] ---",
            f"IMG_001: title: a\n  url: http://h/a.png\n  local_path: {cache / 'a.png'}",
            f"IMG_002: title: b\n  url: http://h/b.png\n  local_path: {cache / 'b.png'}",
            f"IMG_003: title: c\n  url: http://h/c.png\n  local_path: {cache / 'c.png'}",
            "--- end of image search result ---",
            "</tool_response>",
        ]
    )
    answer = (
        '{"gen_prompt": "the first reference image", "reference_images": [{"img_id": "IMG_002"}]}'
    )
    record: dict[str, Any] = {
        "id": "r",
        "prompt": "IMG_009: a request quoting an id\n  local_path: /nope",
        "termination": "answer",
        "reference_images": [{"img_id": "IMG_002", "local_path": str(cache / "b.png")}],
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "IMG_009: a request quoting an id\n  local_path: /nope"},
            {"role": "assistant", "content": "<tool_call>{}</tool_call>"},
            {"role": "user", "content": observation},
            {"role": "assistant", "content": f"<answer>{answer}</answer>"},
        ],
    }
    record.update(changes)
    return record


def test_planning_skips_unanswered_rows_and_missing_references(tmp_path: Path) -> None:
    plan = plan_trajectory(_record(tmp_path), 7)
    assert not isinstance(plan, str)
    assert [(i.img_id, i.cited, i.relative) for i in plan.images] == [
        ("IMG_001", False, "images/traj_00007/IMG_001.jpg"),
        ("IMG_002", True, "images/traj_00007/IMG_002.jpg"),
        ("IMG_003", False, "images/traj_00007/IMG_003.jpg"),
    ]
    (tmp_path / "c.png").unlink()
    plan = plan_trajectory(_record(tmp_path), 0)
    assert not isinstance(plan, str) and (len(plan.images), plan.missing) == (3, 0)
    record = _record(tmp_path)
    (tmp_path / "c.png").unlink()
    plan = plan_trajectory(record, 0)
    assert not isinstance(plan, str) and (len(plan.images), plan.missing) == (2, 1)
    (tmp_path / "b.png").unlink()
    assert plan_trajectory(record, 0) == "reference image missing"
    assert plan_trajectory(_record(tmp_path, termination="no_answer"), 0) == "not answered"
    cut = _record(tmp_path)
    cut["messages"] = cut["messages"][:-1]
    assert plan_trajectory(cut, 0) == "no parseable <answer> at the end"
    # An agent that records its registry is believed over the observations.
    listed = _record(
        tmp_path, registered_images=[{"img_id": "IMG_001", "local_path": str(tmp_path / "a.png")}]
    )
    plan = plan_trajectory(listed, 0)
    assert not isinstance(plan, str) and [i.img_id for i in plan.images] == ["IMG_001", "IMG_002"]


def test_native_tool_calls_become_the_text_protocol() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "req"},
        {
            "role": "assistant",
            "content": "<think>go</think>",
            "tool_calls": [
                {
                    "id": "1",
                    "type": "function",
                    "function": {"name": "search", "arguments": '{"queries": ["x"]}'},
                },
                {
                    "id": "2",
                    "type": "function",
                    "function": {"name": "image_search", "arguments": "{bad"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "one"},
        {"role": "tool", "tool_call_id": "2", "content": "two"},
        {"role": "assistant", "content": [{"type": "text", "text": "<answer>{}</answer>"}]},
    ]
    assert sft_messages(messages) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "req"},
        {
            "role": "assistant",
            "content": '<think>go</think>\n<tool_call>{"name":"search","arguments":{"queries":["x"]}}</tool_call>\n'
            '<tool_call>{"name":"image_search","arguments":"{bad"}</tool_call>',
        },
        {
            "role": "user",
            "content": "<tool_response>\none\n</tool_response>\n<tool_response>\ntwo\n</tool_response>",
        },
        {"role": "assistant", "content": "<answer>{}</answer>"},
    ]


async def test_unreadable_images_paths_rewritten_and_refusals(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    results = tmp_path / "run" / "results.json"
    results.parent.mkdir()
    records = [_record(cache, id=str(i)) for i in range(3)]
    records.append(_record(cache, id="3", termination="max_rounds_reached"))
    results.write_text(json.dumps(records))
    (cache / "c.png").write_bytes(b"not an image")
    dest = tmp_path / "sft"
    report = await export_trajectories(results, dest, options=ExportOptions(rewrite_paths=True))
    assert (report.trajectories, report.images, report.missing_images) == (3, 6, 3)
    assert report.skipped == {"not answered": 1}
    lines = [json.loads(x) for x in (dest / "train.jsonl").read_text().splitlines()]
    assert lines[2]["images"] == ["images/traj_00002/IMG_001.jpg", "images/traj_00002/IMG_002.jpg"]
    observation = lines[2]["messages"][3]["content"]
    assert "local_path: images/traj_00002/IMG_002.jpg" in observation
    assert f"local_path: {cache / 'c.png'}" in observation  # not exported: left as it was
    assert lines[2]["messages"][1]["content"].endswith(
        "local_path: /nope"
    )  # the request is not touched

    (cache / "b.png").write_bytes(b"broken")  # the cited reference: the trajectory goes
    report = await export_trajectories(results, tmp_path / "sft2")
    assert report.trajectories == 0 and report.skipped["reference image unreadable"] == 3
    assert not list((tmp_path / "sft2" / "images").iterdir())

    with pytest.raises(ConfigurationError, match="not an empty folder"):
        await export_trajectories(results, dest)
    with pytest.raises(ConfigurationError, match="need judge scores"):
        await export_trajectories(
            results, tmp_path / "x", options=ExportOptions(best_of_group=True)
        )
    with pytest.raises(ConfigurationError, match=r"no results\.json"):
        await export_trajectories(tmp_path / "cache", tmp_path / "y")
    args = build_parser().parse_args(
        [
            "export",
            "--results",
            str(results.parent),
            "--out",
            str(tmp_path / "z"),
            "--min-overall",
            "0.5",
        ]
    )
    assert await run_command(args) == 1


async def test_the_export_command(
    sampled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "--results", str(sampled), "--out", str(tmp_path / "cli"), "--best-of-group"]
    assert await run_command(build_parser().parse_args(argv)) == 0
    assert "exported 50 trajectories" in capsys.readouterr().out
    assert len((tmp_path / "cli" / "train.jsonl").read_text().splitlines()) == 50


async def test_an_agent_registry_agrees_with_the_observations(sampled: Path) -> None:
    record = load_json(sampled / "results.json")[0]
    if "registered_images" not in record:
        pytest.skip("the agent does not record registered_images yet")
    assert [r["img_id"] for r in record["registered_images"]] == [
        img_id for img_id, _ in _registered(record["messages"])
    ]


# -- hostile results files ---------------------------------------------------------


@pytest.mark.parametrize(
    "img_id", ["../../x", "IMG_001/../../x", "IMG_001\n", "IMG_\u0661\u0662\u0663", "/etc/x"]
)
async def test_crafted_image_ids_are_refused_and_nothing_leaves_the_folder(
    tmp_path: Path, img_id: str
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    record = _record(cache)
    record["registered_images"] = [{"img_id": img_id, "local_path": str(cache / "a.png")}]
    record["reference_images"] = [{"img_id": img_id, "local_path": str(cache / "a.png")}]
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps([record]))
    before = await anyio.to_thread.run_sync(lambda: set(tmp_path.rglob("*")))
    out = tmp_path / "deep" / "er" / "out"
    report = await export_trajectories(folder, out)
    assert report.trajectories == 0
    assert any("is not IMG_ followed by digits" in reason for reason in report.skipped)
    created = await anyio.to_thread.run_sync(lambda: set(tmp_path.rglob("*"))) - before
    assert all(p == tmp_path / "deep" or p.is_relative_to(tmp_path / "deep") for p in created)
    assert not await anyio.to_thread.run_sync(lambda: list(out.rglob("*.jpg")))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    json_values,
    st.sampled_from(["messages", "registered_images", "reference_images", "termination"]),
)
def test_any_results_row_is_planned_or_skipped_with_a_reason(
    tmp_path: Path, value: Any, field: str
) -> None:
    record = _record(tmp_path, **{field: value})
    try:
        plan = plan_trajectory(record, 0)
    except (TypeError, KeyError, AttributeError) as exc:  # pragma: no cover - the property
        raise AssertionError(f"unclassified {type(exc).__name__} for {field}={value!r}") from exc
    assert isinstance(plan, str) or plan.images is not None
