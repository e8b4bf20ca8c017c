"""Which tracer and instruments to use now: none until an SDK is configured.

With only ``opentelemetry-api`` installed (or no provider set) the global
providers are proxies, and every span or measurement through them would
still cost a few microseconds of Python. So each instrumentation point asks
:func:`tracer` or :func:`instruments` first; they answer ``None`` while the
providers are proxies or no-ops, and cache what they build per provider, so
the steady-state cost is one global read and an identity check.

Tests (and embedders who keep their providers out of the globals) use
:func:`use_providers` instead of ``set_tracer_provider``, which can be
called only once per process.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as _metrics_api

from .._version import __version__
from ._instruments import Instruments

__all__ = ["child_tracer", "instruments", "tracer", "use_providers"]

_SCOPE = "genevolve_async"

_override_tracing: trace.TracerProvider | None = None
_override_metrics: metrics.MeterProvider | None = None

_tracer_for: object = None
_tracer: trace.Tracer | None = None
_instruments_for: object = None
_instruments: Instruments | None = None
# Every provider's instruments, kept: the SDK hands back the same meter, and
# so the same observable counters bound to the first tally, when a provider
# is used again after another (A, then B, then A).
_instruments_by_provider: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()
_instruments_lock = threading.Lock()


# ``get_tracer_provider()`` looks up an environment variable on every call
# while no provider is set, and a missing key costs an exception: 5 us on the
# project's VM, more than the rest of an instrumentation point. So read the
# API's global directly, and ask the API only when it is unset and the
# variable that names a provider class is present (the API then loads and
# sets it, and the global is read from then on).
_PROVIDER_FROM_ENV = {
    "tracing": "OTEL_PYTHON_TRACER_PROVIDER" in os.environ,
    "metrics": "OTEL_PYTHON_METER_PROVIDER" in os.environ,
}
_UNSET = object()


def _global_tracer_provider() -> trace.TracerProvider:
    provider = getattr(trace, "_TRACER_PROVIDER", _UNSET)
    if provider is None and not _PROVIDER_FROM_ENV["tracing"]:
        return _PLACEHOLDER_TRACING
    if provider is None or provider is _UNSET:
        return trace.get_tracer_provider()
    return provider  # type: ignore[return-value]


def _global_meter_provider() -> metrics.MeterProvider:
    provider = getattr(_metrics_api, "_METER_PROVIDER", _UNSET)
    if provider is None and not _PROVIDER_FROM_ENV["metrics"]:
        return _PLACEHOLDER_METRICS
    if provider is None or provider is _UNSET:
        return metrics.get_meter_provider()
    return provider  # type: ignore[return-value]


_PLACEHOLDER_TRACING = trace.NoOpTracerProvider()
_PLACEHOLDER_METRICS = metrics.NoOpMeterProvider()


def _is_placeholder_tracing(provider: trace.TracerProvider) -> bool:
    return isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _is_placeholder_metrics(provider: metrics.MeterProvider) -> bool:
    # The API's proxy class is private; its name is stable across 1.x.
    return isinstance(provider, metrics.NoOpMeterProvider) or (
        type(provider).__name__ == "_ProxyMeterProvider"
    )


def tracer() -> trace.Tracer | None:
    """Our tracer, or ``None`` when no SDK tracer provider is configured."""
    global _tracer_for, _tracer
    provider = _override_tracing or _global_tracer_provider()
    if provider is not _tracer_for:
        _tracer = (
            None if _is_placeholder_tracing(provider) else provider.get_tracer(_SCOPE, __version__)
        )
        _tracer_for = provider
    return _tracer


def child_tracer() -> trace.Tracer | None:
    """Our tracer for a span inside the current one; ``None`` if it would not be recorded.

    Under a span the sampler dropped, the SDK's samplers drop the children
    too (``parentbased_*`` follow the parent; the ratio samplers decide by
    trace id, the same for every span of a trace), so the children are not
    made at all: a sampled-out rollout then costs about what the API alone
    does, instead of a dropped span per round, model, tool and provider call.
    """
    t = tracer()
    if t is None:
        return None
    current = trace.get_current_span()
    if not current.is_recording() and current.get_span_context().is_valid:
        return None
    return t


def instruments() -> Instruments | None:
    """Our instruments, or ``None`` when no SDK meter provider is configured."""
    global _instruments_for, _instruments
    provider = _override_metrics or _global_meter_provider()
    if provider is not _instruments_for:
        # Under a lock: two threads making a provider's instruments at once
        # would leave one tally unread (the SDK keeps the first callbacks).
        with _instruments_lock:
            made = None
            if not _is_placeholder_metrics(provider):
                made = _instruments_by_provider.get(provider)
                if made is None:
                    made = Instruments(provider.get_meter(_SCOPE, __version__))
                    _instruments_by_provider[provider] = made
            _instruments, _instruments_for = made, provider
            return made
    return _instruments


@contextmanager
def use_providers(tracer_provider: Any = None, meter_provider: Any = None) -> Iterator[None]:
    """Send our spans and measurements to these providers inside the block.

    Args:
        tracer_provider: An SDK ``TracerProvider`` (``None``: the global one).
        meter_provider: An SDK ``MeterProvider`` (``None``: the global one).
    """
    global _override_tracing, _override_metrics
    saved = _override_tracing, _override_metrics
    _override_tracing, _override_metrics = tracer_provider, meter_provider
    try:
        yield
    finally:
        _override_tracing, _override_metrics = saved
