from __future__ import annotations

import json

from genevolve_async.protocol import CallProblem, ToolCall, parse_reply
from genevolve_async.protocol._parse import MAX_ARGUMENT_DEPTH


def test_single_text_call_with_think() -> None:
    reply = parse_reply(
        '<think>plan</think>\n<tool_call>{"name": "search", "arguments": {"queries": ["a"]}}</tool_call>',
        round_index=3,
    )
    assert reply.think == "plan"
    assert reply.tool_calls == [
        ToolCall(id="call_3_0", name="search", arguments={"queries": ["a"]}, index=0)
    ]
    assert reply.answer is None


def test_every_tool_call_block_in_order() -> None:
    text = "".join(
        f'<tool_call>{{"name": "image_search", "arguments": {{"query": "q{i}"}}}}</tool_call>\n'
        for i in range(3)
    )
    reply = parse_reply(text)
    assert [c.arguments["query"] for c in reply.tool_calls] == ["q0", "q1", "q2"]
    assert [c.index for c in reply.tool_calls] == [0, 1, 2]


def test_calls_inside_think_do_not_count() -> None:
    text = '<think>maybe <tool_call>{"name": "search", "arguments": {}}</tool_call></think>no call here'
    reply = parse_reply(text)
    assert reply.calls == ()


def test_qwen3_close_tag_only_think() -> None:
    reply = parse_reply('I should search.</think><answer>{"gen_prompt": "x"}</answer>')
    assert reply.think == "I should search."
    assert reply.answer == {"gen_prompt": "x"}


def test_answer_tolerates_fences_and_trailing_commas() -> None:
    text = '<answer>```json\n{"gen_prompt": "a cat", "reference_images": [{"img_id": "IMG_001", "note": "n",},],}\n```</answer>'
    reply = parse_reply(text)
    assert reply.answer is not None
    assert reply.answer["reference_images"] == [{"img_id": "IMG_001", "note": "n"}]


def test_answer_problems_are_reported_not_raised() -> None:
    assert (
        parse_reply("<answer>{not json</answer>").answer_problem
        == "the <answer> block is not valid JSON"
    )
    assert "gen_prompt" in (parse_reply('<answer>{"gen_prompt": ""}</answer>').answer_problem or "")
    assert "object" in (parse_reply("<answer>[1, 2]</answer>").answer_problem or "")
    assert "list" in (
        parse_reply('<answer>{"gen_prompt": "x", "reference_images": 3}</answer>').answer_problem
        or ""
    )


def test_malformed_and_non_object_calls_become_problems() -> None:
    reply = parse_reply(
        '<tool_call>{"name": "search", "arguments": [</tool_call>'
        '<tool_call>{"name": "search", "arguments": [1, 2]}</tool_call>'
        '<tool_call>["search"]</tool_call>'
        '<tool_call>{"arguments": {}}</tool_call>'
    )
    problems = [c for c in reply.calls if isinstance(c, CallProblem)]
    assert len(problems) == 4
    assert problems[0].detail == "the tool call is not valid JSON"
    assert problems[1].detail == '"arguments" must be a JSON object'
    assert problems[2].detail == "a tool call must be a JSON object"
    assert "name" in problems[3].detail


def test_string_encoded_arguments_are_decoded() -> None:
    reply = parse_reply(
        '<tool_call>{"name": "search", "arguments": "{\\"queries\\": [\\"x\\"]}"}</tool_call>'
    )
    assert reply.tool_calls[0].arguments == {"queries": ["x"]}


def test_deeply_nested_arguments_are_refused() -> None:
    nested: object = "leaf"
    for _ in range(MAX_ARGUMENT_DEPTH + 5):
        nested = {"a": nested}
    text = "<tool_call>" + json.dumps({"name": "search", "arguments": nested}) + "</tool_call>"
    (problem,) = parse_reply(text).calls
    assert isinstance(problem, CallProblem)
    assert "deeply" in problem.detail


def test_unclosed_final_block_is_accepted_when_its_json_is_whole() -> None:
    reply = parse_reply('<tool_call>{"name": "search", "arguments": {"queries": ["x"]}}')
    assert reply.tool_calls[0].name == "search"


def test_unbalanced_close_tags_are_noted() -> None:
    reply = parse_reply('{"name": "search"}</tool_call> and </answer>')
    assert reply.calls == ()
    assert len(reply.notes) == 2


def test_native_tool_calls_take_precedence() -> None:
    native = [
        {
            "id": "abc",
            "type": "function",
            "function": {"name": "search", "arguments": '{"queries": ["q"]}'},
        },
        {
            "id": "def",
            "type": "function",
            "function": {"name": "image_search", "arguments": "not json"},
        },
        "junk",
    ]
    reply = parse_reply(None, native)
    first, second, third = reply.calls
    assert (
        isinstance(first, ToolCall) and first.id == "abc" and first.arguments == {"queries": ["q"]}
    )
    assert isinstance(second, CallProblem) and second.name == "image_search"
    assert isinstance(third, CallProblem)


def test_empty_reply() -> None:
    reply = parse_reply("")
    assert reply.calls == () and reply.answer is None and reply.answer_problem is None
