"""The Runtime: every process-wide resource, opened and closed together.

One ``Runtime`` owns the one aiohttp session every request rides (see
:mod:`._session`), the per-provider limiters, the retry policy, the endpoint
pools and anything else registered with it (SDK clients, the image cache). Many agents, web
requests and batch stages share one; an agent made without one creates its
own. Like httpx's clients it can be opened once: reopening is an error.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import anyio

from ._endpoints import EndpointPool, Probe
from ._errors import ConfigurationError, RuntimeClosedError
from ._limits import ProviderLimiter, ProviderLimits, RateGateFactory
from ._retry import RetryPolicy
from ._session import open_session
from .telemetry import note_retry, runtime_closed, runtime_opened

__all__ = ["Runtime", "RuntimeConfig", "RuntimeStats"]

logger = logging.getLogger("genevolve_async.runtime")

T = TypeVar("T")


class _State(enum.Enum):
    UNOPENED = 1
    OPEN = 2
    CLOSED = 3


@dataclass(kw_only=True, slots=True)
class RuntimeConfig:
    """Settings of a :class:`Runtime`; every field has a working default."""

    max_connections: int = 0
    """Cap on connections in use, all hosts together; 0: none. A cap queues
    requests above it: at thousands of rollouts in flight the process's
    file-descriptor limit is the cap that matters. A warning is logged once
    when requests start to queue behind a cap."""
    max_connections_per_host: int = 0
    """Cap on connections in use per host (0: none); set one for a server
    that cannot take more (a small self-hosted gateway)."""
    keepalive_timeout: float = 75.0
    """Seconds an idle connection is kept for reuse (avoids churn under bursts)."""
    connect_timeout: float = 30.0
    """Seconds to open a TCP connection."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """The retry policy every client uses."""
    limits: Mapping[str, ProviderLimits] = field(default_factory=dict)
    """Per-provider limits, by provider name (``policy``, ``serper``, ...)."""
    record_grants: bool = False
    """Keep each limiter's grant timestamps (bench and tests)."""
    rate_gates: RateGateFactory | None = None
    """Where rate grants come from for providers with a rate (``None``: a local
    bucket). A cluster worker's runtime leases them from the cluster's limiter."""


@dataclass(kw_only=True, slots=True)
class RuntimeStats:
    """Counters the clients update and the bench reads."""

    retries: Counter[str] = field(default_factory=Counter)
    """Retries by provider."""
    rate_limited: Counter[str] = field(default_factory=Counter)
    """429 answers by provider."""
    failures: Counter[str] = field(default_factory=Counter)
    """Calls that failed for good, by provider."""


class Runtime:
    """Shared clients, limiters, retry policy and pools, as an async context manager.

    Example::

        async with Runtime(limits={"serper": ProviderLimits(rate=10)}) as runtime:
            agent = GenEvolveAgent(runtime=runtime)
            result = await agent.arun("a red fox in the snow")
    """

    def __init__(
        self,
        config: RuntimeConfig | None = None,
        *,
        retry: RetryPolicy | None = None,
        limits: Mapping[str, ProviderLimits] | None = None,
        max_connections: int | None = None,
    ) -> None:
        config = config or RuntimeConfig()
        if retry is not None:
            config.retry = retry
        if limits is not None:
            config.limits = {**config.limits, **limits}
        if max_connections is not None:
            config.max_connections = max_connections
        self.config = config
        self.retry = config.retry
        self.stats = RuntimeStats()
        self._state = _State.UNOPENED
        self._stack = AsyncExitStack()
        self._session: aiohttp.ClientSession | None = None
        self._limiters: dict[str, ProviderLimiter] = {}
        self._pools: dict[tuple[str, tuple[str, ...]], EndpointPool] = {}
        self._resources: dict[str, Any] = {}
        self._resource_locks: dict[str, anyio.Lock] = {}
        self._retry_callbacks: dict[str, Callable[[int, BaseException, float], None]] = {}

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is _State.OPEN:
            raise RuntimeClosedError("this Runtime is already open")
        if self._state is _State.CLOSED:
            raise RuntimeClosedError("a Runtime cannot be reopened once closed; make a new one")
        self._session = open_session(
            max_connections=self.config.max_connections,
            max_connections_per_host=self.config.max_connections_per_host,
            keepalive_timeout=self.config.keepalive_timeout,
            connect_timeout=self.config.connect_timeout,
        )
        self._stack.push_async_callback(self._session.close)
        self._state = _State.OPEN
        runtime_opened(self)  # its counters become observable metrics
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close everything the runtime owns, newest first. Idempotent."""
        if self._state is not _State.OPEN:
            self._state = _State.CLOSED
            return
        self._state = _State.CLOSED
        runtime_closed(self)  # before the resources go: the image cache's counts are kept
        try:
            await self._stack.aclose()
        finally:
            self._session = None
            self._resources.clear()

    @property
    def is_open(self) -> bool:
        return self._state is _State.OPEN

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            state = "closed" if self._state is _State.CLOSED else "not open yet (use 'async with')"
            raise RuntimeClosedError(f"the Runtime is {state}")

    # -- shared resources --------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        """The one aiohttp session every request of this runtime rides."""
        session = self._session
        if session is None:
            self._check_open()
        assert session is not None
        return session

    def limiter(self, provider: str, limits: ProviderLimits | None = None) -> ProviderLimiter:
        """The provider's one limiter, created on first use.

        Args:
            provider: the provider's name (``policy``, ``serper``, ``judge``...).
            limits: the limits a client asks for (a judge's ``rpm``); ``None``
                takes ``config.limits[provider]``, or no limit.

        Raises:
            ConfigurationError: the limiter exists with other limits than
                ``limits``: one provider has one budget per runtime.
        """
        limiter = self._limiters.get(provider)
        if limiter is None:
            chosen = limits if limits is not None else self.config.limits.get(provider)
            gates = self.config.rate_gates
            limiter = ProviderLimiter(
                provider,
                chosen,
                record_grants=self.config.record_grants,
                gate=gates(provider, chosen) if gates and chosen and chosen.rate else None,
            )
            self._limiters[provider] = limiter
        elif limits is not None and limiter.limits != limits:
            raise ConfigurationError(
                f"this Runtime's {provider} limiter has other limits ({limiter.limits}); "
                f"all {provider} clients of one runtime share one budget"
            )
        return limiter

    @property
    def limiters(self) -> dict[str, ProviderLimiter]:
        """Limiters created so far, by provider."""
        return dict(self._limiters)

    def endpoint_pool(
        self,
        provider: str,
        urls: Sequence[str],
        *,
        capacity: int | Sequence[int | None] | None = None,
        quarantine_after: int = 3,
        cooldown: float = 30.0,
        probe: Probe | None = None,
    ) -> EndpointPool:
        """The pool for ``provider`` over ``urls``, shared by everyone who asks."""
        key = (provider, tuple(urls))
        pool = self._pools.get(key)
        if pool is None:
            pool = EndpointPool(
                urls,
                name=provider,
                capacity=capacity,
                quarantine_after=quarantine_after,
                cooldown=cooldown,
                probe=probe,
            )
            self._pools[key] = pool
        return pool

    @property
    def endpoint_pools(self) -> list[EndpointPool]:
        return list(self._pools.values())

    async def resource(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]],
        close: Callable[[T], Awaitable[Any]] | None = None,
    ) -> T:
        """A named shared object (an SDK client, a cache), made once and closed with us.

        Args:
            key: identifies the resource within this runtime.
            factory: builds it on first request.
            close: closes it when the runtime closes.
        """
        self._check_open()
        if key in self._resources:
            return self._resources[key]  # type: ignore[no-any-return]
        # One builder per key: racing tasks wait instead of building twice.
        async with self._resource_locks.setdefault(key, anyio.Lock()):
            if key in self._resources:
                return self._resources[key]  # type: ignore[no-any-return]
            value = await factory()
            self._resources[key] = value
            if close is not None:
                self._stack.push_async_callback(close, value)
            return value

    def existing_resource(self, key: str) -> Any | None:
        """The named shared object if it was made already; never builds one."""
        return self._resources.get(key)

    # -- calls -------------------------------------------------------------

    def on_retry(self, provider: str) -> Callable[[int, BaseException, float], None]:
        """The retry callback that counts retries and 429s for ``provider`` (made once)."""
        callback = self._retry_callbacks.get(provider)
        if callback is None:
            callback = self._retry_callbacks[provider] = self._make_retry_callback(provider)
        return callback

    def _make_retry_callback(self, provider: str) -> Callable[[int, BaseException, float], None]:
        def _count(attempt: int, exc: BaseException, delay: float) -> None:
            self.stats.retries[provider] += 1
            if getattr(exc, "status", None) == 429:
                self.stats.rate_limited[provider] += 1
            note_retry(attempt, exc, delay)  # an event on the provider call's span
            logger.debug("%s: retry %d in %.2fs after %s", provider, attempt, delay, exc)

        return _count
