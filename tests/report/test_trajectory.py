"""A rollout's messages as steps, in the text protocol and the native one."""

from __future__ import annotations

from genevolve_async.report._trajectory import split_responses, trajectory_steps

OBSERVATION = (
    "--- image search result for [cat] ---\nIMG_001: title: a cat\n  local_path: /c/1.png\n"
    "IMG_002: title: another\n  local_path: /c/2.png"
)


def test_text_protocol_steps_pair_calls_with_observations() -> None:
    messages = [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "a <b>cat</b>"},
        {"role": "assistant", "content": '<think>look</think><tool_call>{"name": "image_search", '
         '"arguments": {"query": "cat"}}</tool_call>'},
        {"role": "user", "content": f"<tool_response>\n{OBSERVATION}\n</tool_response>"},
        {"role": "assistant", "content": "no tags at all"},
        {"role": "user", "content": "Format error: answer with a tag."},
        {"role": "assistant", "content": '<answer>{"gen_prompt": "a cat", "reference_images": []}</answer>'},
    ]  # fmt: skip
    request, steps = trajectory_steps(messages)
    assert request == "a <b>cat</b>"
    assert [s.number for s in steps] == [1, 2, 3]
    assert steps[0].think == "look"
    assert steps[0].calls == [("image_search", {"query": "cat"})]
    assert steps[0].observations == [OBSERVATION]
    assert steps[0].image_ids(OBSERVATION) == ["IMG_001", "IMG_002"]
    assert steps[1].other == "no tags at all"
    assert steps[1].observations == ["Format error: answer with a tag."]
    assert steps[2].answer == {"gen_prompt": "a cat", "reference_images": []}


def test_native_tool_calls_and_tool_messages() -> None:
    messages = [
        {"role": "user", "content": "two searches"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "search", "arguments": '{"queries": ["x"]}'}},
            {"id": "b", "type": "function", "function": {"name": "search", "arguments": '{"queries": ["y"]}'}},
        ]},
        {"role": "tool", "tool_call_id": "a", "content": "result x"},
        {"role": "tool", "tool_call_id": "b", "content": "result y"},
    ]  # fmt: skip
    _, steps = trajectory_steps(messages)
    assert steps[0].calls == [("search", {"queries": ["x"]}), ("search", {"queries": ["y"]})]
    assert steps[0].observations == ["result x", "result y"]


def test_split_responses_is_linear_and_tolerates_a_missing_close() -> None:
    assert split_responses("<tool_response>a</tool_response>\n<tool_response>b") == ["a", "b"]
    many = "<tool_response>" * 50_000  # no close tag anywhere: one pass, one block
    assert len(split_responses(many)) == 1
