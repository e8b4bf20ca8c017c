"""The packaged prompt texts load as package data and carry the protocol's key words."""

from __future__ import annotations

import string
from importlib.resources import files

import pytest

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
