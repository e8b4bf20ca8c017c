"""Provider rates over a whole cluster: one scheduling service, grants leased in batches.

The service (a Ray async actor, plain class here) keeps one schedule per
provider: grant slots ``spacing`` apart on its own monotonic clock. A worker
asks for up to ``want`` grants and gets the delays of its slots from "now"
on the service's clock. It cannot know exactly when that "now" was on its
own clock, only that it lay between sending the request (``S``) and getting
the answer (``R``). So grant ``i`` (delay ``d``) may be used only inside
``[R + d, S + d + slack]``: whatever the true offset, that maps into
``[slot, slot + slack]`` on the service's clock. Grants past their interval
(the worker was late) expire unused.

Why no window ever holds more than ``rate``: a grant used in a window
``[x, x + 1)`` has its slot in ``[x - slack, x + 1)``, a span of
``1 + slack``; slots are spaced by more than ``(1 + slack) / rate``, so at
most ``rate`` of them fit. The price is the budget fraction
``1 / (1 + slack)``: 95% at the default 50 ms. No shared clock is needed,
only clocks that tick at the same rate.

A lease holds ``horizon`` seconds of slots from the schedule's next free
one (at least one, at most ``max_batch``, no more than the worker wants),
and a worker asks again only once it has handed them all out and its last
slot is within ``horizon`` of now: no worker holds much more than a horizon
of the budget while others wait, nobody polls, and one round trip (about
1-2 ms) buys up to ``max_batch`` grants.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from .._errors import ConfigurationError
from .._limits import ProviderLimits, RateGate

__all__ = ["Lease", "LeasedRateGate", "LimiterService"]

_SAFETY = 1.000001  # float rounding must never squeeze two slots closer than the bound


@dataclass(kw_only=True, slots=True, frozen=True)
class Lease:
    """Grants handed to one worker."""

    delays: tuple[float, ...] = ()
    """Each grant's slot, in seconds from the service's "now"."""
    slack: float = 0.0
    """How long after its slot a grant may still be used."""
    horizon: float = 0.0
    """The worker asks again only once its last slot is this close."""


@dataclass(kw_only=True, slots=True)
class _Schedule:
    rate: float
    spacing: float
    next_slot: float = 0.0
    granted: int = 0
    leases: int = 0


class LimiterService:
    """The cluster's rate schedules (run as a Ray async actor; see :func:`limiter_actor`).

    Args:
        slack: Seconds a grant stays usable after its slot (covers the lease's
            round trip and the worker's loop lag); the budget used is
            ``1 / (1 + slack)`` of the rate.
        horizon: How far ahead of now one lease may reach.
        max_batch: Most grants in one lease.
    """

    def __init__(
        self,
        *,
        slack: float = 0.05,
        horizon: float = 0.25,
        max_batch: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slack = slack
        self.horizon = horizon
        self.max_batch = max_batch
        self._clock = clock
        self._schedules: dict[str, _Schedule] = {}
        self._quarantines: list[tuple[str, str, float]] = []

    async def lease(self, provider: str, rate: float, want: int) -> Lease:
        """Up to ``want`` grants of ``provider`` at ``rate`` per second."""
        return self.lease_now(provider, rate, want)

    def lease_now(self, provider: str, rate: float, want: int) -> Lease:
        schedule = self._schedules.get(provider)
        if schedule is None:
            spacing = (1.0 + self.slack) * _SAFETY / rate
            schedule = self._schedules[provider] = _Schedule(rate=rate, spacing=spacing)
        elif schedule.rate != rate:
            raise ValueError(
                f"{provider}: this limiter service runs it at {schedule.rate}/s, not {rate}/s; "
                "every process must share one rate"
            )
        now = self._clock()
        start = max(now, schedule.next_slot)
        room = math.floor(self.horizon / schedule.spacing) + 1
        count = max(1, min(want, self.max_batch, room))
        schedule.next_slot = start + count * schedule.spacing
        schedule.granted += count
        schedule.leases += 1
        base = start - now
        return Lease(
            delays=tuple(base + i * schedule.spacing for i in range(count)),
            slack=self.slack,
            horizon=self.horizon,
        )

    async def report_quarantine(self, provider: str, url: str, seconds: float) -> None:
        """A worker quarantined ``url``; the others pick it up from :meth:`quarantines`."""
        self._quarantines.append((provider, url, self._clock() + seconds))

    async def quarantines(self, since: int) -> tuple[int, list[tuple[str, str, float]]]:
        """Quarantines reported after the first ``since``, with their seconds left."""
        now = self._clock()
        fresh = [(p, u, until - now) for p, u, until in self._quarantines[since:] if until > now]
        return len(self._quarantines), fresh

    async def cpu_seconds(self) -> float:
        """This process's CPU time (the bench's coordinator share)."""
        return time.process_time()

    async def stats(self) -> dict[str, dict[str, Any]]:
        """Grants and leases per provider."""
        return {
            name: {"rate": s.rate, "granted": s.granted, "leases": s.leases}
            for name, s in self._schedules.items()
        }


@dataclass(kw_only=True, slots=True)
class GateStats:
    """What one worker's gate did."""

    used: int = 0
    expired: int = 0
    leases: int = 0
    lease_seconds: float = 0.0
    """Time spent waiting on lease round trips (the limiter's overhead)."""


class LeasedRateGate(RateGate):
    """A worker's rate gate: grants leased from the cluster's :class:`LimiterService`.

    Args:
        lease: Calls the service (``await actor.lease.remote(...)``, or a
            direct call in tests).
        provider: The provider's name.
        rate: Its cluster-wide rate.
    """

    def __init__(
        self,
        lease: Callable[[str, float, int], Any],
        provider: str,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lease = lease
        self.provider = provider
        self.rate = rate
        self.stats = GateStats()
        self._clock = clock
        self._slots: deque[tuple[float, float]] = deque()
        self._wanting = 0
        self._refilling = False
        self._arrived = anyio.Event()
        self._last_slot = 0.0
        self._horizon = 0.0

    async def acquire(self) -> None:
        while True:
            lo, hi = await self._next_slot()
            now = self._clock()
            if lo > now:
                await anyio.sleep(lo - now)
                now = self._clock()
            if now <= hi:
                self.stats.used += 1
                return
            self.stats.expired += 1  # late (loop lag): this grant's interval has passed

    async def _next_slot(self) -> tuple[float, float]:
        self._wanting += 1
        try:
            while not self._slots:
                await self._refill_or_wait()
            return self._slots.popleft()
        finally:
            self._wanting -= 1

    async def _refill_or_wait(self) -> None:
        if self._refilling:
            arrived = self._arrived
            await arrived.wait()
            return
        self._refilling = True
        try:
            await self._refill()
        finally:
            self._refilling = False
            self._arrived.set()
            self._arrived = anyio.Event()

    async def _refill(self) -> None:
        # Hold at most about one horizon of the budget ahead: the rest is for others.
        ahead = self._last_slot - self._clock() - self._horizon
        if ahead > 0:
            await anyio.sleep(ahead)
        sent = self._clock()
        lease: Lease = await self._lease(self.provider, self.rate, max(1, self._wanting))
        received = self._clock()
        self.stats.leases += 1
        self.stats.lease_seconds += received - sent
        self._horizon = lease.horizon
        if lease.delays:
            self._last_slot = received + lease.delays[-1]
        for delay in lease.delays:
            lo, hi = received + delay, sent + delay + lease.slack
            if lo <= hi:
                self._slots.append((lo, hi))
            else:
                self.stats.expired += 1  # the round trip outlasted the slack


def gate_factory(
    lease: Callable[[str, float, int], Any],
) -> Callable[[str, ProviderLimits], RateGate]:
    """A ``RuntimeConfig.rate_gates`` factory leasing from one service."""

    def make(provider: str, limits: ProviderLimits) -> RateGate:
        if limits.rate is None:
            raise ConfigurationError(f"{provider}: a leased gate needs a rate")
        return LeasedRateGate(lease, provider, limits.rate)

    return make
