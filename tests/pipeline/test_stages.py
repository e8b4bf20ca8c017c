"""The stages over one item: rollout records, renders to files, judgements."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import anyio.to_thread
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

from genevolve_async import AuthenticationError, GenEvolveAgent, Runtime, ServiceUnavailableError
from genevolve_async.judge import JudgeScores, normalize_scores
from genevolve_async.pipeline import BatchAborted, InputRow, JudgeStage, RenderStage, RolloutStage
from genevolve_async.renderers import QwenServiceRenderer
from genevolve_async.sim import SimJudge, make_png
from genevolve_async.tools import QueryKnowledge, ToolContext
from tests._hostile import json_values

from ._sims import Sims, start_sims

SPEC_FIELDS = [
    "prompt",
    "gen_prompt",
    "reference_images",
    "messages",
    "termination",
    "rounds",
    "error",
]


class FakeRenderer:
    """Records calls; answers a small image or raises ``fail``."""

    name = "fake"

    def __init__(self, *, needs_reference: bool = False, fail: Exception | None = None) -> None:
        self.needs_reference = needs_reference
        self.fail = fail
        self.calls: list[tuple[str, list[str], int | None]] = []

    async def render(
        self,
        prompt: str,
        reference_paths: Sequence[str | os.PathLike[str]],
        *,
        seed: int | None = None,
    ) -> Image.Image:
        self.calls.append((prompt, [str(p) for p in reference_paths], seed))
        if self.fail is not None:
            raise self.fail
        return Image.new("RGB", (32, 16), "red")


def _is_file(path: str | Path) -> bool:
    return Path(path).is_file()


def _row(
    row_id: str = "7", *, data: dict[str, Any] | None = None, gt: Path | None = None
) -> InputRow:
    data = data if data is not None else {"id": row_id, "prompt": "a red fox"}
    return InputRow(
        id=row_id, safe_id=row_id, index=0, line=1, prompt="a red fox", data=data, gt_path=gt
    )


@pytest.fixture
async def sims() -> Any:
    async with start_sims() as started:
        yield started


async def test_rollout_records_carry_spec_fields_id_and_extras(sims: Sims, tmp_path: Path) -> None:
    async with Runtime() as runtime:
        stage = RolloutStage(sims.agent(runtime, tmp_path / "cache"), parallel=2)
        await stage.prepare()
        data = {
            "id": "7",
            "question": "a red fox",
            "eval_type": "Quality-Anchored",
            "rounds": "kept?",
        }
        outcome = await stage.process(_row(data=data))
    record = outcome.record
    assert outcome.ok and list(record)[: len(SPEC_FIELDS)] == SPEC_FIELDS
    assert record["id"] == "7" and record["eval_type"] == "Quality-Anchored"
    assert record["rounds"] == 4  # the record's own field wins over an input field
    assert record["reference_images"] and all(
        _is_file(r["local_path"]) for r in record["reference_images"]
    )
    settings = stage.settings()
    assert settings["model"] == "GenEvolve" and len(settings["skills_sha256"]) == 16


class _RefusingTool:
    name = "search"
    description = "refuses"
    parameters: dict[str, Any] = {"type": "object", "properties": {}}  # noqa: RUF012

    async def __call__(self, arguments: dict[str, Any], context: ToolContext) -> str:
        raise AuthenticationError(
            "search refused the credentials (HTTP 403)", service="serper", status=403
        )


async def test_a_refused_key_stops_the_batch(sims: Sims) -> None:
    async with Runtime() as runtime:
        agent = GenEvolveAgent(
            runtime=runtime, base_url=sims.policy_url, tools=[_RefusingTool(), QueryKnowledge()]
        )
        with pytest.raises(BatchAborted, match="authentication"):
            await RolloutStage(agent).process(_row())


async def test_render_stage_uses_the_program_or_falls_back(tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    ref.write_bytes(make_png((1, 2, 3)))
    renderer = FakeRenderer()
    stage = RenderStage(renderer, out_dir=tmp_path / "out", seed=5)
    await stage.prepare()
    program = {
        "id": "7",
        "prompt": "a red fox",
        "gen_prompt": "the first reference image, at dusk",
        "reference_images": [
            {"img_id": "IMG_001", "local_path": str(ref)},
            {"img_id": "IMG_002", "local_path": str(tmp_path / "gone.png")},
        ],
    }
    outcome = await stage.process(_row(data=program))
    assert renderer.calls[-1] == ("the first reference image, at dusk", [str(ref)], 5)
    record = outcome.record
    assert outcome.ok and record["success"] is True and record["image_status"] == "ok"
    # Absolute, as the original's: both name the same file.
    assert (
        record["image_path"] == record["output_path"] == str(tmp_path / "out" / "images" / "7.png")
    )
    assert _is_file(record["output_path"])
    assert record["gen_prompt"] == program["gen_prompt"]  # the rollout's fields stay
    with Image.open(record["output_path"]) as image:
        assert image.size == (32, 16)
    await stage.process(_row(data={"id": "7", "gen_prompt": "", "reference_images": []}))
    assert renderer.calls[-1] == ("a red fox", [], 5)
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["7.png"]


async def test_render_failures_become_records(tmp_path: Path) -> None:
    stage = RenderStage(FakeRenderer(needs_reference=True), out_dir=tmp_path)
    await stage.prepare()
    outcome = await stage.process(_row())
    assert (
        not outcome.ok
        and outcome.record["success"] is False
        and outcome.record["image_path"] == outcome.record["output_path"] == ""
    )
    assert outcome.record["image_status"].startswith(
        "error: invalid_request: renderer 'fake' needs"
    )
    failing = RenderStage(FakeRenderer(fail=ServiceUnavailableError("qwen 503")), out_dir=tmp_path)
    outcome = await failing.process(_row())
    assert outcome.error_kind == "service_unavailable"
    assert outcome.record["image_status"] == "error: service_unavailable: qwen 503"
    fatal = RenderStage(FakeRenderer(fail=AuthenticationError("bad key")), out_dir=tmp_path)
    with pytest.raises(AuthenticationError):
        await fatal.process(_row())


async def test_render_through_the_simulated_qwen_service(sims: Sims, tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    ref.write_bytes(make_png((9, 9, 9), (64, 48)))
    async with (
        Runtime() as runtime,
        QwenServiceRenderer([sims.qwen_url], runtime=runtime) as renderer,
    ):
        stage = RenderStage(renderer, out_dir=tmp_path / "out")
        await stage.prepare()
        data = {
            "gen_prompt": "the first reference image",
            "reference_images": [{"local_path": str(ref)}],
        }
        outcome = await stage.process(_row(data=data))
        missing = await stage.process(_row("8", data={"gen_prompt": "x", "reference_images": []}))
    assert outcome.ok and _is_file(outcome.record["output_path"])
    assert sims.qwen.renders == 1 and sims.qwen.received[0]["image_count"] == 1
    assert not missing.ok and "needs at least one reference image" in missing.record["image_status"]


async def test_judge_stage_scores_or_explains(sims: Sims, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "7.png").write_bytes(make_png((5, 5, 5)))
    gt = tmp_path / "gt.png"
    gt.write_bytes(make_png((6, 6, 6)))
    rendered = {
        "id": "7",
        "prompt": "a red fox",
        "messages": ["long"],
        "error": None,
        "image_path": "images/7.png",
        "success": True,
        "eval_type": "Knowledge-Anchored",
    }
    async with Runtime() as runtime:
        stage = JudgeStage(sims.judge_client(runtime, model="judge-m"), image_root=tmp_path)
        ok = await stage.process(_row(data=rendered, gt=gt))
        # An absolute path into a folder since moved: the results' own images/ stand in.
        moved = await stage.process(
            _row(
                data={**rendered, "image_path": str(tmp_path / "gone" / "images" / "7.png")}, gt=gt
            )
        )
        assert moved.ok, moved.record
        no_image = await stage.process(
            _row(data={**rendered, "image_path": "images/none.png"}, gt=gt)
        )
        failed_render = await stage.process(
            _row(data={**rendered, "success": False, "image_status": "error: timeout: x"}, gt=gt)
        )
        no_gt = await stage.process(
            _row(data={**rendered, "gt_image": "a.jpg"}, gt=tmp_path / "a.jpg")
        )
        bad_gt_file = tmp_path / "bad.png"
        bad_gt_file.write_bytes(b"not an image")
        bad_gt = await stage.process(_row(data=rendered, gt=bad_gt_file))
    record = ok.record
    assert ok.ok and record["eval_success"] is True and record["error"] is None
    rationale = SimJudge.verdict("7")["rationale"]
    # The original's `scores`: the rationale, then the normalised figures.
    assert record["scores"] == {
        "rationale": rationale,
        **normalize_scores(JudgeScores(**SimJudge.verdict("7"))),
    }
    assert record["rationale"] == rationale
    # The rendered row's fields stay, as in the original's results_eval.json.
    assert record["messages"] == ["long"] and record["eval_type"] == "Knowledge-Anchored"
    assert next(iter(record)) == "id" and record["judge_model"] == "judge-m"
    for outcome, words in (
        (no_image, "generated image not found: images/none.png"),
        (failed_render, "no generated image: error: timeout"),
        (no_gt, "ground-truth image not found: a.jpg"),
        (bad_gt, "cannot read image bad.png"),
    ):
        assert not outcome.ok and outcome.record["eval_success"] is False
        assert outcome.record["scores"] is None and words in outcome.record["error"]
    assert len(sims.judge.requests) == 2  # rows without both images are never sent


# -- hostile results rows for evaluate -----------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        {"image_path": "../../secret.png"},
        {"image_path": "images/../../secret.png"},
        {"output_path": "/etc/hostname"},
        {"image_path": "images/\x00.png"},
    ],
)
async def test_evaluate_reads_generated_images_only_inside_its_folder(
    tmp_path: Path, row: dict[str, Any]
) -> None:
    root = tmp_path / "results"
    (root / "images").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(make_png((1, 2, 3)))
    stage = JudgeStage(cast(Any, None), image_root=root)
    found = await stage._generated(row)
    assert isinstance(found, tuple)
    kind, why = found
    assert kind == "invalid_request" and "is outside" in why


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(json_values, json_values)
async def test_any_image_fields_give_a_path_inside_or_a_reason(
    tmp_path: Path, image_path: Any, output_path: Any
) -> None:
    stage = JudgeStage(cast(Any, None), image_root=tmp_path)
    found = await stage._generated({"image_path": image_path, "output_path": output_path})
    if isinstance(found, Path):
        root = await anyio.to_thread.run_sync(os.path.realpath, tmp_path)
        assert str(found).startswith(root)
    else:
        assert found[0] in ("invalid_request", "missing_image") and found[1]
