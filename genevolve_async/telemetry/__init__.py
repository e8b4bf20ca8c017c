"""OpenTelemetry traces and metrics for rollouts and provider calls.

Everything goes through the OpenTelemetry API, a core dependency; with no
SDK configured each instrumentation point costs an identity check. Configure
an SDK yourself (``set_tracer_provider``, ``opentelemetry-instrument``) or
with :func:`configure_from_env` / the CLI's ``--otel`` (the ``otel`` extra).

Spans: ``invoke_agent genevolve`` per rollout, ``round {n}`` per round,
``chat {model}`` per model call, ``execute_tool {tool}`` per tool call and
``{provider} {operation}`` per provider call (the policy's is its model
call's span), with retries as ``genevolve.retry`` events. A rollout started inside another span (a web
request's) is its child. Prompts, replies and tool payloads are recorded only
with ``capture_content`` (``AgentConfig.capture_content`` or
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``); API keys, URL
paths and query strings never are.
"""

from __future__ import annotations

from ._provider import ProviderCall, note_limiter_wait, note_replica, note_retry, provider_call
from ._registry import runtime_closed, runtime_opened
from ._rollout import (
    capture_content,
    model_call_span,
    model_replied,
    rollout_finished,
    rollout_span,
    round_span,
    tool_call_span,
    tool_finished,
)
from ._setup import TelemetrySetup, configure_from_env
from ._state import instruments, tracer, use_providers

__all__ = [
    "ProviderCall",
    "TelemetrySetup",
    "capture_content",
    "configure_from_env",
    "instruments",
    "model_call_span",
    "model_replied",
    "note_limiter_wait",
    "note_replica",
    "note_retry",
    "provider_call",
    "rollout_finished",
    "rollout_span",
    "round_span",
    "runtime_closed",
    "runtime_opened",
    "tool_call_span",
    "tool_finished",
    "tracer",
    "use_providers",
]
