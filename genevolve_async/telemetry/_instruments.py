"""Our metric instruments, made once per meter provider.

Measurements taken on the hot path (rollouts, rounds, tool calls, provider
calls, tokens) are synchronous instruments. What the runtime counts anyway
is exported by observable instruments read at collection time (see
:mod:`._registry`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry import metrics

from . import _registry

__all__ = ["Instruments"]

# Buckets for seconds, from a fast tool call to a long rollout.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_TOKENS = (16, 64, 256, 1024, 4096, 16384, 65536)


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

    __slots__ = (
        "model_duration",
        "provider_calls",
        "provider_duration",
        "rollout_duration",
        "rollouts",
        "round_duration",
        "token_usage",
        "tool_calls",
        "tool_duration",
    )

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
        self.tool_duration = meter.create_histogram(
            "genevolve.tool.duration",
            unit="s",
            description="Tool call latency, by tool",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.provider_calls = meter.create_counter(
            "genevolve.provider.calls",
            unit="{call}",
            description="Provider calls (retries included in one call), by provider and outcome",
        )
        self.provider_duration = meter.create_histogram(
            "genevolve.provider.duration",
            unit="s",
            description="Provider call latency, retries and limiter waits included",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        # The GenAI conventions' client metrics.
        self.model_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used per model call, by type",
            explicit_bucket_boundaries_advisory=_TOKENS,
        )
        self._observables(meter)

    @staticmethod
    def _observables(meter: metrics.Meter) -> None:
        counters = (
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
