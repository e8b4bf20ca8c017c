"""The provider-call span: one per call to a service, its retries as events.

Wrap the whole call, retries included, so the span shows what the caller
waited for::

    with telemetry.provider_call("serper", "search", url=url) as call:
        ...                        # each attempt: lease, limit, send, classify
        call.replica(endpoint.url)  # which replica it went to (pools)
        call.limiter_wait(seconds)  # how long it queued at the limiter
        call.retry(attempt, exc, delay)  # or note_retry() from a retry callback

Deeper code that has no handle (the limiter, a shared retry callback) uses
:func:`note_retry` and :func:`note_limiter_wait`, which act on the current
span when it is a recording one, and cost a context lookup otherwise.

Only the host and port of a URL are recorded: never its path's query
string, credentials or headers.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from . import _attrs as A
from ._scope import Scope, mark_error
from ._state import child_tracer, tracer

__all__ = [
    "AdoptableScope",
    "ProviderCall",
    "note_limiter_wait",
    "note_replica",
    "note_retry",
    "provider_call",
]

_adoptable: ContextVar[Span | None] = ContextVar("genevolve_adoptable_span", default=None)


class AdoptableScope(Scope):
    """A scope whose span the first provider call inside takes as its own."""

    __slots__ = ("_offer",)

    def __enter__(self) -> Span:
        span = super().__enter__()
        self._offer: Token[Span | None] = _adoptable.set(span)
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _adoptable.reset(self._offer)
        super().__exit__(exc_type, exc, tb)


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
        _add_wait(span, seconds)


def _add_wait(span: Span, seconds: float) -> None:
    so_far = getattr(span, "attributes", None) or {}
    span.set_attribute(A.LIMITER_WAIT, float(so_far.get(A.LIMITER_WAIT, 0.0)) + seconds)


class ProviderCall:
    """One provider call in progress; see :func:`provider_call`."""

    __slots__ = ("_owned", "_token", "span")

    def __init__(self, span: Span | None, *, owned: bool = True) -> None:
        self.span: Span = span if span is not None else trace.INVALID_SPAN
        self._owned = owned and span is not None
        self._token: object = None

    def replica(self, url: str) -> None:
        """The endpoint (replica) this attempt went to."""
        if self.span.is_recording():
            self.span.set_attributes(A.server_attributes(url))

    def limiter_wait(self, seconds: float) -> None:
        """An attempt waited ``seconds`` for its limiter slot (summed over attempts)."""
        if seconds > 0 and self.span.is_recording():
            _add_wait(self.span, seconds)

    def retry(self, attempt: int, exc: BaseException, delay: float) -> None:
        """Attempt ``attempt`` failed with ``exc``; the next comes after ``delay`` seconds."""
        if self.span.is_recording():
            _retry_event(self.span, attempt, exc, delay)

    def __enter__(self) -> ProviderCall:
        if self._owned:  # current even when not sampled: see _scope
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        if not self.span.is_recording():
            if self._owned:
                self.span.end()
            return
        if isinstance(exc, Exception):
            mark_error(self.span, exc)
            status = getattr(exc, "status", None)
            if isinstance(status, int) and status:
                self.span.set_attribute(A.HTTP_STATUS, status)
        if self._owned:
            self.span.end()


_NOOP_CALL = ProviderCall(None)


def provider_call(
    provider: str, operation: str | None = None, *, url: str | None = None
) -> ProviderCall:
    """The span of one call to ``provider``, retries included.

    Inside a model call's span the call adopts that span rather than opening
    a child (see :func:`model_call_span`).

    Args:
        provider: The limiter's provider name (``policy``, ``serper``, ``qwen``, ...).
        operation: What is called (``chat.completions``, ``search``), when the
            caller knows; the span is named ``{provider} {operation}``, else ``{provider}``.
        url: The endpoint, when one is known up front (only host and port are kept).
    """
    t = child_tracer()
    if t is None:
        return _NOOP_CALL
    attrs: dict[str, Any] = {A.CALL_PROVIDER: provider}
    if operation:
        attrs[A.CALL_OPERATION] = operation
    if url:
        attrs.update(A.server_attributes(url))
    offered = _adoptable.get()
    if offered is not None:
        _adoptable.set(None)  # one adoption per offer; the model call's span names the provider
        return ProviderCall(offered, owned=False)
    name = f"{provider} {operation}" if operation else provider
    return ProviderCall(t.start_span(name, kind=SpanKind.CLIENT, attributes=attrs))
