"""The provider-call span: one per call to a service, its retries as events.

Wrap the whole call, retries included, so the span shows what the caller
waited for::

    with telemetry.provider_call("serper", "search", url=url) as call:
        ...                        # each attempt: limiter, send, classify
        call.replica(endpoint.url)  # which replica answered (pools)
        call.retry(attempt, exc, delay)  # or note_retry() from a retry callback

Deeper code that has no handle (the limiter, a shared retry callback) uses
:func:`note_retry` and :func:`note_limiter_wait`, which act on the current
span when it is a recording one, and cost a context lookup otherwise.

Only the host and port of a URL are recorded: never its path's query
string, credentials or headers.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from .._errors import classify_exception
from . import _attrs as A
from ._instruments import Instruments
from ._scope import mark_error
from ._state import instruments, tracer

__all__ = ["ProviderCall", "note_limiter_wait", "note_replica", "note_retry", "provider_call"]


def _retry_event(span: Span, attempt: int, exc: BaseException, delay: float) -> None:
    attrs: dict[str, Any] = {
        "genevolve.retry.attempt": attempt,
        "genevolve.retry.delay_s": round(delay, 6),
        A.ERROR_TYPE: type(exc).__name__,
    }
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        attrs[A.HTTP_STATUS] = status
    span.add_event(A.RETRY_EVENT, attrs)
    span.set_attribute(A.ATTEMPTS, attempt + 1)


def note_retry(attempt: int, exc: BaseException, delay: float) -> None:
    """A retry event on the current span: attempt ``attempt`` failed with ``exc``."""
    if tracer() is None:
        return
    span = trace.get_current_span()
    if span.is_recording():
        _retry_event(span, attempt, exc, delay)


def note_replica(url: str) -> None:
    """The endpoint (replica) the current provider call's attempt went to."""
    if tracer() is None:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(A.server_attributes(url))


def note_limiter_wait(seconds: float) -> None:
    """Add ``seconds`` of limiter wait to the current span's total."""
    if tracer() is None:
        return
    span = trace.get_current_span()
    if span.is_recording():
        so_far = getattr(span, "attributes", None) or {}
        span.set_attribute(A.LIMITER_WAIT, float(so_far.get(A.LIMITER_WAIT, 0.0)) + seconds)


class ProviderCall:
    """One provider call in progress; see :func:`provider_call`."""

    __slots__ = ("_inst", "_provider", "_started", "_token", "span")

    def __init__(self, span: Span | None, inst: Instruments | None, provider: str) -> None:
        self.span: Span = span if span is not None else trace.INVALID_SPAN
        self._inst = inst
        self._provider = provider
        self._token: object = None
        self._started = 0.0

    def replica(self, url: str) -> None:
        """The endpoint (replica) this attempt went to."""
        if self.span.is_recording():
            self.span.set_attributes(A.server_attributes(url))

    def retry(self, attempt: int, exc: BaseException, delay: float) -> None:
        """Attempt ``attempt`` failed with ``exc``; the next comes after ``delay`` seconds."""
        if self.span.is_recording():
            _retry_event(self.span, attempt, exc, delay)

    def __enter__(self) -> ProviderCall:
        if self._inst is not None:
            self._started = time.monotonic()
        if self.span.is_recording():
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failed = isinstance(exc, Exception)
        if self._inst is not None:
            outcome = classify_exception(exc).kind if failed and exc is not None else "ok"
            attrs = {A.CALL_PROVIDER: self._provider, A.OUTCOME: outcome}
            self._inst.provider_calls.add(1, attrs)
            self._inst.provider_duration.record(time.monotonic() - self._started, attrs)
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            if failed and exc is not None:
                mark_error(self.span, exc)
                status = getattr(exc, "status", None)
                if isinstance(status, int) and status:
                    self.span.set_attribute(A.HTTP_STATUS, status)
            self.span.end()


_NOOP_CALL = ProviderCall(None, None, "")


def provider_call(provider: str, operation: str, *, url: str | None = None) -> ProviderCall:
    """The span (and metrics) of one call to ``provider``, retries included.

    Args:
        provider: The limiter's provider name (``policy``, ``serper``, ``qwen``, ...).
        operation: What is called (``chat.completions``, ``search``, ``generate``).
        url: The endpoint, when one is known up front (only host and port are kept).
    """
    t = tracer()
    inst = instruments()
    if t is None and inst is None:
        return _NOOP_CALL
    span = None
    if t is not None:
        attrs: dict[str, Any] = {A.CALL_PROVIDER: provider, A.CALL_OPERATION: operation}
        if url:
            attrs.update(A.server_attributes(url))
        span = t.start_span(f"{provider} {operation}", kind=SpanKind.CLIENT, attributes=attrs)
    return ProviderCall(span, inst, provider)
