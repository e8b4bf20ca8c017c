"""The reference runners of ``--compare``: ``bare`` and ``threaded``.

They live in the repository's ``benchmarks/`` folder (not in the installed
package): ``--compare`` needs a checkout.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import anyio

from .._errors import ConfigurationError
from .._progress import StageProgress
from ._drive import DriveResult, cpu_seconds, drive
from ._report import efficiency, percentile, steady_rate, theoretical_throughput

__all__ = ["REFERENCE_RUNNERS", "run_reference"]

REFERENCE_RUNNERS = ("bare", "threaded")


def _benchmarks(name: str) -> ModuleType:
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / f"{name}_runner.py").is_file():
        raise ConfigurationError(
            f"--compare {name} needs the repository's benchmarks/ folder (run from a checkout)"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"benchmarks.{name}_runner")


def _summary(runner: str, concurrency: int, critical_path: float, d: DriveResult) -> dict[str, Any]:
    throughput = d.completed / d.duration if d.duration > 0 else 0.0
    bound = theoretical_throughput(concurrency, critical_path)
    return {
        "runner": runner,
        "max_concurrency": concurrency,
        "completed": d.completed,
        "failed": d.failed,
        "duration_s": round(d.duration, 3),
        "rollouts_per_s": round(throughput, 3),
        "theoretical_rollouts_per_s": round(bound, 3),
        "efficiency": round(efficiency(throughput, bound), 4),
        "steady_efficiency": round(
            efficiency(steady_rate(d.completion_times, warmup=concurrency), bound), 4
        ),
        "latency_mean_s": round(sum(d.latencies) / len(d.latencies), 3) if d.latencies else 0.0,
        "latency_p50_s": round(percentile(d.latencies, 50), 3),
        "latency_p99_s": round(percentile(d.latencies, 99), 3),
        "first_rollout_latency_s": round(d.first_latency, 3),
        "cpu_ms_per_rollout": round(1000 * d.cpu_seconds / max(1, d.completed), 3),
        "loop_lag_max_ms": round(1000 * d.loop_lag_max, 2),
    }


async def run_reference(
    runner: str,
    *,
    urls: dict[str, Any],
    num_rollouts: int,
    concurrency: int,
    critical_path: float,
    rounds: int,
    stop_after: float | None,
    image_root: Path | None = None,
    progress: StageProgress | None = None,
) -> dict[str, Any]:
    """Run one reference runner against the same simulated backends."""
    module = _benchmarks(runner)
    with tempfile.TemporaryDirectory(prefix=f"genevolve-{runner}-", dir=image_root) as tmp:
        if runner == "bare":
            connector = aiohttp.TCPConnector(limit=max(1024, concurrency * 4))
            async with aiohttp.ClientSession(connector=connector) as session:
                rollout = module.make_rollout(
                    session,
                    policy_url=urls["policy"][0],
                    serper_url=urls["serper"],
                    folder=Path(tmp),
                    rounds=11,
                )
                driven = await drive(
                    rollout,
                    num_rollouts=num_rollouts,
                    concurrency=concurrency,
                    stop_after=stop_after,
                    progress=progress,
                )
            return _summary(runner, concurrency, critical_path, driven)
        started = cpu_seconds()
        raw = await anyio.to_thread.run_sync(
            lambda: module.run_threaded(
                policy_url=urls["policy"][0],
                serper_url=urls["serper"],
                folder=Path(tmp),
                num_rollouts=num_rollouts,
                concurrency=concurrency,
                stop_after=stop_after,
            )
        )
        driven = DriveResult(
            completed=raw["completed"],
            failed=raw["failed"],
            duration=raw["duration"],
            latencies=raw["latencies"],
            completion_times=raw["completion_times"],
            cpu_seconds=cpu_seconds() - started,
        )
        if raw["completion_times"]:
            first = min(
                range(len(raw["completion_times"])), key=raw["completion_times"].__getitem__
            )
            driven.first_latency = raw["latencies"][first]
        return _summary(runner, concurrency, critical_path, driven)
