"""What both reference runners share: the protocol bits of a rollout, kept minimal.

On the simulated backends their chat requests carry the same messages as our
agent's (``tests/bench/test_reference_runners.py`` checks it): the system
prompt, the skill texts, the search and image blocks. Sampling parameters and
error texts for bad tool calls differ; the simulator sends neither case.
"""

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


def _skill_texts() -> dict[str, str]:
    # The skill texts our query_knowledge tool answers with, read once: the
    # observation then carries the same bytes into every later round.
    from genevolve_async.tools.knowledge import load_skills

    return load_skills()


SYSTEM = _system_prompt()
SKILLS = _skill_texts()
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


def image_lines(query: str, entries: list[tuple[str, dict[str, Any], str]]) -> str:
    """The image search observation: ``(img_id, serper item, local path)`` per image."""
    lines = [f"--- image search result for [{query}] ---"]
    for img_id, item, path in entries:
        lines += [f"{img_id}: title: {item.get('title') or 'image'}", f"  url: {item['imageUrl']}", f"  local_path: {path}"]
        if item.get("link"):
            lines.append(f"  page_url: {item['link']}")
    lines.append("--- end of image search result ---")
    return "\n".join(lines)


def knowledge(name: str) -> str:
    text = SKILLS.get(name.strip())
    if text is None:
        return f"Error: unknown skill_name {name[:80]!r}."
    return f"## Skill Guidance\n\n=== Skill: {name.strip()} ===\n{text}"
