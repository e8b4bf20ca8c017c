from __future__ import annotations

import anyio
import pytest

from genevolve_async import EndpointPool
from genevolve_async._endpoints import Endpoint


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_least_loaded_with_round_robin_ties() -> None:
    pool = EndpointPool(["a", "b", "c"])
    chosen = []
    for _ in range(6):
        async with pool.lease() as endpoint:
            chosen.append(endpoint.url)
    assert sorted(chosen) == ["a", "a", "b", "b", "c", "c"]


async def test_capacity_is_never_exceeded_and_waiters_are_served() -> None:
    pool = EndpointPool(["a", "b"], capacity=[1, 2])
    peaks: dict[str, int] = {"a": 0, "b": 0}

    async def use() -> None:
        async with pool.lease() as endpoint:
            peaks[endpoint.url] = max(peaks[endpoint.url], endpoint.in_flight)
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(use)
    assert peaks == {"a": 1, "b": 2}
    assert all(e.in_flight == 0 for e in pool.endpoints)


async def test_sticky_preference_and_avoid() -> None:
    pool = EndpointPool(["a", "b"])
    b = pool.endpoints[1]
    async with pool.lease(b) as endpoint:
        assert endpoint is b
    async with pool.lease(b, avoid=b) as endpoint:
        assert endpoint.url == "a"


async def test_quarantine_then_probe_before_return() -> None:
    clock = Clock()
    probes: list[str] = []
    healthy = {"a": True, "b": False}

    async def probe(endpoint: Endpoint) -> bool:
        probes.append(endpoint.url)
        return healthy[endpoint.url]

    pool = EndpointPool(["a", "b"], quarantine_after=2, cooldown=10, probe=probe, clock=clock)
    a, b = pool.endpoints
    pool.report(b, ok=False)
    assert b.quarantined_until is None
    pool.report(b, ok=False)
    assert b.quarantined_until == 110.0
    for _ in range(3):
        async with pool.lease() as endpoint:
            assert endpoint is a
    clock.now = 111.0
    async with pool.lease() as endpoint:  # probe fails: stays out, cool-down restarts
        assert endpoint is a
    assert probes == ["b"] and b.quarantined_until == 121.0
    healthy["b"] = True
    clock.now = 122.0
    async with pool.lease(b) as endpoint:
        assert endpoint is b
    assert probes == ["b", "b"] and b.quarantined_until is None
    pool.report(b, ok=False)  # one strike after a return sends it back
    assert b.quarantined_until is not None


async def test_with_every_endpoint_quarantined_requests_still_go_out() -> None:
    """Panic mode: with nowhere else to go, refusing would only turn a flaky
    service into failed requests (the retries burn out during the cool-down)."""
    pool = EndpointPool(["a", "b"], quarantine_after=1, cooldown=60)
    a, b = pool.endpoints
    pool.report(a, ok=False)
    pool.report(b, ok=False)
    assert not pool.healthy()
    async with pool.lease(avoid=a) as endpoint:
        assert endpoint is b  # a retry still avoids the endpoint that just failed
    async with pool.lease() as endpoint:
        assert endpoint.quarantined_until is not None  # still out until its probe passes
    pool.report(a, ok=False)  # a keeps failing (dead?): b, failing less, gets the traffic
    for _ in range(3):
        async with pool.lease(a) as endpoint:
            assert endpoint is b


async def test_release_on_cancellation() -> None:
    pool = EndpointPool(["a"], capacity=1)
    with anyio.move_on_after(0.01):
        async with pool.lease():
            await anyio.sleep_forever()
    assert pool.endpoints[0].in_flight == 0


def test_bad_configuration() -> None:
    with pytest.raises(ValueError):
        EndpointPool([])
    with pytest.raises(ValueError):
        EndpointPool(["a"], capacity=[1, 2])


async def test_a_quarantine_from_elsewhere_takes_the_url_out_without_echoing_it() -> None:
    clock = [0.0]
    pool = EndpointPool(["http://a", "http://b"], cooldown=30.0, clock=lambda: clock[0])
    told: list[tuple[str, float]] = []
    pool.on_quarantine = lambda endpoint, seconds: told.append((endpoint.url, seconds))
    pool.quarantine_url("http://a", 5.0)  # another worker decided it
    assert [e.url for e in pool.healthy()] == ["http://b"]
    assert told == []  # not reported back to where it came from
    b = pool.endpoints[1]
    for _ in range(pool.quarantine_after):
        pool.report(b, ok=False)
    assert told == [("http://b", 30.0)]  # our own decision is told to the others
    clock[0] = 6.0
    async with pool.lease() as endpoint:
        assert endpoint.url == "http://a"  # its quarantine ran out here too
