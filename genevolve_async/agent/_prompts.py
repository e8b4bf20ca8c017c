"""The system prompt and control messages, ours or loaded from files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from .. import _json
from ..tools import Tool
from ._config import AgentConfig

__all__ = ["PromptSet", "build_prompts", "read_packaged_prompt"]


def read_packaged_prompt(name: str) -> str:
    """One of our packaged prompt texts (``system``, ``final_step``, ...)."""
    return (
        resources.files("genevolve_async.prompts").joinpath(f"{name}.md").read_text("utf-8").strip()
    )


@dataclass(kw_only=True, slots=True, frozen=True)
class PromptSet:
    """The texts one agent sends."""

    system: str
    final_step: str
    truncated: str
    format_error: Template

    def format_error_text(self, detail: str) -> str:
        return self.format_error.safe_substitute(detail=detail)


def _tool_lines(tools: Sequence[Tool]) -> str:
    return "\n".join(
        _json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters})
        for t in tools
    )


def build_prompts(config: AgentConfig, tools: Sequence[Tool]) -> PromptSet:
    """Fill the system prompt for ``tools`` (text mode lists their schemas)."""
    if config.system_prompt is not None:
        template = config.system_prompt
    elif config.system_prompt_file is not None:
        template = Path(config.system_prompt_file).read_text(encoding="utf-8")
    else:
        template = read_packaged_prompt("system")
    # Native mode advertises the tools through the API; the prompt still
    # names them so the policy knows the rules.
    system = Template(template).safe_substitute(
        tools=_tool_lines(tools),
        max_tool_calls=config.max_tool_calls,
        max_reference_images=config.n_max_reference_images,
    )
    return PromptSet(
        system=system.strip(),
        final_step=read_packaged_prompt("final_step"),
        truncated=read_packaged_prompt("truncated"),
        format_error=Template(read_packaged_prompt("format_error")),
    )
