from __future__ import annotations

from pathlib import Path

import pytest

from genevolve_async import ConfigurationError, Runtime
from genevolve_async.tools import SKILL_NAMES, ImageRegistry, QueryKnowledge, ToolContext


def _context() -> ToolContext:
    return ToolContext(rollout_id="r", runtime=Runtime(), images=ImageRegistry())


async def test_known_skill_observation_format() -> None:
    tool = QueryKnowledge()
    text = await tool({"skill_name": "text_rendering"}, _context())
    assert text.startswith("## Skill Guidance\n\n=== Skill: text_rendering ===\n")
    assert len(text) > 500


async def test_unknown_skill_lists_valid_names() -> None:
    text = await QueryKnowledge()({"skill_name": "juggling"}, _context())
    assert text.startswith("Error: unknown skill_name")
    for name in SKILL_NAMES:
        assert name in text


def test_custom_skills_folder(tmp_path: Path) -> None:
    for name in SKILL_NAMES:
        (tmp_path / f"{name}.md").write_text(f"custom {name}")
    assert QueryKnowledge(tmp_path).skill("quantity_counting") == "custom quantity_counting"


def test_incomplete_skills_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "spatial_layout.md").write_text("x")
    with pytest.raises(ConfigurationError, match=r"aesthetic_drawing\.md"):
        QueryKnowledge(tmp_path)
