from __future__ import annotations

import anyio
import pytest

from genevolve_async import ProviderLimiter, ProviderLimits
from genevolve_async._limits import max_in_window


def test_max_in_window_is_half_open() -> None:
    assert max_in_window([0.0, 0.5, 1.0, 1.5]) == 2
    assert max_in_window([0.0, 0.2, 0.4, 0.99]) == 4
    assert max_in_window([]) == 0


async def test_rate_is_burst_free() -> None:
    # 50/s for 120 grants: a plain AsyncLimiter(50, 1) would admit ~99 in the first second.
    limiter = ProviderLimiter("p", ProviderLimits(rate=50), record_grants=True)

    async def one() -> None:
        async with limiter.slot():
            pass

    async with anyio.create_task_group() as tg:
        for _ in range(120):
            tg.start_soon(one)
    assert limiter.grant_times is not None
    assert len(limiter.grant_times) == 120
    assert max_in_window(limiter.grant_times) <= 50
    assert limiter.stats.waits > 100


async def test_in_flight_cap_holds_and_releases_on_cancel() -> None:
    limiter = ProviderLimiter("p", ProviderLimits(max_in_flight=3))
    peak = 0

    async def one() -> None:
        nonlocal peak
        async with limiter.slot():
            peak = max(peak, limiter.in_flight)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(one)
    assert peak == 3 == limiter.stats.peak_in_flight

    async def hold_forever() -> None:
        async with limiter.slot():
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(hold_forever)
        await anyio.sleep(0.01)
        assert limiter.in_flight == 3
        tg.cancel_scope.cancel()
    assert limiter.in_flight == 0
    with anyio.fail_after(10):  # a hang detector: a leaked slot would wait for ever
        async with limiter.slot():
            pass


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        ProviderLimiter("x", ProviderLimits(rate=0))
    with pytest.raises(ValueError):
        ProviderLimiter("x", ProviderLimits(max_in_flight=0))
    assert ProviderLimits.per_minute(120).rate == 2.0


async def test_try_acquire_admits_only_without_waiting() -> None:
    free = ProviderLimiter("free")
    assert free.try_acquire() and free.try_acquire()
    assert free.in_flight == 2
    capped = ProviderLimiter("capped", ProviderLimits(max_in_flight=1))
    assert capped.try_acquire()
    assert not capped.try_acquire()  # the one slot is taken
    assert capped.in_flight == 1
    capped.release()
    assert capped.try_acquire() and capped.stats.grants == 2
    # A rate's grants are awaited: the waiting path, always.
    assert not ProviderLimiter("rated", ProviderLimits(rate=100)).try_acquire()
