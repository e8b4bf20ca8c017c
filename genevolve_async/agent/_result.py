"""What a rollout returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import RolloutError
from .._types import JSONObject, Message, Termination
from ..policy import TokenUsage
from ..protocol import Program, ReferenceImage

__all__ = ["AgentResult", "Timings", "Usage"]


@dataclass(kw_only=True, slots=True)
class Usage:
    """Token usage per round and in total."""

    rounds: list[TokenUsage] = field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return sum(u.prompt_tokens for u in self.rounds)

    @property
    def completion_tokens(self) -> int:
        return sum(u.completion_tokens for u in self.rounds)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> JSONObject:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "rounds": [u.to_dict() for u in self.rounds],
        }


@dataclass(kw_only=True, slots=True)
class Timings:
    """Where a rollout's time went, in seconds."""

    model: float = 0.0
    """Waiting for the policy (all rounds)."""
    tools: float = 0.0
    """Running tool turns (parallel calls count once, as their turn's wall time)."""
    total: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "model": round(self.model, 4),
            "tools": round(self.tools, 4),
            "total": round(self.total, 4),
        }


@dataclass(kw_only=True, slots=True)
class AgentResult:
    """One rollout's record: SPEC's fields plus usage, timings and counts."""

    rollout_id: str
    """Unique per rollout; tags every log record."""
    prompt: str
    gen_prompt: str = ""
    """The generation prompt ("" when the rollout did not answer)."""
    reference_images: list[ReferenceImage] = field(default_factory=list)
    """Resolved references: ``r.local_path`` or ``r["local_path"]``."""
    messages: list[Message] = field(default_factory=list)
    """The whole conversation, system prompt included."""
    termination: Termination = "error"
    """``answer``, ``max_rounds_reached``, ``no_answer``, ``error``, ``timeout`` or ``cancelled``."""
    rounds: int = 0
    error: RolloutError | None = None
    """Why the rollout did not answer (``None`` after an answer)."""
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    tool_calls: dict[str, int] = field(default_factory=dict)
    """Tool calls made, by tool name."""
    seed: int | None = None
    registered_images: list[ReferenceImage] = field(default_factory=list)
    """Every image the rollout registered (``IMG_###`` order, no notes): what the
    policy was shown, beyond the references it chose."""

    @property
    def ok(self) -> bool:
        """True when the rollout ended with an answer."""
        return self.termination == "answer"

    @property
    def program(self) -> Program | None:
        """The prompt-reference program, or ``None`` without an answer."""
        if not self.ok:
            return None
        return Program(gen_prompt=self.gen_prompt, reference_images=tuple(self.reference_images))

    def to_dict(self) -> JSONObject:
        """A JSON-ready dict: SPEC's record fields first, then ours."""
        record: dict[str, Any] = {
            "prompt": self.prompt,
            "gen_prompt": self.gen_prompt,
            "reference_images": [r.to_dict() for r in self.reference_images],
            "messages": self.messages,
            "termination": self.termination,
            "rounds": self.rounds,
            "error": self.error.to_dict() if self.error else None,
            "rollout_id": self.rollout_id,
            "seed": self.seed,
            "usage": self.usage.to_dict(),
            "timings": self.timings.to_dict(),
            "tool_calls": dict(self.tool_calls),
            "registered_images": [r.to_dict() for r in self.registered_images],
        }
        return record
