"""The cluster's rate schedule and leased gates, without Ray: the service is called directly."""

from __future__ import annotations

import random
import subprocess
import sys

import anyio
import pytest

from genevolve_async import ProviderLimits, Runtime, RuntimeConfig
from genevolve_async._limits import max_in_window
from genevolve_async.cluster import Lease, LeasedRateGate, LimiterService
from genevolve_async.cluster._limiter import gate_factory

from .conftest import ROOT


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_leases_are_spaced_and_reach_no_further_than_the_horizon() -> None:
    clock = FakeClock()
    service = LimiterService(slack=0.05, horizon=0.25, max_batch=32, clock=clock)
    first = service.lease_now("serper", 20.0, want=100)
    spacing = 1.05 * 1.000001 / 20.0  # (1 + slack) / rate, and a hair for float rounding
    assert first.slack == 0.05
    assert len(first.delays) == 5  # slots at 0, s, 2s, 3s, 4s fit in 0.25 s
    gaps = [b - a for a, b in zip(first.delays, first.delays[1:], strict=False)]
    assert all(g == pytest.approx(spacing, rel=1e-9) and g > 1.05 / 20.0 for g in gaps)
    second = service.lease_now("serper", 20.0, want=2)  # another worker, same instant
    # Queued behind the first lease: no two slots overlap.
    assert second.delays == pytest.approx((5 * spacing, 6 * spacing), rel=1e-9)
    clock.now += 10.0
    late = service.lease_now("serper", 20.0, want=1)
    assert late.delays == (0.0,)  # an idle budget is not saved up into a burst
    with pytest.raises(ValueError, match="one rate"):
        service.lease_now("serper", 40.0, want=1)


def test_a_slow_rate_still_leases_one_grant_at_a_time() -> None:
    service = LimiterService(horizon=0.25, clock=FakeClock())
    lease = service.lease_now("judge", 0.5, want=8)
    assert len(lease.delays) == 1


async def test_gates_in_several_workers_never_exceed_the_rate_and_use_the_budget() -> None:
    """Three gates share one service over a jittery link; grants hold any 1 s window to the rate."""
    service = LimiterService()
    rng = random.Random(7)

    async def link(provider: str, rate: float, want: int) -> Lease:
        await anyio.sleep(rng.uniform(0, 0.004))  # the request's way there
        lease = service.lease_now(provider, rate, want)
        await anyio.sleep(rng.uniform(0, 0.004))  # and back
        return lease

    rate, seconds = 40.0, 2.5
    gates = [LeasedRateGate(link, "serper", rate) for _ in range(3)]
    times: list[float] = []

    async def caller(gate: LeasedRateGate) -> None:
        while True:
            await gate.acquire()
            times.append(anyio.current_time())

    with anyio.move_on_after(seconds):
        async with anyio.create_task_group() as tg:
            for gate in gates:
                for _ in range(10):
                    tg.start_soon(caller, gate)
    assert max_in_window(times) <= rate
    assert all(g.stats.used > 0 for g in gates)
    # The schedule's own ceiling is 1/(1+slack) of the rate; a loaded machine expires a few.
    assert len(times) >= 0.7 * rate * seconds, len(times)
    leases = sum(g.stats.leases for g in gates)
    assert leases < len(times)  # grants come in batches, not one round trip each


async def test_a_runtime_with_gates_takes_its_rate_from_them() -> None:
    service = LimiterService()

    async def direct(provider: str, rate: float, want: int) -> Lease:
        return service.lease_now(provider, rate, want)

    config = RuntimeConfig(
        limits={"serper": ProviderLimits(rate=50.0), "policy": ProviderLimits(max_in_flight=4)},
        rate_gates=gate_factory(direct),
    )
    async with Runtime(config) as runtime:
        serper, policy = runtime.limiter("serper"), runtime.limiter("policy")
        assert isinstance(serper.gate, LeasedRateGate)
        assert policy.gate is None  # no rate: nothing to lease
        for _ in range(3):
            async with serper.slot():
                pass
    assert (await service.stats())["serper"]["granted"] >= 3


async def test_quarantines_reach_every_worker_until_they_expire() -> None:
    clock = FakeClock()
    service = LimiterService(clock=clock)
    await service.report_quarantine("policy", "http://a/v1", 30.0)
    seen, fresh = await service.quarantines(0)
    assert seen == 1 and fresh == [("policy", "http://a/v1", 30.0)]
    assert (await service.quarantines(seen))[1] == []
    clock.now += 31
    assert (await service.quarantines(0))[1] == []  # expired ones are not passed on


def test_importing_the_cluster_package_leaves_ray_unimported() -> None:
    code = "import sys, genevolve_async.cluster, genevolve_async; print('ray' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
