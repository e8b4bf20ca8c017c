"""Counts kept in a tally and exported by observable counters."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import INVALID_SPAN

from genevolve_async.telemetry import _rollout, use_providers


def _tool_calls(reader: InMemoryMetricReader) -> dict[tuple[str, str], Any]:
    data = reader.get_metrics_data()
    out: dict[tuple[str, str], Any] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "genevolve.tool.calls":
                    for p in metric.data.data_points:
                        attrs = p.attributes
                        out[attrs["gen_ai.tool.name"], attrs["genevolve.outcome"]] = p.value
    return out


def test_counts_are_integers_by_tool_and_outcome() -> None:
    reader = InMemoryMetricReader()
    with use_providers(None, MeterProvider(metric_readers=[reader])):
        for _ in range(3):
            _rollout.tool_finished(INVALID_SPAN, "search", ok=True)
        _rollout.tool_finished(INVALID_SPAN, "search", ok=False, error_kind="timeout")
    counts = _tool_calls(reader)
    assert counts == {("search", "ok"): 3, ("search", "timeout"): 1}
    assert all(type(v) is int for v in counts.values())  # exported as ints, as Counter.add(1) was


def test_a_provider_used_again_after_another_keeps_counting() -> None:
    reader_a, reader_b = InMemoryMetricReader(), InMemoryMetricReader()
    a = MeterProvider(metric_readers=[reader_a])
    b = MeterProvider(metric_readers=[reader_b])
    with use_providers(None, a):
        _rollout.tool_finished(INVALID_SPAN, "search", ok=True)
    with use_providers(None, b):
        _rollout.tool_finished(INVALID_SPAN, "search", ok=True)
    with use_providers(None, a):
        _rollout.tool_finished(INVALID_SPAN, "search", ok=True)
    assert _tool_calls(reader_a) == {("search", "ok"): 2}
    assert _tool_calls(reader_b) == {("search", "ok"): 1}


def test_counts_from_many_threads_are_all_kept_while_a_reader_collects() -> None:
    reader = InMemoryMetricReader()
    threads, per_thread = 4, 5_000
    stop = threading.Event()
    with use_providers(None, MeterProvider(metric_readers=[reader])):

        def count(i: int) -> None:
            for n in range(per_thread):
                # a new key now and then, so the reader sees the table grow
                _rollout.tool_finished(INVALID_SPAN, f"tool{n % 50}", ok=i % 2 == 0)

        def collect() -> None:
            while not stop.is_set():
                _tool_calls(reader)

        collector = threading.Thread(target=collect)
        collector.start()
        workers = [threading.Thread(target=count, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        stop.set()
        collector.join()
        assert sum(_tool_calls(reader).values()) == threads * per_thread
