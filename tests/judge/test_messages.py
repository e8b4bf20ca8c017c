from __future__ import annotations

from typing import Any

from genevolve_async.judge import DEFAULT_RUBRIC, IMAGE_ORDER_NOTE, build_judge_messages

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
