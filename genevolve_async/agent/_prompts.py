"""The system prompt and control messages, ours or loaded from files."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import _json
from ..tools import Tool
from ._config import AgentConfig

__all__ = ["PROMPT_NAMES", "PromptSet", "build_prompts", "fill", "read_packaged_prompt"]


def read_packaged_prompt(name: str) -> str:
    """One of our packaged prompt texts (``system``, ``final_step``, ...)."""
    return (
        resources.files("genevolve_async.prompts").joinpath(f"{name}.md").read_text("utf-8").strip()
    )


# Only our own placeholders are filled, so a text loaded from a file (the
# original's, say) reaches the policy unchanged, "$" signs and all.
_PLACEHOLDER = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
PROMPT_NAMES = ("system", "final_step", "format_error", "truncated")
"""The texts an agent sends, as ``<name>.md`` in a ``prompts_dir``."""


def fill(template: str, values: Mapping[str, object]) -> str:
    """Replace ``$name`` / ``${name}`` for the names in ``values``; leave the rest as is."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return str(values[name]) if name in values else match.group(0)

    return _PLACEHOLDER.sub(one, template)


@dataclass(kw_only=True, slots=True, frozen=True)
class PromptSet:
    """The texts one agent sends."""

    system: str
    final_step: str
    truncated: str
    format_error: str
    """Template: ``$detail`` says what was wrong."""

    def format_error_text(self, detail: str) -> str:
        return fill(self.format_error, {"detail": detail})


def _tool_lines(tools: Sequence[Tool]) -> str:
    return "\n".join(
        _json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters})
        for t in tools
    )


def _texts(config: AgentConfig) -> dict[str, str]:
    """Each text: from ``prompts_dir`` verbatim when there, else ours (stripped)."""
    texts = {name: read_packaged_prompt(name) for name in PROMPT_NAMES}
    if config.prompts_dir is not None:
        for name in PROMPT_NAMES:
            path = Path(config.prompts_dir) / f"{name}.md"
            if path.is_file():
                text = path.read_text(encoding="utf-8")
                # These two go inside "<tool_response>\n...\n</tool_response>":
                # an editor's final newline would double the one before the tag.
                if name in ("format_error", "truncated") and text.endswith("\n"):
                    text = text[:-1]
                texts[name] = text
    if config.system_prompt_file is not None:
        texts["system"] = Path(config.system_prompt_file).read_text(encoding="utf-8")
    if config.system_prompt is not None:
        texts["system"] = config.system_prompt
    return texts


def build_prompts(config: AgentConfig, tools: Sequence[Tool]) -> PromptSet:
    """Fill the system prompt for ``tools`` (text mode lists their schemas)."""
    texts = _texts(config)
    # Native mode advertises the tools through the API; the prompt still
    # names them so the policy knows the rules.
    system = fill(
        texts["system"],
        {
            "tools": _tool_lines(tools),
            "max_tool_calls": config.max_tool_calls,
            "max_reference_images": config.n_max_reference_images,
        },
    )
    return PromptSet(
        system=system,
        final_step=texts["final_step"],
        truncated=texts["truncated"],
        format_error=texts["format_error"],
    )
