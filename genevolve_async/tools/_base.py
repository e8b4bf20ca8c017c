"""The Tool protocol and the per-call context tools receive."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from .._types import JSONObject
from ._registry import ImageRegistry

if TYPE_CHECKING:
    from .._runtime import Runtime

__all__ = ["Tool", "ToolContext", "tool_schema"]


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

    @asynccontextmanager
    async def registration(self) -> AsyncIterator[ImageRegistry]:
        """Register images in call order, whatever order the downloads finished in.

        Do the slow work (downloads) first, concurrently, then register the
        survivors in result order inside this block: it waits until every
        earlier call of the turn has finished, so ids are reproducible.
        """
        if self.previous_done is not None:
            await self.previous_done.wait()
        yield self.images
