"""The packaged prompt texts load as package data and carry the protocol's key words."""

from __future__ import annotations

import json
import string
from importlib.resources import files
from pathlib import Path

import pytest
from aiohttp import web

from genevolve_async import GenEvolveAgent, Runtime
from genevolve_async.sim import SimServer
from genevolve_async.tools import QueryKnowledge

PROMPT_FILES = ("system.md", "final_step.md", "truncated.md", "format_error.md")
SKILLS = (
    "spatial_layout",
    "aesthetic_drawing",
    "text_rendering",
    "creative_drawing",
    "anatomy_body_coherence",
    "attribute_binding",
    "physical_material_consistency",
    "quantity_counting",
)


def _prompt(name: str) -> str:
    return files("genevolve_async.prompts").joinpath(name).read_text(encoding="utf-8")


def _skill(name: str) -> str:
    return files("genevolve_async.tools.skills").joinpath(f"{name}.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", PROMPT_FILES)
def test_prompt_file_exists(name: str) -> None:
    assert files("genevolve_async.prompts").joinpath(name).is_file()
    assert _prompt(name).strip()


def test_system_prompt_substitutes() -> None:
    tools = '{"name": "search"}\n{"name": "image_search"}\n{"name": "query_knowledge"}'
    text = string.Template(_prompt("system.md")).substitute(
        tools=tools, max_tool_calls=10, max_reference_images=2
    )
    for needle in (
        "<tool_call>",
        "<answer>",
        "<tool_response>",
        "gen_prompt",
        "reference_images",
        "image_search",
        "query_knowledge",
        "FINAL STEP",
        "RESPONSE TOO LONG",
        "TRUNCATED",
        "the first reference image",
        tools,
    ):
        assert needle in text, needle
    assert "at most 10 tool calls" in text
    assert "$" not in text
    for skill in SKILLS:
        assert skill in text


def test_final_step() -> None:
    text = _prompt("final_step.md")
    assert "FINAL STEP" in text
    assert "<answer>" in text
    assert "$" not in text


def test_truncated() -> None:
    text = _prompt("truncated.md")
    assert "RESPONSE TOO LONG" in text
    assert "TRUNCATED" in text
    assert "$" not in text


def test_format_error_substitutes_detail() -> None:
    raw = _prompt("format_error.md")
    assert "$detail" in raw
    text = string.Template(raw).substitute(detail="unterminated JSON object")
    assert "unterminated JSON object" in text
    assert "<tool_call>" in text
    assert "<answer>" in text


@pytest.mark.parametrize("name", SKILLS)
def test_skill_text(name: str) -> None:
    assert files("genevolve_async.tools.skills").joinpath(f"{name}.md").is_file()
    text = _skill(name)
    assert len(text) > 800
    assert text.startswith("# ")
    assert "checklist" in text.lower()


def test_system_prompt_example_answer_is_valid_json() -> None:
    import json
    import re

    text = string.Template(_prompt("system.md")).substitute(
        tools="", max_tool_calls=10, max_reference_images=2
    )
    bodies = re.findall(r"<answer>(\{.*\})</answer>", text)
    example = json.loads(bodies[-1])
    assert isinstance(example["gen_prompt"], str)
    ids = [ref["img_id"] for ref in example["reference_images"]]
    assert ids == sorted(ids)
    assert len(ids) <= 2
    assert not any(i in example["gen_prompt"] for i in ids)


# ---- loading the original's texts gives the original's requests, byte for byte ----
#
# The fixtures are our own wording in the original's format: a system prompt
# used as is, a final-step message appended as a user turn before the last
# model call, a fixed format-error note inside <tool_response>, and skill files.

ORIGINAL_STYLE = {
    "system.md": "You ground image prompts for a TEST policy.\n"
    "Tools: search, image_search, query_knowledge. Costs: $5, $$, ${tools_not_ours}.\n"
    "Reply with <tool_call>{...}</tool_call> or <answer>{...}</answer>.\n",
    "final_step.md": "=== FINAL STEP: ANSWER NOW ===\nNo tools; reply with one <answer>{...}</answer>.\n",
    "format_error.md": "Format error: reply with a single <tool_call>{...}</tool_call> "
    "or <answer>{...}</answer>.\n",
}
REPLIES = [
    '  <think>which skill?</think>\n<tool_call>{"name": "query_knowledge", '
    '"arguments": {"skill_name": "text_rendering"}}</tool_call>\n\n',
    "hmm, let me think about it\n",
    '<answer>{"gen_prompt": "a shop sign reading OPEN", "reference_images": []}</answer>',
]
REQUEST = "A shop sign reading OPEN in neon, at night."


def _original_requests(skill_text: str) -> list[list[dict[str, str]]]:
    """The messages of each of the original agent's three model calls, built by its rules."""
    messages = [
        {"role": "system", "content": ORIGINAL_STYLE["system.md"]},
        {"role": "user", "content": REQUEST},
    ]
    sent = [list(messages)]
    observation = f"## Skill Guidance\n\n=== Skill: text_rendering ===\n{skill_text}"
    messages += [
        {"role": "assistant", "content": REPLIES[0].strip()},
        {"role": "user", "content": f"<tool_response>\n{observation}\n</tool_response>"},
    ]
    sent.append(list(messages))
    messages += [
        {"role": "assistant", "content": REPLIES[1].strip()},
        {
            "role": "user",
            "content": "<tool_response>\n" + ORIGINAL_STYLE["format_error.md"] + "</tool_response>",
        },
        {"role": "user", "content": ORIGINAL_STYLE["final_step.md"]},  # before the last call
    ]
    sent.append(list(messages))
    return sent


async def test_the_originals_texts_give_the_originals_policy_requests(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    skills = tmp_path / "skills"
    prompts.mkdir()
    skills.mkdir()
    for name, text in ORIGINAL_STYLE.items():
        (prompts / name).write_text(text, encoding="utf-8")
    for name in SKILLS:
        (skills / f"{name}.md").write_text(
            f"# {name}\n\nTest guidance: {name}.\n", encoding="utf-8"
        )
    bodies: list[bytes] = []

    async def chat(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        reply = REPLIES[len(bodies) - 1]
        return web.json_response(
            {
                "id": f"c{len(bodies)}",
                "object": "chat.completion",
                "model": "GenEvolve",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with SimServer(app) as server, Runtime() as runtime:
        agent = GenEvolveAgent(
            runtime=runtime,
            base_url=server.url + "/v1",
            tools=[QueryKnowledge(skills)],
            prompts_dir=prompts,
            max_rounds=3,
        )
        result = await agent.arun(REQUEST)
    assert result.termination == "answer" and result.gen_prompt == "a shop sign reading OPEN"
    expected = _original_requests((skills / "text_rendering.md").read_text(encoding="utf-8"))
    sent = [json.loads(body) for body in bodies]
    assert len(sent) == 3
    for body, messages in zip(sent, expected, strict=True):
        # Every text byte for byte (the JSON around them is the client's own).
        assert body["messages"] == messages
        got = [m["content"].encode("utf-8") for m in body["messages"]]
        assert got == [m["content"].encode("utf-8") for m in messages]
        assert (body["model"], body["max_tokens"]) == ("GenEvolve", 4096)
        assert (body["temperature"], body["top_p"]) == (0.6, 0.9)


def test_fill_leaves_other_dollar_signs_alone() -> None:
    from genevolve_async.agent._prompts import fill

    assert (
        fill("$tools / ${tools} / $$ / $5 / $other", {"tools": "T"}) == "T / T / $$ / $5 / $other"
    )
