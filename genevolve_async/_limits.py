"""Per-provider limits: a burst-free token bucket plus an in-flight cap.

``aiolimiter.AsyncLimiter(10, 1)`` starts with a full bucket and admits 19
requests in its first second. Providers count requests per sliding second, so
we configure the bucket with a capacity of one: grants are then spaced at
least ``1 / rate`` apart and no 1-second window ever holds more than ``rate``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
from aiolimiter import AsyncLimiter

from .telemetry import note_limiter_wait

__all__ = [
    "LimiterStats",
    "ProviderLimiter",
    "ProviderLimits",
    "RateGate",
    "RateGateFactory",
    "max_in_window",
]

# Float rounding in the bucket's leak arithmetic may admit a grant a few
# nanoseconds early; spacing grants by a hair more than 1/rate keeps the
# window bound exact at a cost of one part per million of throughput.
_SAFETY = 1.000001


@dataclass(kw_only=True, slots=True, frozen=True)
class ProviderLimits:
    """Limits for one provider (``serper``, ``policy``, ``judge``, ...)."""

    rate: float | None = None
    """Requests per second, burst-free. ``None`` means unlimited."""
    max_in_flight: int | None = None
    """Requests under way at once. ``None`` means unlimited."""

    @classmethod
    def per_minute(cls, rpm: float, *, max_in_flight: int | None = None) -> ProviderLimits:
        """Limits from a requests-per-minute budget."""
        return cls(rate=rpm / 60.0, max_in_flight=max_in_flight)


class RateGate(Protocol):
    """Where a limiter's rate grants come from: one ``await acquire()`` per request.

    The default is a local burst-free bucket; a cluster plugs in a gate that
    leases grants from a shared service (:mod:`genevolve_async.cluster`), so
    the rate holds over every process together.
    """

    async def acquire(self) -> None:
        """Wait for one grant."""
        ...


RateGateFactory = Callable[[str, "ProviderLimits"], RateGate]
"""Makes the rate gate of a provider (its name and limits); see ``RuntimeConfig.rate_gates``."""


@dataclass(kw_only=True, slots=True)
class LimiterStats:
    """What a limiter saw; read by the bench and by tests."""

    grants: int = 0
    """Requests admitted."""
    waits: int = 0
    """Admissions that had to wait more than a millisecond."""
    wait_seconds: float = 0.0
    """Total time spent waiting for admission."""
    peak_in_flight: int = 0
    """Most requests under way at once."""


class ProviderLimiter:
    """Admits a provider's requests within its rate and concurrency limits.

    Use ``async with limiter.slot():`` around one HTTP attempt. The in-flight
    slot is taken first so that a request never holds a rate token while
    queueing for concurrency.
    """

    def __init__(
        self,
        name: str,
        limits: ProviderLimits | None = None,
        *,
        record_grants: bool = False,
        gate: RateGate | None = None,
    ) -> None:
        limits = limits or ProviderLimits()
        if limits.rate is not None and limits.rate <= 0:
            raise ValueError(f"limiter {name!r}: rate must be positive")
        if limits.max_in_flight is not None and limits.max_in_flight < 1:
            raise ValueError(f"limiter {name!r}: max_in_flight must be at least 1")
        self.name = name
        self.limits = limits
        self.stats = LimiterStats()
        self._bucket: RateGate | None = None
        if limits.rate is not None:
            self._bucket = gate if gate is not None else AsyncLimiter(1, _SAFETY / limits.rate)
        self._slots = (
            anyio.Semaphore(limits.max_in_flight, fast_acquire=True)
            if limits.max_in_flight is not None
            else None
        )
        self._in_flight = 0
        self.grant_times: deque[float] | None = deque(maxlen=1_000_000) if record_grants else None
        """Monotonic timestamps of grants, when recording is on. For a rate they are
        the bucket's own reading of the event loop's clock when it granted, so that
        a pause of this process (a busy machine, a garbage collection) between the
        grant and its recording cannot make the record look bunched."""

    @property
    def gate(self) -> RateGate | None:
        """Where rate grants come from (``None`` without a rate)."""
        return self._bucket

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def slot(self) -> _Slot:
        """``async with limiter.slot():`` holds one admission for the block."""
        return _Slot(self)

    async def acquire(self) -> float:
        """Take one admission (waiting as the limits say); pair with :meth:`release`.

        Returns:
            The seconds it waited (0.0 when nothing limits the provider).
        """
        if self._bucket is None and self._slots is None:
            self._admit_now()
            return 0.0
        start = time.monotonic()
        if self._slots is not None:
            await self._slots.acquire()
        try:
            if self._bucket is not None:
                await self._bucket.acquire()
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        now = time.monotonic()
        # aiolimiter's bucket decided at the loop time of its last leak (kept in
        # _last_check); record that, not the later moment this line ran. Other
        # gates (the cluster's leased grants) have no such field: use now.
        granted = getattr(self._bucket, "_last_check", None) or now
        self._admit(granted, now - start)
        return now - start

    def try_acquire(self) -> bool:
        """Take one admission if that needs no waiting; ``False`` otherwise.

        A provider with a rate always answers ``False``: a token bucket's
        grant is awaited, so its callers take the waiting path.
        """
        if self._bucket is not None:
            return False
        if self._slots is not None:
            try:
                self._slots.acquire_nowait()
            except anyio.WouldBlock:
                return False
        self._admit_now()
        return True

    def release(self) -> None:
        """Give back an admission taken with :meth:`acquire`."""
        self._in_flight -= 1
        if self._slots is not None:
            self._slots.release()

    def _admit_now(self) -> None:
        """Admit without having waited (the clock is read only when grants are recorded)."""
        self._admit(time.monotonic() if self.grant_times is not None else 0.0, 0.0)

    def _admit(self, now: float, waited: float) -> None:
        stats = self.stats
        stats.grants += 1
        if waited > 0.001:
            stats.waits += 1
            stats.wait_seconds += waited
            note_limiter_wait(waited)  # on the provider call's span
        self._in_flight += 1
        if self._in_flight > stats.peak_in_flight:
            stats.peak_in_flight = self._in_flight
        if self.grant_times is not None:
            self.grant_times.append(now)


def max_in_window(times: list[float] | deque[float], window: float = 1.0) -> int:
    """Most timestamps inside any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best = 0
    lo = 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class _Slot:
    """One admission as an async context manager (a class: cheaper than a generator)."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: ProviderLimiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        await self._limiter.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter.release()
