"""The bench's cluster runs (``--ray``): the same load over 1..N Ray workers, and the limiter.

Figures per run: throughput, CPU per rollout with the coordinator's share
(the driver and the limiter service, besides the workers), and the rate
grants' cost. Two more runs measure the limiter alone (grants per second a
service hands out, round-trip time per grant) and a rate-limited run over two
workers (the busiest 1 s window against the limit, and the budget used).
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from .._limits import ProviderLimits, max_in_window
from ..agent import AgentConfig
from ._report import Scenario, theoretical_throughput
from ._run import bench_tools

__all__ = ["run_cluster_suite"]


async def _cluster_run(
    *,
    address: str | None,
    workers: int,
    policy_urls: list[str],
    serper_url: str,
    num_rollouts: int,
    concurrency: int,
    scenario: Scenario,
    serper_rate: float | None,
    image_root: Path | None,
) -> dict[str, Any]:
    from ..cluster import Cluster

    limits = {"serper": ProviderLimits(rate=serper_rate)} if serper_rate else {}
    rows = [f"bench request {i}: a coastal town at dusk" for i in range(num_rollouts)]
    with tempfile.TemporaryDirectory(prefix="genevolve-bench-", dir=image_root) as tmp:
        tools = bench_tools(serper_url, Path(tmp))
        async with Cluster(
            workers=workers,
            address=address,
            parallel=concurrency,
            limits=limits,
            record_grants=serper_rate is not None,
        ) as cluster:
            service_cpu = await cluster.service.cpu_seconds.remote()
            terminations: dict[str, int] = {}
            cpu0, started = time.process_time(), 0.0
            async for record in cluster.map(rows, AgentConfig(base_url=policy_urls), tools=tools):
                if not started:
                    # The first record marks the end of the workers' start-up.
                    started = time.monotonic()
                    first_at, cpu0 = started, time.process_time()
                terminations[record["termination"]] = terminations.get(record["termination"], 0) + 1
            ended = time.monotonic()
            driver_cpu = time.process_time() - cpu0
            service_cpu = await cluster.service.cpu_seconds.remote() - service_cpu
            service = await cluster.limiter_stats()
            assert cluster.dispatcher is not None
            stats = cluster.dispatcher.final_stats
    done = sum(terminations.values())
    duration = max(ended - first_at, 1e-9)
    counted = max(1, done - 1)  # rollouts after the first record
    worker_cpu = sum(s["cpu_seconds"] - s["start_cpu"] for s in stats)
    row: dict[str, Any] = {
        "runner": f"cluster[{workers} worker{'s' if workers > 1 else ''}]",
        "num_rollouts": num_rollouts,
        "max_concurrency": concurrency,
        "completed": done,
        "terminations": terminations,
        "duration_s": round(duration, 3),
        "rollouts_per_s": round(counted / duration, 3),
        "theoretical_rollouts_per_s": round(
            theoretical_throughput(min(concurrency, num_rollouts), scenario.critical_path), 3
        ),
        # Workers include their own start-up tail; the driver and service are the coordinator.
        "cpu_ms_per_rollout": round(1000 * (worker_cpu + driver_cpu + service_cpu) / done, 3),
        "coordinator_cpu_ms_per_rollout": round(1000 * (driver_cpu + service_cpu) / done, 3),
        "items_per_worker": [s.get("taken") for s in stats],
        # Each worker routes on its own view: how evenly that spreads the cluster's calls.
        "policy_requests_per_replica": _per_replica(stats),
    }
    if serper_rate:
        row["rate_limited"] = _rate_figures(stats, service, serper_rate)
    return row


def _per_replica(stats: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Policy requests by replica URL, one count per worker."""
    out: dict[str, list[int]] = {}
    for worker in stats:
        for key, figures in worker.get("endpoints", {}).items():
            if key.startswith("policy:"):
                out.setdefault(key.removeprefix("policy:"), []).append(figures["requests"])
    return out


def _rate_figures(
    stats: list[dict[str, Any]], service: dict[str, Any], rate: float
) -> dict[str, Any]:
    serper = [s["limiters"].get("serper", {}) for s in stats]
    grants = sorted(t for s in serper for t in s.get("grant_times", ()))
    gates = [s["gate"] for s in serper if s.get("gate")]
    used = sum(g["used"] for g in gates)
    span = grants[-1] - grants[0] if len(grants) > 1 else 0.0
    return {
        "rate_limit": rate,
        "grants": len(grants),
        "max_in_1s_window": max_in_window(grants) if grants else 0,
        "budget_used": round((len(grants) - 1) / (span * rate), 4) if span else None,
        "grants_per_lease": round(used / max(1, sum(g["leases"] for g in gates)), 2),
        "expired": sum(g["expired"] for g in gates),
        "lease_ms_per_grant": round(
            1000 * sum(g["lease_seconds"] for g in gates) / max(1, used), 4
        ),
        "service": service.get("serper"),
    }


async def _limiter_alone(address: str | None, seconds: float = 3.0) -> dict[str, Any]:
    """Grants per second one service hands two gates, at a rate nothing else bounds."""
    from ..cluster import Cluster, LeasedRateGate

    async with Cluster(workers=1, address=address) as cluster:
        lease = cluster.service.lease.remote
        gates = [LeasedRateGate(lease, "bench", 1e6) for _ in range(2)]
        cpu0 = await cluster.service.cpu_seconds.remote()
        count = 0

        async def take(gate: LeasedRateGate) -> None:
            nonlocal count
            while True:
                await gate.acquire()
                count += 1

        started = time.monotonic()
        with anyio.move_on_after(seconds):
            async with anyio.create_task_group() as tg:
                for gate in gates:
                    for _ in range(64):
                        tg.start_soon(take, gate)
        elapsed = time.monotonic() - started
        service_cpu = await cluster.service.cpu_seconds.remote() - cpu0
    leases = sum(g.stats.leases for g in gates)
    return {
        "runner": "limiter service alone (2 gates, 64 waiters each)",
        "grants_per_s": round(count / elapsed, 1),
        "leases_per_s": round(leases / elapsed, 1),
        "grants_per_lease": round(count / max(1, leases), 2),
        "lease_round_trip_ms": round(1000 * sum(g.stats.lease_seconds for g in gates) / leases, 3),
        "service_cpu_us_per_grant": round(1e6 * service_cpu / max(1, count), 2),
        "service_cpu_us_per_lease": round(1e6 * service_cpu / max(1, leases), 2),
    }


async def run_cluster_suite(
    *,
    address: str | None,
    worker_counts: list[int],
    policy_urls: list[str],
    serper_url: str,
    num_rollouts: int,
    concurrency: int,
    scenario: Scenario,
    serper_rate: float,
    image_root: Path | None,
) -> list[dict[str, Any]]:
    """Every cluster figure of one bench invocation (see the module's docstring)."""
    from ..cluster._ray import connect

    await connect(address, include_dashboard=False, object_store_memory=200 * 1024 * 1024)
    run = functools.partial(
        _cluster_run,
        address=address,
        policy_urls=policy_urls,
        serper_url=serper_url,
        num_rollouts=num_rollouts,
        concurrency=concurrency,
        scenario=scenario,
        image_root=image_root,
    )
    rows = [await run(workers=n, serper_rate=None) for n in worker_counts]
    rows.append(await _limiter_alone(address))
    limited = await run(workers=2, serper_rate=serper_rate)
    limited["runner"] += f" serper {serper_rate}/s"
    rows.append(limited)
    return rows
