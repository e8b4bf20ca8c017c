"""Spans and measurements of a rollout: the rollout, its rounds, model calls and tool calls.

Span names and attributes follow the GenAI conventions: ``invoke_agent
genevolve`` for the rollout, ``chat {model}`` for a model call,
``execute_tool {tool}`` for a tool call; a round is our own ``round {n}``.
Prompt text, replies and tool arguments and results are recorded only when
content capture is on (see :func:`capture_content`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import _json
from . import _attrs as A
from ._provider import AdoptableScope
from ._scope import NOOP, Scope
from ._state import child_tracer, instruments, tracer

if TYPE_CHECKING:
    from ..agent._result import AgentResult
    from ..policy import ChatReply

__all__ = [
    "capture_content",
    "model_call_span",
    "model_replied",
    "rollout_finished",
    "rollout_span",
    "round_span",
    "tool_call_span",
    "tool_finished",
]

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Read once: a lookup per span would cost more than the span's attributes.
_CAPTURE_FROM_ENV = os.environ.get(CAPTURE_ENV, "").strip().lower() in ("true", "1", "yes")
_FINAL = {A.FINAL_ROUND: True}
_INPUT = ((A.TOKEN_TYPE, "input"),)
_OUTPUT = ((A.TOKEN_TYPE, "output"),)


def capture_content(setting: bool | None = None) -> bool:
    """Whether prompts, replies and tool payloads go into spans.

    Args:
        setting: The agent's ``capture_content``; ``None`` defers to the
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` variable
            as it was when the library was imported (``true`` turns capture
            on). Off by default.
    """
    return _CAPTURE_FROM_ENV if setting is None else setting


def _text_messages(role: str, text: str) -> str:
    return _json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def rollout_span(rollout_id: str, *, model: str, prompt: str, capture: bool | None = None) -> Scope:
    """The rollout's ``invoke_agent`` span (a child of whatever span is current)."""
    t = tracer()
    if t is None:
        return NOOP
    span = t.start_span(
        f"invoke_agent {A.AGENT}",
        kind=SpanKind.INTERNAL,
        attributes={
            A.OPERATION: "invoke_agent",
            A.AGENT_NAME: A.AGENT,
            A.PROVIDER: A.POLICY_PROVIDER,
            A.CONVERSATION_ID: rollout_id,
            A.REQUEST_MODEL: model,
        },
    )
    if capture_content(capture) and isinstance(prompt, str):
        span.set_attribute(A.INPUT_MESSAGES, _text_messages("user", prompt))
    return Scope(span)


def rollout_finished(span: Span, result: AgentResult, *, capture: bool | None = None) -> None:
    """Record the end of a rollout: its span's outcome and the rollout metrics."""
    termination = result.termination
    inst = instruments()
    recording = span.is_recording()
    if inst is None and not recording:
        return
    usage = result.usage.rounds
    tokens_in = sum(u.prompt_tokens for u in usage)
    tokens_out = sum(u.completion_tokens for u in usage)
    if inst is not None:
        inst.tally.add("rollouts", 1, ((A.TERMINATION, termination),))
        inst.rollout_duration.record(result.timings.total, {A.TERMINATION: termination})
        inst.tally.add("tokens", tokens_in, _INPUT)
        inst.tally.add("tokens", tokens_out, _OUTPUT)
    if not recording:
        return
    span.set_attributes(
        {
            A.TERMINATION: termination,
            A.ROUNDS: result.rounds,
            A.USAGE_INPUT: tokens_in,
            A.USAGE_OUTPUT: tokens_out,
        }
    )
    if result.error is not None:
        span.set_attribute(A.ERROR_TYPE, result.error.kind)
        if termination != "cancelled":
            span.set_status(Status(StatusCode.ERROR))
    if capture_content(capture) and result.gen_prompt:
        span.set_attribute(A.OUTPUT_MESSAGES, _text_messages("assistant", result.gen_prompt))


def round_span(rnd: int, *, final: bool) -> Scope:
    """One round's span; its latency goes to ``genevolve.round.duration``."""
    t = child_tracer()
    inst = instruments()
    if t is None and inst is None:
        return NOOP
    span = (
        t.start_span(f"round {rnd}", attributes=_FINAL if final else None)
        if t is not None
        else None
    )
    return Scope(span, inst.round_duration if inst is not None else None, None)


def model_call_span(
    model: str,
    *,
    max_tokens: int,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
) -> Scope:
    """A policy call's ``chat {model}`` span (GenAI inference span).

    It is also the policy's provider-call span: the :func:`provider_call`
    made inside adopts it instead of opening a child, one span fewer per
    round (the replica, attempts and retries land on it).
    """
    t = child_tracer()
    if t is None:
        return NOOP
    attrs: dict[str, Any] = {
        A.OPERATION: "chat",
        A.PROVIDER: A.POLICY_PROVIDER,
        A.REQUEST_MODEL: model,
        A.REQUEST_MAX_TOKENS: max_tokens,
    }
    if temperature is not None:
        attrs[A.REQUEST_TEMPERATURE] = temperature
    if top_p is not None:
        attrs[A.REQUEST_TOP_P] = top_p
    if seed is not None:
        attrs[A.REQUEST_SEED] = seed
    return AdoptableScope(t.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attrs))


def model_replied(
    span: Span, reply: ChatReply, *, model: str, seconds: float, capture: bool | None = None
) -> None:
    """Record a policy reply on its span: usage and finish reason."""
    if not span.is_recording():
        return
    usage = reply.usage
    span.set_attributes(
        {
            A.USAGE_INPUT: usage.prompt_tokens,
            A.USAGE_OUTPUT: usage.completion_tokens,
            A.RESPONSE_FINISH_REASONS: [reply.finish_reason or "unknown"],
        }
    )
    if capture_content(capture) and reply.content is not None:
        span.set_attribute(A.OUTPUT_MESSAGES, _text_messages("assistant", reply.content))


def tool_call_span(
    name: str, call_id: str, arguments: Any = None, *, capture: bool | None = None
) -> Scope:
    """A tool call's ``execute_tool {name}`` span."""
    t = child_tracer()
    if t is None:
        return NOOP
    span = t.start_span(
        f"execute_tool {name}",
        attributes={
            A.OPERATION: "execute_tool",
            A.TOOL_NAME: name,
            A.TOOL_CALL_ID: call_id,
        },
    )
    if capture_content(capture) and arguments is not None:
        span.set_attribute(A.TOOL_ARGUMENTS, _json.dumps(arguments))
    return Scope(span)


def tool_finished(
    span: Span,
    name: str,
    *,
    ok: bool,
    error_kind: str | None = None,
    observation: str = "",
    capture: bool | None = None,
) -> None:
    """Record a tool call's outcome (``ok``, or the error's kind)."""
    outcome = "ok" if ok else (error_kind or "error")
    inst = instruments()
    if inst is not None:
        inst.tally.add("tool_calls", 1, ((A.TOOL_NAME, name), (A.OUTCOME, outcome)))
    if not span.is_recording():
        return
    if not ok:  # attributes cost the SDK microseconds each: an ok call gets none
        span.set_attribute(A.ERROR_TYPE, outcome)
        span.set_status(Status(StatusCode.ERROR))
    if capture_content(capture):
        span.set_attribute(A.TOOL_RESULT, observation)
