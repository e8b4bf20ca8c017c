"""Type aliases shared across the package."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

__all__ = ["JSONObject", "Message", "Termination"]

JSONObject: TypeAlias = dict[str, Any]
"""A decoded JSON object."""

Message: TypeAlias = dict[str, Any]
"""One chat message in OpenAI form (``role``, ``content``, maybe ``tool_calls``)."""

Termination = Literal["answer", "max_rounds_reached", "no_answer", "error", "timeout", "cancelled"]
"""How a rollout ended: SPEC's four values plus ``timeout`` and ``cancelled``."""
