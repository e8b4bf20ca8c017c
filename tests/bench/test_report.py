from __future__ import annotations

import math

import pytest

from genevolve_async.bench import (
    Scenario,
    efficiency,
    percentile,
    steady_rate,
    theoretical_throughput,
)


def test_default_scenario_critical_path_is_2_7_seconds() -> None:
    # 4 model calls (0.5 s) + search (0.3 s, its 2 queries in parallel)
    # + image_search (Serper 0.3 s, then 5 downloads at once 0.1 s) + query_knowledge (0 s).
    assert Scenario().critical_path == pytest.approx(2.7)


def test_critical_path_follows_the_tool_cycle() -> None:
    scenario = Scenario(
        rounds=6, model_latency=10.0, tools=("search", "image_search", "query_knowledge")
    )
    # 6 model calls, then tools search, image_search, query_knowledge, search, image_search.
    assert scenario.critical_path == pytest.approx(60 + 0.3 + 0.4 + 0 + 0.3 + 0.4)
    assert Scenario(rounds=1).critical_path == pytest.approx(0.5)


def test_theoretical_throughput_and_efficiency_on_a_hand_built_trace() -> None:
    # 256 in flight over a 2.7 s critical path can finish at most 94.8 rollouts/s.
    bound = theoretical_throughput(256, 2.7)
    assert bound == pytest.approx(94.8148, rel=1e-4)
    # A run that completed 2,560 rollouts in 30 s achieved 85.33/s: efficiency 0.9.
    assert efficiency(2560 / 30, bound) == pytest.approx(0.9, rel=1e-4)
    assert efficiency(5.0, math.inf) == 0.0
    assert theoretical_throughput(10, 0) == math.inf


def test_steady_rate_counts_intervals_between_first_and_last() -> None:
    # 5 completions at 2.7, 2.8, 2.9, 3.0, 3.1 s: 4 intervals over 0.4 s.
    assert steady_rate([3.1, 2.7, 2.9, 2.8, 3.0]) == pytest.approx(10.0)
    assert steady_rate([1.0]) == 0.0


def test_percentiles_interpolate() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == pytest.approx(4.6)
    assert percentile(values, 100) == 5.0
    assert percentile([], 50) == 0.0


def test_steady_rate_after_the_first_wave_stays_at_the_bound() -> None:
    # 4 in flight, critical path 1 s, all started at once: waves end at 1, 2, 3 s.
    waves = [float(t) for t in (1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)]
    bound = 4 / 1.0
    assert steady_rate(waves) > bound  # counted from the first completion: above the bound
    assert steady_rate(waves, warmup=4) == pytest.approx(bound)
    assert steady_rate([1.0, 1.0], warmup=2) == 0.0  # one wave: no steady window
