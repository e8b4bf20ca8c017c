"""SDK providers with in-memory exporters, and simulated backends for whole rollouts.

The providers are handed to the library with ``use_providers``, not set as
the process's globals (those can be set once), so every test starts empty.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the otel extra")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genevolve_async import GenEvolveAgent, RetryPolicy, Runtime, RuntimeConfig
from genevolve_async.sim import SimConfig, SimStack
from genevolve_async.telemetry import instruments, use_providers
from genevolve_async.tools import (
    ImageCacheSettings,
    ImageSearch,
    QueryKnowledge,
    SerperBackend,
    WebSearch,
)

POLICY_KEY = "sk-policy-SECRET-0123456789"
SERPER_KEY = "serper-SECRET-9876543210"


async def _no_sleep(seconds: float) -> None:
    return None


@dataclass(kw_only=True, slots=True)
class Otel:
    """The test's providers and what they collected."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Metric name -> [(attributes, point)] from one collection."""
        out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        out.setdefault(metric.name, []).append((dict(point.attributes), point))
        return out


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    with use_providers(tracer_provider, meter_provider):
        instruments()  # registered now, so a first collection sees earlier runtimes' counts
        yield Otel(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            spans=spans,
            reader=reader,
        )
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
async def stack() -> AsyncIterator[SimStack]:
    """Policy, Serper and image host: fast, scripted 4-round rollouts."""
    config = SimConfig(model_latency=0.01, search_latency=0.01, download_latency=0.005, spread=0.0)
    async with SimStack(config) as sims:
        yield sims


def fast_runtime(attempts: int = 3) -> Runtime:
    retry = RetryPolicy(attempts=attempts, initial=0.0, jitter=0.0, sleep=_no_sleep)
    return Runtime(RuntimeConfig(retry=retry))


def make_agent(sims: SimStack, runtime: Runtime, folder: Path, **options: Any) -> GenEvolveAgent:
    """An agent with the real search tools, talking to the sims with keys set."""
    backend = SerperBackend(base_url=sims.urls["serper"], api_key=SERPER_KEY)
    cache = ImageCacheSettings(folder=str(folder), allow_private=True)
    tools = [WebSearch(backend), ImageSearch(backend, cache=cache), QueryKnowledge()]
    return GenEvolveAgent(
        runtime=runtime,
        base_url=sims.urls["policy"],
        api_key=POLICY_KEY,
        tools=tools,
        **options,
    )
