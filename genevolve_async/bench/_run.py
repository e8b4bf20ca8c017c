"""Driving N rollouts at a fixed concurrency and measuring what happened."""

from __future__ import annotations

import resource
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._limits import max_in_window
from .._runtime import Runtime, RuntimeConfig
from ..agent import GenEvolveAgent
from ..tools import QueryKnowledge, Tool
from ._report import Scenario, efficiency, percentile, steady_rate, theoretical_throughput

__all__ = ["BenchResult", "LoopLagProbe", "run_rollouts"]


class LoopLagProbe:
    """Measures how late the event loop wakes a sleeper (its worst stall)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await anyio.sleep(self.interval)
            self.worst = max(self.worst, time.perf_counter() - before - self.interval)


@dataclass(kw_only=True, slots=True)
class BenchResult:
    """One run's figures."""

    runner: str
    num_rollouts: int
    concurrency: int
    completed: int = 0
    failed: int = 0
    duration: float = 0.0
    latencies: list[float] = field(default_factory=list)
    completion_times: list[float] = field(default_factory=list)
    first_latency: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    loop_lag_max: float = 0.0
    critical_path: float = 0.0
    terminations: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.completed / self.duration if self.duration > 0 else 0.0

    @property
    def theoretical(self) -> float:
        return theoretical_throughput(min(self.concurrency, self.num_rollouts), self.critical_path)

    def to_dict(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "runner": self.runner,
            "num_rollouts": self.num_rollouts,
            "max_concurrency": self.concurrency,
            "completed": self.completed,
            "failed": self.failed,
            "duration_s": round(self.duration, 3),
            "rollouts_per_s": round(self.throughput, 3),
            "theoretical_rollouts_per_s": round(self.theoretical, 3),
            "efficiency": round(efficiency(self.throughput, self.theoretical), 4),
            "steady_rollouts_per_s": round(steady_rate(self.completion_times), 3),
            "steady_efficiency": round(efficiency(steady_rate(self.completion_times), self.theoretical), 4),
            "critical_path_s": round(self.critical_path, 3),
            "latency_mean_s": round(sum(lat) / len(lat), 3) if lat else 0.0,
            "latency_p50_s": round(percentile(lat, 50), 3),
            "latency_p90_s": round(percentile(lat, 90), 3),
            "latency_p99_s": round(percentile(lat, 99), 3),
            "first_rollout_latency_s": round(self.first_latency, 3),
            "cpu_ms_per_rollout": round(1000 * self.cpu_seconds / max(1, self.completed), 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "loop_lag_max_ms": round(1000 * self.loop_lag_max, 2),
            "terminations": self.terminations,
            **self.extra,
        }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_rollouts(
    *,
    policy_urls: list[str],
    tools: list[Tool] | None,
    num_rollouts: int,
    concurrency: int,
    scenario: Scenario,
    runtime_config: RuntimeConfig | None = None,
) -> BenchResult:
    """Run ``num_rollouts`` rollouts, ``concurrency`` at a time, and measure."""
    result = BenchResult(
        runner="genevolve-async",
        num_rollouts=num_rollouts,
        concurrency=concurrency,
        critical_path=scenario.critical_path,
    )
    config = runtime_config or RuntimeConfig()
    config.max_connections = max(config.max_connections, concurrency * 4)
    terminations: dict[str, int] = {}
    next_index = 0
    probe = LoopLagProbe()
    with tempfile.TemporaryDirectory(prefix="genevolve-bench-"):
        async with Runtime(config) as runtime:
            agent = GenEvolveAgent(runtime=runtime, base_url=policy_urls, tools=tools or [QueryKnowledge()])
            start = time.perf_counter()
            cpu_start = _cpu()

            async def worker() -> None:
                nonlocal next_index
                while next_index < num_rollouts:
                    index = next_index
                    next_index += 1
                    began = time.perf_counter()
                    rollout = await agent.arun(f"bench request {index}: a coastal town at dusk")
                    done = time.perf_counter()
                    terminations[rollout.termination] = terminations.get(rollout.termination, 0) + 1
                    if rollout.ok:
                        result.completed += 1
                        result.latencies.append(done - began)
                        result.completion_times.append(done - start)
                        if result.completed == 1:
                            result.first_latency = done - began
                    else:
                        result.failed += 1

            async with anyio.create_task_group() as outer:
                outer.start_soon(probe.run)
                async with anyio.create_task_group() as tg:
                    for _ in range(min(concurrency, num_rollouts)):
                        tg.start_soon(worker)
                outer.cancel_scope.cancel()
            result.duration = time.perf_counter() - start
            result.cpu_seconds = _cpu() - cpu_start
            limiters = {
                name: {
                    "grants": lim.stats.grants,
                    "wait_s": round(lim.stats.wait_seconds, 3),
                    "peak_in_flight": lim.stats.peak_in_flight,
                    "max_per_1s_window": max_in_window(lim.grant_times) if lim.grant_times else None,
                    "rate_limit": lim.limits.rate,
                }
                for name, lim in runtime.limiters.items()
            }
            result.extra["limiters"] = limiters
            result.extra["retries"] = dict(runtime.stats.retries)
            result.extra["rate_limited"] = dict(runtime.stats.rate_limited)
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.loop_lag_max = probe.worst
    result.terminations = terminations
    return result
