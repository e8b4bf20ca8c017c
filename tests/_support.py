"""Test doubles shared by the suites: an image tool over the simulated image host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from genevolve_async.tools import ToolContext


class SimImageTool:
    """A minimal ``image_search`` stand-in: downloads ``top_k`` images concurrently
    from the simulated image host, then registers them in result order."""

    name = "image_search"
    description = "Find reference images (test double)."

    def __init__(self, host_url: str, folder: Path) -> None:
        self.host_url = host_url
        self.folder = folder
        self.parameters: dict[str, Any] = {
            "type": "object",
            "properties": {"query": {"type": "string"}, "top_k": {"type": "integer"}},
            "required": ["query"],
        }

    async def __call__(self, arguments: dict[str, Any], context: ToolContext) -> str:
        query = str(arguments.get("query", ""))
        top_k = int(arguments.get("top_k", 5))
        slug = "".join(c if c.isalnum() else "-" for c in query)[:60]
        urls = [f"{self.host_url}/img/{slug}-{i}.png" for i in range(top_k)]
        paths: list[Path | None] = [None] * top_k

        async def fetch(i: int) -> None:
            async with context.runtime.http.get(urls[i]) as resp:
                data = await resp.read()
            path = self.folder / f"{slug}-{i}.png"
            await anyio.Path(path).write_bytes(data)
            paths[i] = path

        async with anyio.create_task_group() as tg:
            for i in range(top_k):
                tg.start_soon(fetch, i)
        lines = [f"--- image search result for [{query}] ---"]
        async with context.registration() as registry:
            for url, path in zip(urls, paths, strict=True):
                if path is None:
                    continue
                record = registry.register(local_path=str(path), url=url, title=path.stem)
                lines += [
                    f"{record.img_id}: title: {record.title}",
                    f"  url: {url}",
                    f"  local_path: {path}",
                    f"  page_url: {url}",
                ]
        lines.append("--- end of image search result ---")
        return "\n".join(lines)


class EchoSearchTool:
    """A ``search`` stand-in that answers at once."""

    name = "search"
    description = "Search the web (test double)."
    parameters: dict[str, Any] = {"type": "object", "properties": {"queries": {"type": "array"}}}  # noqa: RUF012

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, arguments: dict[str, Any], context: ToolContext) -> str:
        self.calls += 1
        queries = arguments.get("queries", [])
        return "\n".join(
            f"--- search result for [{q}] ---\n--- end of search result ---" for q in queries
        )


PromSamples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Prometheus samples by (name, sorted labels)."""


def prometheus_samples(text: str) -> PromSamples:
    """Parse a ``/metrics`` body with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
