"""Typed events a rollout emits, in order, to ``stream()`` and to hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from .._types import JSONObject
from ..policy import TokenUsage
from ..protocol import ReferenceImage

if TYPE_CHECKING:
    from ._result import AgentResult

__all__ = [
    "AgentEvent",
    "AgentHook",
    "Answered",
    "Finished",
    "ModelReplied",
    "RoundStarted",
    "ToolCallFinished",
    "ToolCallStarted",
]


@dataclass(kw_only=True, slots=True, frozen=True)
class RoundStarted:
    """A round begins (before its model call)."""

    rollout_id: str
    round: int
    final: bool
    """True for the round that carries the final-step message."""
    kind: Literal["round_started"] = "round_started"


@dataclass(kw_only=True, slots=True, frozen=True)
class ModelReplied:
    """The policy answered this round."""

    rollout_id: str
    round: int
    content: str | None
    finish_reason: str | None
    usage: TokenUsage
    seconds: float
    endpoint: str
    kind: Literal["model_replied"] = "model_replied"


@dataclass(kw_only=True, slots=True, frozen=True)
class ToolCallStarted:
    """A tool call begins (siblings of one turn start together)."""

    rollout_id: str
    round: int
    index: int
    call_id: str
    name: str
    arguments: JSONObject
    kind: Literal["tool_call_started"] = "tool_call_started"


@dataclass(kw_only=True, slots=True, frozen=True)
class ToolCallFinished:
    """A tool call ended; ``observation`` is what the policy will read."""

    rollout_id: str
    round: int
    index: int
    call_id: str
    name: str
    observation: str
    ok: bool
    seconds: float
    kind: Literal["tool_call_finished"] = "tool_call_finished"


@dataclass(kw_only=True, slots=True, frozen=True)
class Answered:
    """The policy answered with a program (resolved per SPEC)."""

    rollout_id: str
    round: int
    gen_prompt: str
    reference_images: tuple[ReferenceImage, ...]
    kind: Literal["answered"] = "answered"


@dataclass(kw_only=True, slots=True, frozen=True)
class Finished:
    """The rollout is over; always the last event."""

    rollout_id: str
    result: AgentResult
    kind: Literal["finished"] = "finished"


AgentEvent: TypeAlias = (
    RoundStarted | ModelReplied | ToolCallStarted | ToolCallFinished | Answered | Finished
)
"""Any event; switch on ``event.kind``."""

AgentHook: TypeAlias = Callable[[AgentEvent], Awaitable[None] | None]
"""A callback for metrics or tracing; sync or async. Its errors are logged, not raised."""
