from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from genevolve_async import Runtime
from genevolve_async.judge import (
    DEFAULT_JUDGE_USER_TEMPLATE,
    DEFAULT_RUBRIC,
    IMAGE_ORDER_NOTE,
    JudgeClient,
    build_judge_messages,
    fill_judge_user_template,
    load_judge_text,
    load_rubric,
)
from genevolve_async.sim import SimServer, make_png

GENERATED = "data:image/jpeg;base64,R0VO"
GROUND_TRUTH = "data:image/jpeg;base64,R1Q="


def _messages() -> list[dict[str, Any]]:
    return build_judge_messages(
        rubric=DEFAULT_RUBRIC,
        sample_id="case-17",
        request="The Eiffel Tower at dusk with a sign reading 'BONSOIR'",
        generated_uri=GENERATED,
        ground_truth_uri=GROUND_TRUTH,
    )


def test_system_rubric_then_one_user_message() -> None:
    messages = _messages()
    assert [message["role"] for message in messages] == ["system", "user"]
    assert messages[0]["content"] == DEFAULT_RUBRIC


def test_text_then_generated_then_ground_truth() -> None:
    content = _messages()[1]["content"]
    assert isinstance(content, list)
    assert [part["type"] for part in content] == ["text", "image_url", "image_url"]
    # The rubric calls the generated image "Image 1": it must come first.
    assert content[1]["image_url"] == {"url": GENERATED}
    assert content[2]["image_url"] == {"url": GROUND_TRUTH}


def test_text_part_carries_id_request_and_image_order() -> None:
    text = _messages()[1]["content"][0]["text"]
    assert "case-17" in text
    assert "The Eiffel Tower at dusk with a sign reading 'BONSOIR'" in text
    assert IMAGE_ORDER_NOTE in text
    assert IMAGE_ORDER_NOTE == "Image 1 is the generated image, Image 2 the ground truth."


def test_messages_are_fresh_objects() -> None:
    first, second = _messages(), _messages()
    assert first == second
    assert first[1] is not second[1]


# ---- the original's texts loaded from files give the original's request ----------
# Our own wording, in the original's layout: a rubric file, and a user text
# whose lines name the sample, the request, then which image is which.

ORIGINAL_STYLE_RUBRIC = (
    "You are a TEST evaluator.\nScore Image 1 against Image 2.\nOutput JSON only.\n"
)
ORIGINAL_STYLE_USER = (
    "Sample id: {sample_id}\n\n"
    "Task to check:\n{request}\n\n"
    "Image 1: the generated image.\n"
    "Image 2: the reference image.\n\n"
    'Answer with one JSON object like {"faithfulness": 1}.'
)


def test_user_template_fills_only_its_two_fields() -> None:
    text = fill_judge_user_template(
        ORIGINAL_STYLE_USER, sample_id="7", request="a sign reading {sample_id}"
    )
    assert text == (
        "Sample id: 7\n\nTask to check:\na sign reading {sample_id}\n\n"
        "Image 1: the generated image.\nImage 2: the reference image.\n\n"
        'Answer with one JSON object like {"faithfulness": 1}.'
    )
    assert DEFAULT_JUDGE_USER_TEMPLATE.endswith(IMAGE_ORDER_NOTE)


async def test_the_originals_texts_give_the_originals_judge_request(tmp_path: Path) -> None:
    rubric_file, user_file = tmp_path / "rubric.txt", tmp_path / "user.txt"
    rubric_file.write_text(ORIGINAL_STYLE_RUBRIC, encoding="utf-8")
    user_file.write_text(ORIGINAL_STYLE_USER, encoding="utf-8")
    generated, truth = tmp_path / "gen.png", tmp_path / "gt.png"
    generated.write_bytes(make_png((10, 20, 30)))
    truth.write_bytes(make_png((30, 20, 10)))
    bodies: list[dict[str, Any]] = []

    async def chat(request: web.Request) -> web.Response:
        bodies.append(json.loads(await request.read()))
        verdict = {
            "rationale": "ok",
            "faithfulness": 1,
            "visual_correctness": 0.5,
            "text_accuracy": 0.5,
            "aesthetics": 1,
            "text_accuracy_na": True,
        }
        return web.json_response(
            {
                "id": "j",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": json.dumps(verdict)},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with SimServer(app) as server, Runtime() as runtime:
        judge = JudgeClient(
            runtime,
            base_url=server.url + "/v1",
            api_key="k",
            rubric=load_rubric(rubric_file),
            user_template=load_judge_text(user_file, "judge template"),
        )
        scores = await judge.judge("case-3", "A neon OPEN sign", generated, truth)
    assert scores["overall"] == 0.6
    (body,) = bodies
    system, user = body["messages"]
    assert system == {"role": "system", "content": ORIGINAL_STYLE_RUBRIC}
    text, image_1, image_2 = user["content"]
    expected = (
        "Sample id: case-3\n\nTask to check:\nA neon OPEN sign\n\n"
        "Image 1: the generated image.\nImage 2: the reference image.\n\n"
        'Answer with one JSON object like {"faithfulness": 1}.'
    )
    assert text == {"type": "text", "text": expected}
    assert text["text"].encode("utf-8") == expected.encode("utf-8")
    assert [image_1["type"], image_2["type"]] == ["image_url", "image_url"]
    assert (body["temperature"], body["max_tokens"]) == (0, 8192)
