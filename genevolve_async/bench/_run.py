"""Our runner: the agent under test, driven by the shared load generator."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._limits import ProviderLimits, max_in_window
from .._progress import StageProgress
from .._runtime import Runtime, RuntimeConfig
from ..agent import GenEvolveAgent
from ..tools import ImageCacheSettings, ImageSearch, QueryKnowledge, SerperBackend, Tool, WebSearch
from ._drive import DriveResult, drive, peak_rss_mb
from ._report import Scenario, efficiency, percentile, steady_rate, theoretical_throughput

__all__ = ["BenchResult", "bench_tools", "run_rollouts"]


def bench_tools(serper_url: str, image_dir: Path, *, api_key: str = "sim-key") -> list[Tool]:
    """The default tool set pointed at a (simulated or real) Serper endpoint."""
    backend = SerperBackend(base_url=serper_url, api_key=api_key)
    cache = ImageCacheSettings(folder=image_dir, allow_private=True)
    return [WebSearch(backend), ImageSearch(backend, cache=cache), QueryKnowledge()]


@dataclass(kw_only=True, slots=True)
class BenchResult:
    """One runner's figures for one concurrency level."""

    runner: str
    num_rollouts: int
    concurrency: int
    request_rate: float
    critical_path: float
    drive: DriveResult
    peak_rss_mb: float = 0.0
    model_calls: int = 0
    tool_calls: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        d = self.drive
        return d.completed / d.duration if d.duration > 0 else 0.0

    @property
    def theoretical(self) -> float:
        bound = theoretical_throughput(min(self.concurrency, self.num_rollouts), self.critical_path)
        if math.isfinite(self.request_rate) and self.request_rate > 0:
            bound = min(bound, self.request_rate)
        return bound

    def to_dict(self) -> dict[str, Any]:
        d = self.drive
        lat = d.latencies
        mean = sum(lat) / len(lat) if lat else 0.0
        steady = steady_rate(d.completion_times, warmup=min(self.concurrency, d.completed))
        return {
            "runner": self.runner,
            "num_rollouts": self.num_rollouts,
            "max_concurrency": self.concurrency,
            "request_rate": self.request_rate if math.isfinite(self.request_rate) else "inf",
            "completed": d.completed,
            "failed": d.failed,
            "duration_s": round(d.duration, 3),
            "rollouts_per_s": round(self.throughput, 3),
            "theoretical_rollouts_per_s": round(self.theoretical, 3),
            "efficiency": round(efficiency(self.throughput, self.theoretical), 4),
            "steady_rollouts_per_s": round(steady, 3),
            "steady_efficiency": round(efficiency(steady, self.theoretical), 4),
            "critical_path_s": round(self.critical_path, 3),
            "latency_efficiency": round(self.critical_path / mean, 4) if mean else 0.0,
            "latency_mean_s": round(mean, 3),
            "latency_p50_s": round(percentile(lat, 50), 3),
            "latency_p90_s": round(percentile(lat, 90), 3),
            "latency_p99_s": round(percentile(lat, 99), 3),
            "first_rollout_latency_s": round(d.first_latency, 3),
            "queue_wait_mean_s": round(sum(d.queue_waits) / len(d.queue_waits), 3)
            if d.queue_waits
            else 0.0,
            "peak_in_flight": d.peak_in_flight,
            "cpu_ms_per_rollout": round(1000 * d.cpu_seconds / max(1, d.completed), 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "rss_kb_per_in_flight": round(1024 * self.peak_rss_mb / max(1, d.peak_in_flight), 1),
            "loop_lag_max_ms": round(1000 * d.loop_lag_max, 2),
            "terminations": dict(d.terminations),
            **self.extra,
        }


def _limiter_report(runtime: Runtime, duration: float) -> dict[str, Any]:
    return {
        name: {
            # Share of the configured budget used over the run (None: unlimited).
            "utilisation": round(lim.stats.grants / (duration * lim.limits.rate), 4)
            if lim.limits.rate and duration > 0
            else None,
            "grants": lim.stats.grants,
            "waits": lim.stats.waits,
            "wait_s": round(lim.stats.wait_seconds, 3),
            "peak_in_flight": lim.stats.peak_in_flight,
            "rate_limit": lim.limits.rate,
            "max_in_1s_window": max_in_window(lim.grant_times) if lim.grant_times else None,
        }
        for name, lim in runtime.limiters.items()
    }


async def run_rollouts(
    *,
    policy_urls: list[str],
    serper_url: str | None,
    num_rollouts: int,
    concurrency: int,
    scenario: Scenario,
    request_rate: float = math.inf,
    seed: int = 0,
    serper_rate: float | None = None,
    max_connections: int | None = None,
    policy_route: str = "lean",
    image_root: Path | None = None,
    progress: StageProgress | None = None,
) -> BenchResult:
    """Run ``num_rollouts`` rollouts through a fresh runtime and agent, and measure."""
    limits = {"serper": ProviderLimits(rate=serper_rate)} if serper_rate else {}
    # The runtime's own defaults (no connection cap), as a user gets them;
    # ``max_connections`` only to study a cap on purpose.
    config = RuntimeConfig(limits=limits, record_grants=True)
    if max_connections is not None:
        config.max_connections = max_connections
    with tempfile.TemporaryDirectory(prefix="genevolve-bench-", dir=image_root) as tmp:
        async with Runtime(config) as runtime:
            tools = bench_tools(serper_url, Path(tmp)) if serper_url else [QueryKnowledge()]
            agent = GenEvolveAgent(
                runtime=runtime, base_url=policy_urls, tools=tools, policy_route=policy_route
            )

            model_calls = 0
            tool_calls: dict[str, int] = {}

            async def rollout(index: int) -> str:
                nonlocal model_calls
                result = await agent.arun(f"bench request {index}: a coastal town at dusk")
                model_calls += result.rounds
                for name, count in result.tool_calls.items():
                    tool_calls[name] = tool_calls.get(name, 0) + count
                return result.termination

            driven = await drive(
                rollout,
                num_rollouts=num_rollouts,
                concurrency=concurrency,
                request_rate=request_rate,
                seed=seed,
                progress=progress,
            )
            extra = {
                "limiters": _limiter_report(runtime, driven.duration),
                "retries": dict(runtime.stats.retries),
                "rate_limited": dict(runtime.stats.rate_limited),
            }
    return BenchResult(
        runner="genevolve-async" if policy_route == "lean" else f"genevolve-async[{policy_route}]",
        num_rollouts=num_rollouts,
        concurrency=concurrency,
        request_rate=request_rate,
        critical_path=scenario.critical_path,
        drive=driven,
        peak_rss_mb=peak_rss_mb(),
        model_calls=model_calls,
        tool_calls=tool_calls,
        extra=extra,
    )
