"""A span made current for a block, plus an optional latency histogram.

The block's span is the current one inside it, so what starts inside (a
round inside a rollout, a tool call inside a round, a provider call inside
either) becomes its child, and a rollout started inside a web request's span
is the request's child. With neither tracing nor metrics configured the
instrumentation points get :data:`NOOP`, one shared object whose enter and
exit do nothing.

Errors become ``error.type`` (the exception's class) and an error status; the
message is never recorded, since error text can quote what a service sent.
Cancellation is not an error: the span just ends.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Histogram
from opentelemetry.trace import Span, Status, StatusCode

from ._attrs import ERROR_TYPE

__all__ = ["NOOP", "Scope", "mark_error"]


def mark_error(span: Span, exc: BaseException) -> None:
    """Error status and ``error.type`` on ``span`` (the message is left out)."""
    span.set_attribute(ERROR_TYPE, type(exc).__name__)
    span.set_status(Status(StatusCode.ERROR))


class Scope:
    """``with scope as span:`` -- the span is current, and ends (and is timed) on exit."""

    __slots__ = ("_attrs", "_histogram", "_made", "_started", "_token", "span")

    def __init__(
        self,
        span: Span | None,
        histogram: Histogram | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        self.span: Span = span if span is not None else trace.INVALID_SPAN
        self._made = span is not None
        self._histogram = histogram
        self._attrs = attrs
        self._token: object = None
        self._started = 0.0

    def __enter__(self) -> Span:
        if self._histogram is not None:
            self._started = time.monotonic()
        if self._made:
            # Current even when the sampler dropped it: the children then
            # inherit the decision instead of starting traces of their own.
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._histogram is not None:
            self._histogram.record(time.monotonic() - self._started, self._attrs)
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            if isinstance(exc, Exception):
                mark_error(self.span, exc)
            self.span.end()


NOOP = Scope(None)
"""The scope handed out when nothing is configured (stateless, so shared)."""
