"""``bare``: the same rollouts as a minimal asyncio loop on plain aiohttp.

No retries, no limits, no cache, no parallel tool calls beyond what one call
needs (the queries of a search, the downloads of an image search). It is the
floor our runtime's overhead is measured against.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from ._common import ANSWER, FINAL, SYSTEM, first_call, image_lines, knowledge, search_block


def make_rollout(
    session: aiohttp.ClientSession, *, policy_url: str, serper_url: str, folder: Path, rounds: int = 11
) -> Callable[[int], Awaitable[str]]:
    """A rollout function for the load generator."""

    async def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        async with session.post(url, json=body, headers=headers) as resp:
            return await resp.json()

    async def download(url: str, path: Path) -> bool:
        async with session.get(url) as resp:
            if resp.status != 200:
                return False
            data = await resp.read()
        path.write_bytes(data)  # noqa: ASYNC240  # a minimal loop writes inline
        return True

    async def rollout(index: int) -> str:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"bench request {index}: a coastal town at dusk"}]
        images = 0
        for rnd in range(1, rounds + 1):
            if rnd == rounds:
                messages.append({"role": "user", "content": FINAL})
            data = await post(f"{policy_url}/chat/completions", {"model": "GenEvolve", "messages": messages, "max_tokens": 4096})
            content = data["choices"][0]["message"]["content"] or ""
            messages.append({"role": "assistant", "content": content})
            if ANSWER.search(content):
                return "answer"
            call = first_call(content)
            if call is None:
                continue
            name, args = call.get("name"), call.get("arguments", {})
            if name == "search":
                queries = args.get("queries", [])
                results = await asyncio.gather(*(post(f"{serper_url}/search", {"q": q, "num": 5}, {"X-API-KEY": "k"}) for q in queries))
                observation = "\n".join(search_block(q, r) for q, r in zip(queries, results, strict=True))
            elif name == "image_search":
                found = await post(f"{serper_url}/images", {"q": args.get("query", ""), "num": 5}, {"X-API-KEY": "k"})
                items = found.get("images", [])[:5]
                urls = [item["imageUrl"] for item in items]
                paths = [folder / f"{index}-{rnd}-{i}.img" for i in range(len(urls))]
                ok = await asyncio.gather(*(download(u, p) for u, p in zip(urls, paths, strict=True)))
                entries = []
                for item, p, good in zip(items, paths, ok, strict=True):
                    if good:
                        images += 1
                        entries.append((f"IMG_{images:03d}", item, str(p)))
                observation = image_lines(args.get("query", ""), entries)
            else:
                observation = knowledge(str(args.get("skill_name", "")))
            messages.append({"role": "user", "content": f"<tool_response>\n{observation}\n</tool_response>"})
        return "max_rounds_reached"

    return rollout


def describe() -> str:
    return json.dumps({"runner": "bare", "http": "aiohttp", "retries": False, "limits": False})
