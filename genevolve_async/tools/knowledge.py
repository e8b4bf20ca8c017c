"""``query_knowledge``: the eight prompt-writing skills."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .._errors import ConfigurationError
from .._types import JSONObject
from ._base import ToolContext

__all__ = ["SKILL_NAMES", "QueryKnowledge", "load_skills"]

SKILL_NAMES = (
    "spatial_layout",
    "aesthetic_drawing",
    "text_rendering",
    "creative_drawing",
    "anatomy_body_coherence",
    "attribute_binding",
    "physical_material_consistency",
    "quantity_counting",
)
"""The skill names, fixed by the protocol the policy was trained on."""


def load_skills(folder: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Read the eight skill texts, from our package or from ``folder``.

    Args:
        folder: a directory holding ``<skill_name>.md`` files (for instance
            the original project's skills). ``None`` uses ours.

    Raises:
        ConfigurationError: the folder lacks a skill file.
    """
    texts: dict[str, str] = {}
    if folder is None:
        package = resources.files("genevolve_async.tools.skills")
        for name in SKILL_NAMES:
            texts[name] = package.joinpath(f"{name}.md").read_text(encoding="utf-8")
        return texts
    base = Path(folder)
    missing = [n for n in SKILL_NAMES if not (base / f"{n}.md").is_file()]
    if missing:
        raise ConfigurationError(
            f"skills folder {base} lacks: {', '.join(f'{n}.md' for n in missing)}"
        )
    for name in SKILL_NAMES:
        texts[name] = (base / f"{name}.md").read_text(encoding="utf-8")
    return texts


class QueryKnowledge:
    """Returns one skill's guidance; an unknown name lists the valid ones."""

    def __init__(self, skills_dir: str | os.PathLike[str] | None = None) -> None:
        self.name = "query_knowledge"
        self.description = (
            "Fetch prompt-writing guidance for one generation challenge. "
            "skill_name is one of: " + ", ".join(SKILL_NAMES) + "."
        )
        self.parameters: JSONObject = {
            "type": "object",
            "properties": {"skill_name": {"type": "string", "enum": list(SKILL_NAMES)}},
            "required": ["skill_name"],
        }
        self._skills = load_skills(skills_dir)

    def skill(self, name: str) -> str | None:
        return self._skills.get(name)

    async def __call__(self, arguments: JSONObject, context: ToolContext) -> str:
        name = arguments.get("skill_name", arguments.get("skill"))
        if not isinstance(name, str) or name.strip() not in self._skills:
            shown = repr(name) if isinstance(name, str) else "missing"
            return (
                f"Error: unknown skill_name {shown[:80]}. "
                f"Valid skill names: {', '.join(SKILL_NAMES)}."
            )
        name = name.strip()
        return f"## Skill Guidance\n\n=== Skill: {name} ===\n{self._skills[name]}"
