"""What both reference runners share: the protocol bits of a rollout, kept minimal."""

from __future__ import annotations

import json
import re
from typing import Any


def _system_prompt() -> str:
    # The same system prompt our agent sends (a few KB, every round), so the
    # reference runners move the same bytes and CPU ratios compare like for like.
    from genevolve_async.agent import AgentConfig
    from genevolve_async.agent._prompts import build_prompts
    from genevolve_async.tools import ImageSearch, QueryKnowledge, WebSearch

    return build_prompts(AgentConfig(), [WebSearch(), ImageSearch(), QueryKnowledge()]).system


SYSTEM = _system_prompt()
FINAL = "FINAL STEP: answer now with <answer>, no tools."
TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def first_call(content: str) -> dict[str, Any] | None:
    """The first tool call of a reply (the original handles one per round)."""
    match = TOOL_CALL.search(content)
    if match is None:
        return None
    try:
        call = json.loads(match.group(1))
    except ValueError:
        return None
    return call if isinstance(call, dict) else None


def search_block(query: str, data: dict[str, Any]) -> str:
    lines = [f"--- search result for [{query}] ---"]
    for i, item in enumerate(data.get("organic", [])[:5], 1):
        lines += [f"{i}. title: {item.get('title', '')}", f"  url: {item.get('link', '')}", f"  snippet: {item.get('snippet', '')}"]
    lines.append("--- end of search result ---")
    return "\n".join(lines)


def image_lines(query: str, entries: list[tuple[str, str, str]]) -> str:
    lines = [f"--- image search result for [{query}] ---"]
    for img_id, url, path in entries:
        lines += [f"{img_id}: title: image", f"  url: {url}", f"  local_path: {path}"]
    lines.append("--- end of image search result ---")
    return "\n".join(lines)


def knowledge(name: str) -> str:
    return f"## Skill Guidance\n\n=== Skill: {name} ===\nWrite precise prompts."
