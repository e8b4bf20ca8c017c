"""Helpers for the search-tool tests: a scripted backend and tool contexts."""

from __future__ import annotations

import anyio

from genevolve_async import Runtime
from genevolve_async.tools import ImageRegistry, ImageResult, ToolContext, WebResult

KEY = "sk-test-serper-0123456789"
"""The sim Serper's key in these tests (long enough to be recognisable in a leak)."""


def make_context(
    runtime: Runtime,
    registry: ImageRegistry | None = None,
    *,
    previous: anyio.Event | None = None,
    call_index: int = 0,
) -> ToolContext:
    """A tool context as the agent loop builds one."""
    return ToolContext(
        rollout_id="test",
        runtime=runtime,
        images=registry if registry is not None else ImageRegistry(),
        call_index=call_index,
        previous_done=previous,
    )


class ScriptedBackend:
    """A SearchBackend answering from dictionaries; an exception value is raised."""

    def __init__(
        self,
        web: dict[str, list[WebResult] | Exception] | None = None,
        images: dict[str, list[ImageResult] | Exception] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.web = web or {}
        self.image_answers = images or {}
        self.delay = delay
        self.calls: list[tuple[str, str, int]] = []

    async def search(self, runtime: Runtime, query: str, num: int) -> list[WebResult]:
        self.calls.append(("search", query, num))
        if self.delay:
            await anyio.sleep(self.delay)
        answer = self.web.get(query, [])
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def images(self, runtime: Runtime, query: str, num: int) -> list[ImageResult]:
        self.calls.append(("images", query, num))
        answer = self.image_answers.get(query, [])
        if isinstance(answer, Exception):
            raise answer
        return answer
