"""Our metric instruments, made once per meter provider.

Measurements taken on the hot path are few and synchronous: about a dozen
per rollout (rollouts, rounds, tool calls, tokens), since each costs the SDK
several microseconds. Latencies of single model, tool and provider calls
are in their spans. What the runtime counts anyway (requests, retries and
429s by provider, limiter waits, requests in flight, the image cache) is
exported by observable instruments read at collection time (see
:mod:`._registry`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry import metrics

from . import _registry

__all__ = ["Instruments"]

# Buckets for seconds, from a fast tool call to a long rollout.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


def _observe(
    name: str, gauge: bool = False
) -> Callable[[metrics.CallbackOptions], Iterable[metrics.Observation]]:
    def callback(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        readings = _registry.gauge_readings() if gauge else _registry.counter_readings()
        return [
            metrics.Observation(value, dict(attrs))
            for (short, attrs), value in readings.items()
            if short == name
        ]

    return callback


class Instruments:
    """The instruments of one meter."""

    __slots__ = ("rollout_duration", "rollouts", "round_duration", "tokens", "tool_calls")

    def __init__(self, meter: metrics.Meter) -> None:
        self.rollouts = meter.create_counter(
            "genevolve.rollouts", unit="{rollout}", description="Rollouts finished, by termination"
        )
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
        self.tool_calls = meter.create_counter(
            "genevolve.tool.calls", unit="{call}", description="Tool calls, by tool and outcome"
        )
        self.tokens = meter.create_counter(
            "genevolve.tokens",
            unit="{token}",
            description="Tokens used by finished rollouts, by gen_ai.token.type (input, output)",
        )
        self._observables(meter)

    @staticmethod
    def _observables(meter: metrics.Meter) -> None:
        counters = (
            ("requests", "genevolve.provider.requests", "{request}", "Attempts admitted by the provider's limiter (retries included)"),
            ("retries", "genevolve.provider.retries", "{retry}", "Retries, by provider"),
            ("rate_limited", "genevolve.provider.rate_limited", "{answer}", "429 answers, by provider"),
            ("failures", "genevolve.provider.failures", "{call}", "Calls failed for good, by provider"),
            ("limiter_wait", "genevolve.limiter.wait", "s", "Time spent waiting for a provider's limiter"),
            ("limiter_waits", "genevolve.limiter.waits", "{wait}", "Admissions that had to wait"),
            ("image_cache_requests", "genevolve.image_cache.requests", "{request}", "Image requests, by outcome (hit, joined, downloaded)"),
            ("image_cache_bytes", "genevolve.image_cache.bytes", "By", "Bytes of downloaded images stored"),
        )  # fmt: skip
        for short, name, unit, description in counters:
            meter.create_observable_counter(
                name, callbacks=[_observe(short)], unit=unit, description=description
            )
        meter.create_observable_up_down_counter(
            "genevolve.replica.in_flight",
            callbacks=[_observe("in_flight", gauge=True)],
            unit="{request}",
            description="Requests in flight, by provider and replica",
        )
