"""The Tool protocol and the per-call context tools receive."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio
from anyio.abc import TaskGroup

from .._types import JSONObject
from ._registry import ImageRegistry

if TYPE_CHECKING:
    from .._runtime import Runtime

__all__ = ["SideWork", "Tool", "ToolContext", "tool_schema"]

logger = logging.getLogger("genevolve_async.tools")


@runtime_checkable
class Tool(Protocol):
    """Something the policy can call.

    ``name`` and ``parameters`` (a JSON schema of the arguments object) are
    advertised to the policy: in the system prompt (text mode) or as OpenAI
    ``tools`` (native mode). The call returns the observation text; raising
    is fine, the agent turns the error into an observation.
    """

    name: str
    description: str
    parameters: JSONObject

    async def __call__(self, arguments: JSONObject, context: ToolContext) -> str: ...


def tool_schema(tool: Tool) -> JSONObject:
    """The OpenAI function schema of a tool."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


class SideWork:
    """Work a tool call leaves running, which its rollout waits for before it ends.

    The rollout owns the task group: a tool that hands back its observation
    before some of its work is done (the image search writing files) starts
    that work here; the rollout settles it before it resolves its answer,
    and cancelling the rollout cancels it. A failure is logged, never raised
    into the rollout: side work reports through its own state (the image
    registry), not by exceptions.
    """

    def __init__(self, task_group: TaskGroup) -> None:
        self._task_group = task_group
        self._running = 0
        self._idle = anyio.Event()
        self._idle.set()

    def start(self, work: Callable[[], Awaitable[object]], *, name: str = "side work") -> None:
        """Run ``work()`` in the rollout's task group, now."""
        if self._running == 0:
            self._idle = anyio.Event()
        self._running += 1
        self._task_group.start_soon(self._run, work, name, name=name)

    async def _run(self, work: Callable[[], Awaitable[object]], name: str) -> None:
        try:
            await work()
        except Exception:
            logger.exception("%s failed", name)
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    async def settle(self) -> None:
        """Wait until all side work started so far (and since) has finished."""
        while self._running:
            await self._idle.wait()


@dataclass(kw_only=True, slots=True)
class ToolContext:
    """What one tool call gets to work with."""

    rollout_id: str
    runtime: Runtime
    images: ImageRegistry
    """The rollout's image registry. Register through :meth:`registration`."""
    call_index: int = 0
    """Position of this call among the turn's calls."""
    seed: int | None = None
    logger: logging.Logger | logging.LoggerAdapter[Any] = field(
        default_factory=lambda: logging.getLogger("genevolve_async.tools")
    )
    previous_done: anyio.Event | None = None
    """Set when the turn's previous call has finished (ordering gate)."""
    side_work: SideWork | None = None
    """The rollout's side work, when the tool runs inside a rollout; ``None``
    means nobody waits after the call returns, so finish everything first."""

    @asynccontextmanager
    async def registration(self) -> AsyncIterator[ImageRegistry]:
        """Register images in call order, whatever order the downloads finished in.

        Do the slow work (downloads) first, concurrently, then register the
        survivors in result order inside this block: it waits until every
        earlier call of the turn has finished, so ids are reproducible.
        """
        # Waiting on a set Event still costs a loop cycle: check first.
        if self.previous_done is not None and not self.previous_done.is_set():
            await self.previous_done.wait()
        yield self.images
