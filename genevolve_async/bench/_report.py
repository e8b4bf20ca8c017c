"""The bench's arithmetic: theoretical throughput, efficiency, percentiles.

Kept free of I/O so tests can check it on hand-built traces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .._stats import percentile

__all__ = ["Scenario", "efficiency", "percentile", "steady_rate", "theoretical_throughput"]


@dataclass(kw_only=True, slots=True, frozen=True)
class Scenario:
    """The latencies that shape one rollout's critical path (seconds)."""

    rounds: int = 4
    model_latency: float = 0.5
    search_latency: float = 0.3
    download_latency: float = 0.1
    tools: tuple[str, ...] = ("search", "image_search", "query_knowledge")

    def tool_latency(self, tool: str) -> float:
        """Wall time of one turn of ``tool`` (parallel calls count as their slowest)."""
        if tool == "search":
            return self.search_latency  # the queries of one call run concurrently
        if tool == "image_search":
            return self.search_latency + self.download_latency  # Serper, then downloads at once
        return 0.0

    @property
    def critical_path(self) -> float:
        """Seconds one rollout takes with no queueing anywhere."""
        tool_rounds = self.rounds - 1
        tools = sum(self.tool_latency(self.tools[i % len(self.tools)]) for i in range(tool_rounds))
        return self.rounds * self.model_latency + tools


def theoretical_throughput(in_flight: int, critical_path: float) -> float:
    """Rollouts per second if ``in_flight`` rollouts each took exactly the critical path."""
    if critical_path <= 0:
        return math.inf
    return in_flight / critical_path


def efficiency(achieved: float, theoretical: float) -> float:
    """Achieved over theoretical throughput (0 when the bound is infinite)."""
    if theoretical <= 0 or math.isinf(theoretical):
        return 0.0
    return achieved / theoretical


def steady_rate(completion_times: Sequence[float], *, warmup: int = 0) -> float:
    """Completions per second after the first ``warmup`` completions, up to the last one.

    With every rollout started at once, the first ``in flight`` of them
    finish together one critical path in; the rate between the first and
    the last completion would count that wave without its time, and read
    above the bound. Passing ``warmup=in_flight`` starts the window at the
    end of that wave instead.
    """
    ordered = sorted(completion_times)
    first = max(0, warmup - 1)
    if len(ordered) - first < 2:
        return 0.0
    span = ordered[-1] - ordered[first]
    return (len(ordered) - 1 - first) / span if span > 0 else 0.0

