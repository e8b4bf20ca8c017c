"""The load generator: N rollouts, a concurrency cap, Poisson or instant arrivals.

Shared by our runner and the ``bare`` reference runner so both are measured
by the same clock, arrivals and bookkeeping.
"""

from __future__ import annotations

import math
import random
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from .._progress import StageProgress

__all__ = ["DriveResult", "LoopLagProbe", "cpu_seconds", "drive", "peak_rss_mb"]

RolloutFn = Callable[[int], Awaitable[str]]
"""Runs rollout ``index`` and returns its termination (``answer`` counts as completed)."""


def cpu_seconds() -> float:
    """User plus system CPU time of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class LoopLagProbe:
    """Measures how late the event loop wakes a sleeper (its worst stall).

    ``worst`` is wall-clock seconds, what a user of the loop feels; it also
    grows when other processes take the CPU. ``worst_cpu`` counts only the CPU
    time the loop's own thread spent while the sleeper waited, so it tells
    work done on the loop apart from a busy machine (tests assert on it).
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.worst = 0.0
        self.worst_cpu = 0.0

    async def run(self) -> None:
        while True:
            before, before_cpu = time.perf_counter(), time.thread_time()
            await anyio.sleep(self.interval)
            self.worst_cpu = max(self.worst_cpu, time.thread_time() - before_cpu)
            self.worst = max(self.worst, time.perf_counter() - before - self.interval)


@dataclass(kw_only=True, slots=True)
class DriveResult:
    """What the load generator observed."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    duration: float = 0.0
    latencies: list[float] = field(default_factory=list)
    """Seconds from a rollout's start to its end (completed ones)."""
    queue_waits: list[float] = field(default_factory=list)
    """Seconds from arrival to start (waiting for a concurrency slot)."""
    completion_times: list[float] = field(default_factory=list)
    first_latency: float = 0.0
    cpu_seconds: float = 0.0
    loop_lag_max: float = 0.0
    peak_in_flight: int = 0
    terminations: dict[str, int] = field(default_factory=dict)


async def drive(
    rollout: RolloutFn,
    *,
    num_rollouts: int,
    concurrency: int,
    request_rate: float = math.inf,
    seed: int = 0,
    stop_after: float | None = None,
    progress: StageProgress | None = None,
) -> DriveResult:
    """Run ``num_rollouts`` rollouts through ``rollout``.

    Args:
        rollout: the rollout function under test.
        num_rollouts: how many to start.
        concurrency: the most in flight at once (arrivals beyond it queue).
        request_rate: Poisson arrivals per second; ``inf`` starts all at once.
        seed: seeds the inter-arrival times.
        stop_after: stop admitting new rollouts after this many seconds.
        progress: counters to keep up to date for a live display.
    """
    result = DriveResult()
    slots = anyio.Semaphore(max(1, concurrency))
    rng = random.Random(seed)
    probe = LoopLagProbe()
    in_flight = 0
    start = time.perf_counter()
    cpu_start = cpu_seconds()

    async def one(index: int, arrived: float) -> None:
        nonlocal in_flight
        began = time.perf_counter()
        result.queue_waits.append(began - arrived)
        in_flight += 1
        result.peak_in_flight = max(result.peak_in_flight, in_flight)
        if progress is not None:
            progress.in_flight = in_flight
        try:
            termination = await rollout(index)
        except Exception as exc:  # a runner bug must not hide the others' figures
            termination = f"exception:{type(exc).__name__}"
        finally:
            in_flight -= 1
            slots.release()
        done = time.perf_counter()
        result.terminations[termination] = result.terminations.get(termination, 0) + 1
        if termination == "answer":
            result.completed += 1
            result.latencies.append(done - began)
            result.completion_times.append(done - start)
            if result.completed == 1:
                result.first_latency = done - began
        else:
            result.failed += 1
        if progress is not None:
            progress.in_flight = in_flight
            progress.finish(termination == "answer", done - began)

    poisson = math.isfinite(request_rate) and request_rate > 0
    next_arrival = start
    async with anyio.create_task_group() as outer:
        outer.start_soon(probe.run)
        async with anyio.create_task_group() as tg:
            for index in range(num_rollouts):
                if poisson:
                    # Arrival times are fixed in advance: a late wake-up of the
                    # loop must not lower the offered rate, only delay starts.
                    next_arrival += rng.expovariate(request_rate)
                    await anyio.sleep(max(0.0, next_arrival - time.perf_counter()))
                if stop_after is not None and time.perf_counter() - start > stop_after:
                    break
                arrived = next_arrival if poisson else time.perf_counter()
                await slots.acquire()
                result.started += 1
                tg.start_soon(one, index, arrived)
        outer.cancel_scope.cancel()
    result.duration = time.perf_counter() - start
    result.cpu_seconds = cpu_seconds() - cpu_start
    result.loop_lag_max = probe.worst
    return result
