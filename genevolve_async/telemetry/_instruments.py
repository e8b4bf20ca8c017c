"""Our metric instruments, made once per meter provider.

Each synchronous measurement costs the SDK about 9 us (more inside a
sampled span, where it is offered as an exemplar), so the hot path takes
only the latency histograms: one per rollout and one per round. Counts
(rollouts by termination, tool calls by tool and outcome, tokens) go into
a plain tally on the instruments object and are exported by observable
counters read at collection time, as is what the runtime counts anyway
(requests, retries and 429s by provider, limiter waits, requests in
flight, the image cache; see :mod:`._registry`). Latencies of single
model, tool and provider calls are in their spans.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import metrics

from . import _registry

__all__ = ["Instruments"]

# Buckets for seconds, from a fast tool call to a long rollout.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


Readings = Callable[[], Mapping[_registry.Key, float]]
"""A source of cumulative values by (short name, attributes as sorted pairs)."""


def _observe(
    readings: Readings, name: str
) -> Callable[[metrics.CallbackOptions], Iterable[metrics.Observation]]:
    def callback(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return [
            metrics.Observation(value, dict(attrs))
            for (short, attrs), value in readings().items()
            if short == name
        ]

    return callback


class Tally:
    """Counts by (short name, attributes as sorted pairs), under a lock.

    Written from every event loop that runs rollouts (each sync ``run`` has
    its own thread) and read from the metric reader's thread: the lock makes
    each increment whole and each reading a consistent copy.
    """

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._counts: defaultdict[_registry.Key, int] = defaultdict(int)
        self._lock = threading.Lock()

    def add(self, name: str, value: int, attrs: tuple[tuple[str, Any], ...]) -> None:
        """Add ``value`` to counter ``name`` (``rollouts``, ``tool_calls``, ``tokens``)."""
        with self._lock:
            self._counts[name, attrs] += value

    def readings(self) -> dict[_registry.Key, int]:
        """A copy of every count."""
        with self._lock:
            return self._counts.copy()


class Instruments:
    """The instruments of one meter, and the tally its counts go to."""

    __slots__ = ("rollout_duration", "round_duration", "tally")

    def __init__(self, meter: metrics.Meter) -> None:
        self.tally = Tally()
        """Counts of this meter provider's rollouts, so providers never mix."""
        self.rollout_duration = meter.create_histogram(
            "genevolve.rollout.duration",
            unit="s",
            description="Rollout latency, by termination",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.round_duration = meter.create_histogram(
            "genevolve.round.duration",
            unit="s",
            description="Round latency (model call and tool turn)",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        tally, runtime = self.tally.readings, _registry.counter_readings
        counters: tuple[tuple[Readings, str, str, str, str], ...] = (
            (tally, "rollouts", "genevolve.rollouts", "{rollout}", "Rollouts finished, by termination"),
            (tally, "tool_calls", "genevolve.tool.calls", "{call}", "Tool calls, by tool and outcome"),
            (tally, "tokens", "genevolve.tokens", "{token}", "Tokens used by finished rollouts, by gen_ai.token.type (input, output)"),
            (runtime, "requests", "genevolve.provider.requests", "{request}", "Attempts admitted by the provider's limiter (retries included)"),
            (runtime, "retries", "genevolve.provider.retries", "{retry}", "Retries, by provider"),
            (runtime, "rate_limited", "genevolve.provider.rate_limited", "{answer}", "429 answers, by provider"),
            (runtime, "failures", "genevolve.provider.failures", "{call}", "Calls failed for good, by provider"),
            (runtime, "limiter_wait", "genevolve.limiter.wait", "s", "Time spent waiting for a provider's limiter"),
            (runtime, "limiter_waits", "genevolve.limiter.waits", "{wait}", "Admissions that had to wait"),
            (runtime, "image_cache_requests", "genevolve.image_cache.requests", "{request}", "Image requests, by outcome (hit, joined, downloaded)"),
            (runtime, "image_cache_bytes", "genevolve.image_cache.bytes", "By", "Bytes of downloaded images stored"),
        )  # fmt: skip
        for readings, short, name, unit, description in counters:
            meter.create_observable_counter(
                name, callbacks=[_observe(readings, short)], unit=unit, description=description
            )
        meter.create_observable_up_down_counter(
            "genevolve.replica.in_flight",
            callbacks=[_observe(_registry.gauge_readings, "in_flight")],
            unit="{request}",
            description="Requests in flight, by provider and replica",
        )
