"""Ratios within one repetition and medians over repetitions, on hand-built rows."""

from __future__ import annotations

import pytest

from genevolve_async.bench._summary import medians, ratios


def row(
    runner: str, repeat: int, *, rate: float, cpu: float, level: int = 256
) -> dict[str, object]:
    return {
        "runner": runner,
        "max_concurrency": level,
        "repeat": repeat,
        "rollouts_per_s": rate,
        "cpu_ms_per_rollout": cpu,
        "efficiency": rate / 100,
    }


RUNS = [
    row("genevolve-async", 0, rate=90.0, cpu=4.0),
    row("bare", 0, rate=90.0, cpu=2.0),
    row("genevolve-async", 1, rate=80.0, cpu=6.0),  # a slow spell of the machine...
    row("bare", 1, rate=80.0, cpu=5.0),  # ...falls on both runners
    row("genevolve-async", 2, rate=95.0, cpu=3.0),
    row("bare", 2, rate=95.0, cpu=2.5),
]


def test_ratios_pair_rows_of_the_same_repetition() -> None:
    pairs = ratios(RUNS)
    assert [(p["repeat"], p["cpu_ratio"]) for p in pairs] == [(0, 2.0), (1, 1.2), (2, 1.2)]
    assert all(p["throughput_ratio"] == 1.0 for p in pairs)


def test_ratios_keep_levels_apart() -> None:
    runs = [
        row("genevolve-async", 0, rate=10.0, cpu=4.0, level=16),
        row("bare", 0, rate=20.0, cpu=2.0, level=64),
    ]
    assert ratios(runs) == []


def test_medians_of_figures_and_of_ratios() -> None:
    summary = {m["runner"]: m for m in medians(RUNS, ratios(RUNS))}
    ours, bare = summary["genevolve-async"], summary["bare"]
    assert ours["repeats"] == 3
    assert ours["cpu_ms_per_rollout"] == 4.0
    assert ours["cpu_ms_per_rollout_range"] == [3.0, 6.0]
    assert ours["efficiency"] == pytest.approx(0.9)
    # The median of per-repetition ratios (1.2), not the ratio of medians (4.0 / 2.5 = 1.6).
    assert ours["cpu_ratio_vs_bare"] == 1.2
    assert "cpu_ratio_vs_bare" not in bare
    assert bare["cpu_ms_per_rollout"] == 2.5
