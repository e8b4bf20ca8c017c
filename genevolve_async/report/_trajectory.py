"""A rollout's conversation as the steps a person reads: think, call, observation, answer.

The record's messages are first put in the text protocol (native
``tool_calls`` become ``<tool_call>`` blocks, as the export does), then
each assistant turn is parsed by the agent's own parser, and the
``<tool_response>`` blocks that follow are paired with its calls in order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..pipeline._trajectory import sft_messages
from ..protocol import CallProblem, parse_reply

__all__ = ["Step", "trajectory_steps"]

_OPEN, _CLOSE = "<tool_response>", "</tool_response>"
_IMG_ID = re.compile(r"^(IMG_\d{3,}):", re.MULTILINE)


@dataclass(kw_only=True, slots=True)
class Step:
    """One assistant turn and what came back."""

    number: int
    think: str | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    """``(tool name, arguments)``; a malformed call shows as ``("?", its problem)``."""
    observations: list[str] = field(default_factory=list)
    """The tool responses, in call order."""
    answer: Mapping[str, Any] | None = None
    other: str = ""
    """Whatever the turn said outside the protocol's tags (a format error, a bare reply)."""

    def image_ids(self, observation: str) -> list[str]:
        """The ``IMG_###`` ids an image_search observation lists."""
        return list(dict.fromkeys(_IMG_ID.findall(observation)))


def split_responses(content: str) -> list[str]:
    """The bodies of the ``<tool_response>`` blocks in ``content``, linear in its length."""
    bodies: list[str] = []
    start = content.find(_OPEN)
    while start != -1:
        body_start = start + len(_OPEN)
        end = content.find(_CLOSE, body_start)
        if end == -1:
            bodies.append(content[body_start:].strip("\n"))
            break
        bodies.append(content[body_start:end].strip("\n"))
        start = content.find(_OPEN, end + len(_CLOSE))
    return bodies


def trajectory_steps(raw_messages: Sequence[Any]) -> tuple[str | None, list[Step]]:
    """The request and the steps of a rollout's messages.

    Args:
        raw_messages: The record's ``messages`` (text or native protocol).

    Returns:
        The first user message (the request as the policy saw it) and one
        step per assistant turn.
    """
    messages = sft_messages(raw_messages)
    request: str | None = None
    steps: list[Step] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "user":
            if _OPEN in content and steps:
                steps[-1].observations += split_responses(content)
            elif request is None and not steps:
                request = content
            elif steps:  # a format-error nudge or similar, from the runtime
                steps[-1].observations.append(content)
            continue
        if role != "assistant":
            continue
        parsed = parse_reply(content)
        step = Step(number=len(steps) + 1, think=parsed.think, answer=parsed.answer)
        for call in parsed.calls:
            if isinstance(call, CallProblem):
                step.calls.append((call.name or "?", f"unusable call: {call.detail}"))
            else:
                step.calls.append((call.name, call.arguments))
        if not step.calls and step.answer is None:
            step.other = content
        steps.append(step)
    return request, steps
