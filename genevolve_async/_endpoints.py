"""A pool of interchangeable endpoints: vLLM replicas, Qwen services.

Choice is least-loaded (in flight divided by the endpoint's capacity, ties
broken round-robin), optionally sticky (a rollout keeps its vLLM replica so
the prefix cache hits), and capacity-capped per endpoint. An endpoint that
fails ``quarantine_after`` times in a row is taken out for ``cooldown``
seconds, then probed (``GET /health`` or whatever ``probe`` does) before it
takes traffic again. When every endpoint is out, requests go to them anyway
(they fail fast if the endpoints are dead, and mostly succeed if they are
only flaky). There is no background task: the caller that finds an expired
quarantine runs the probe inline.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

__all__ = ["Endpoint", "EndpointPool", "EndpointStats"]

Probe = Callable[["Endpoint"], Awaitable[bool]]
QuarantineHook = Callable[["Endpoint", float], None]
"""Told of each quarantine this pool decides (the endpoint, its seconds out)."""


@dataclass(kw_only=True, slots=True)
class EndpointStats:
    """Counters for one endpoint."""

    requests: int = 0
    failures: int = 0
    peak_in_flight: int = 0
    quarantines: int = 0


@dataclass(kw_only=True, slots=True, eq=False)
class Endpoint:
    """One endpoint's state. Identity-compared; ``url`` is its address."""

    url: str
    capacity: int | None = None
    """Requests in flight allowed at once (``None``: unlimited)."""
    in_flight: int = 0
    consecutive_failures: int = 0
    quarantined_until: float | None = None
    probing: bool = False
    stats: EndpointStats

    @property
    def load(self) -> float:
        return self.in_flight / self.capacity if self.capacity else float(self.in_flight)

    def has_room(self) -> bool:
        return self.capacity is None or self.in_flight < self.capacity


class EndpointPool:
    """Least-loaded, sticky, capacity-capped choice among endpoints."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        name: str = "endpoints",
        capacity: int | Sequence[int | None] | None = None,
        quarantine_after: int = 3,
        cooldown: float = 30.0,
        probe: Probe | None = None,
        probe_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError(f"{name}: at least one endpoint URL is required")
        caps: list[int | None]
        if capacity is None or isinstance(capacity, int):
            caps = [capacity] * len(urls)
        else:
            caps = list(capacity)
            if len(caps) != len(urls):
                raise ValueError(f"{name}: {len(urls)} URLs but {len(caps)} capacities")
        self.name = name
        self.endpoints = [
            Endpoint(url=u, capacity=c, stats=EndpointStats())
            for u, c in zip(urls, caps, strict=True)
        ]
        self.quarantine_after = quarantine_after
        self.cooldown = cooldown
        self.probe = probe
        self.probe_timeout = probe_timeout
        self._clock = clock
        self._tiebreak = itertools.count()
        self._room = anyio.Event()
        self._waiting = 0
        self.on_quarantine: QuarantineHook | None = None
        """Called when this pool quarantines an endpoint (a cluster worker tells the others)."""

    def set_capacity(self, endpoint: Endpoint, capacity: int | None) -> None:
        """Change an endpoint's cap (e.g. from the GPU count its health reports)."""
        endpoint.capacity = capacity
        self._wake()

    @asynccontextmanager
    async def lease(
        self, prefer: Endpoint | None = None, *, avoid: Endpoint | None = None
    ) -> AsyncIterator[Endpoint]:
        """Hold one request slot on an endpoint for the block's duration.

        Args:
            prefer: the endpoint to stick to when it is healthy and has room.
            avoid: an endpoint to skip when any other is usable (a retry
                after a failure there).
        """
        endpoint = await self._acquire(prefer, avoid)
        try:
            yield endpoint
        finally:
            endpoint.in_flight -= 1
            self._wake()

    def report(self, endpoint: Endpoint, *, ok: bool) -> None:
        """Record the outcome of a request; repeated failures quarantine."""
        if ok:
            endpoint.consecutive_failures = 0
            return
        endpoint.stats.failures += 1
        endpoint.consecutive_failures += 1
        if (
            endpoint.consecutive_failures >= self.quarantine_after
            and endpoint.quarantined_until is None
        ):
            self._quarantine(endpoint)

    def quarantine_url(self, url: str, seconds: float) -> None:
        """Take ``url`` out for ``seconds``: another process's pool found it failing.

        The hook is not called: the quarantine is already known where it came from.
        """
        for endpoint in self.endpoints:
            if endpoint.url == url and endpoint.quarantined_until is None:
                endpoint.quarantined_until = self._clock() + seconds
                endpoint.stats.quarantines += 1
                self._wake()

    def healthy(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.quarantined_until is None]

    def _least_failing(self) -> list[Endpoint]:
        fewest = min(e.consecutive_failures for e in self.endpoints)
        return [e for e in self.endpoints if e.consecutive_failures == fewest]

    def _quarantine(self, endpoint: Endpoint) -> None:
        endpoint.quarantined_until = self._clock() + self.cooldown
        endpoint.stats.quarantines += 1
        self._wake()
        if self.on_quarantine is not None:
            self.on_quarantine(endpoint, self.cooldown)

    def _restore(self, endpoint: Endpoint) -> None:
        endpoint.quarantined_until = None
        # One more failure sends it straight back: it has not earned trust yet.
        endpoint.consecutive_failures = max(0, self.quarantine_after - 1)
        self._wake()

    def _wake(self) -> None:
        if self._waiting:  # a fresh Event per release costs, and mostly nobody waits
            self._room.set()
            self._room = anyio.Event()

    async def _acquire(self, prefer: Endpoint | None, avoid: Endpoint | None) -> Endpoint:
        while True:
            await self._revive_expired()
            # With every endpoint out, refusing gains nothing (there is nowhere else
            # to go) and turns a flaky service into failed requests: the retries
            # burn out during the cool-down. Use them anyway ("panic mode"), the
            # least failing first: a flaky endpoint mostly answers, a dead one
            # keeps failing and keeps its retries away.
            candidates = self.healthy() or self._least_failing()
            chosen = self._choose(candidates, prefer, avoid)
            if chosen is not None:
                chosen.in_flight += 1
                chosen.stats.requests += 1
                if chosen.in_flight > chosen.stats.peak_in_flight:
                    chosen.stats.peak_in_flight = chosen.in_flight
                return chosen
            room = self._room
            # Wake on released capacity, or when a quarantine may expire.
            self._waiting += 1
            try:
                with anyio.move_on_after(self._next_expiry_in()):
                    await room.wait()
            finally:
                self._waiting -= 1

    def _choose(
        self, healthy: list[Endpoint], prefer: Endpoint | None, avoid: Endpoint | None
    ) -> Endpoint | None:
        if prefer is not None and prefer in healthy and prefer.has_room() and prefer is not avoid:
            return prefer
        open_ = [e for e in healthy if e.has_room()]
        if avoid is not None and len(open_) > 1:
            open_ = [e for e in open_ if e is not avoid] or open_
        if not open_:
            return None
        if len(open_) == 1:
            return open_[0]
        lowest = min(e.load for e in open_)
        ties = [e for e in open_ if e.load == lowest]
        return ties[next(self._tiebreak) % len(ties)]

    def _next_expiry_in(self) -> float:
        pending = [e.quarantined_until for e in self.endpoints if e.quarantined_until is not None]
        if not pending:
            return float("inf")
        return max(0.01, min(pending) - self._clock())

    async def _revive_expired(self) -> None:
        now = self._clock()
        for endpoint in self.endpoints:
            until = endpoint.quarantined_until
            if until is None or until > now or endpoint.probing:
                continue
            if self.probe is None:
                self._restore(endpoint)
                continue
            endpoint.probing = True
            try:
                ok = False
                with anyio.move_on_after(self.probe_timeout):
                    ok = await self.probe(endpoint)
            except Exception:
                ok = False
            finally:
                endpoint.probing = False
            if ok:
                self._restore(endpoint)
            else:
                endpoint.quarantined_until = self._clock() + self.cooldown
