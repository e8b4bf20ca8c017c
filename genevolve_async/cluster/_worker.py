"""One cluster worker: a Ray async actor owning one Runtime and one event loop.

The driver sends it small batches of rows; it runs every row of every batch
at once (as a single process does) and streams each outcome back as it
ends. Rate grants come from the cluster's limiter service; quarantines it
decides are reported there, and the ones others decided are picked up at
the start of each batch (no background task).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .._endpoints import Endpoint, EndpointPool
from .._errors import AuthenticationError, RuntimeClosedError, classify_exception
from .._limits import ProviderLimiter, ProviderLimits
from .._runtime import Runtime, RuntimeConfig
from ..pipeline._inputs import InputRow
from ..pipeline._stages import BatchAborted, Outcome, RolloutStage, is_fatal
from ._limiter import LeasedRateGate, gate_factory

__all__ = ["Fatal", "RolloutWorker", "WorkerSpec", "split_limits"]

_QUARANTINE_POLL = 0.5  # seconds between looks at the cluster's quarantine list


@dataclass(kw_only=True, slots=True)
class WorkerSpec:
    """What every worker is built from (pickled to each of them)."""

    build: Callable[[Runtime], RolloutStage]
    """Makes the worker's rollout stage on its runtime (a picklable callable)."""
    limits: dict[str, ProviderLimits] = field(default_factory=dict)
    """Provider limits: rates cluster-wide, in-flight caps split across workers."""
    workers: int = 1
    """Workers sharing the in-flight caps."""
    env: dict[str, str] = field(default_factory=dict, repr=False)
    """Environment the tools read (Serper key, download folder); never logged."""
    service: Any = None
    """The limiter service's actor handle."""
    record_grants: bool = False
    """Keep grant timestamps (bench and tests)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class Fatal:
    """A failure every item would share, raised again on the driver."""

    kind: str
    message: str

    def error(self) -> Exception:
        if self.kind == "authentication":
            return AuthenticationError(self.message)
        if self.kind == "closed":
            return RuntimeClosedError(self.message)
        return BatchAborted(self.message)

    @classmethod
    def of(cls, exc: BaseException) -> Fatal:
        kind = (
            "authentication"
            if isinstance(exc, AuthenticationError)
            else "closed"
            if isinstance(exc, RuntimeClosedError)
            else "aborted"
        )
        return cls(kind=kind, message=str(exc))


def split_limits(limits: dict[str, ProviderLimits], workers: int) -> dict[str, ProviderLimits]:
    """Each worker's share: the whole rate (the service divides it), ``1/N`` of in-flight caps."""
    return {
        name: ProviderLimits(
            rate=lim.rate,
            max_in_flight=(
                max(1, math.ceil(lim.max_in_flight / workers))
                if lim.max_in_flight is not None
                else None
            ),
        )
        for name, lim in limits.items()
    }


class RolloutWorker:
    """The actor's class (wrapped by ``ray.remote`` in :mod:`._dispatch`)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        os.environ.update(spec.env)
        self._stack = AsyncExitStack()
        self._runtime: Runtime | None = None
        self._stage: RolloutStage | None = None
        self._seen_quarantines = 0
        self._polled = 0.0
        self._hooked: set[int] = set()

    async def start(self) -> tuple[int, float]:
        """Open the runtime and build the stage; the process id and its CPU seconds so far."""
        service = self.spec.service
        gates = gate_factory(service.lease.remote) if service is not None else None
        config = RuntimeConfig(
            limits=split_limits(self.spec.limits, self.spec.workers),
            rate_gates=gates,
            record_grants=self.spec.record_grants,
        )
        self._runtime = await self._stack.enter_async_context(Runtime(config))
        self._stage = self.spec.build(self._runtime)
        await self._stage.prepare()
        return os.getpid(), time.process_time()

    async def run(self, rows: list[InputRow]) -> AsyncIterator[tuple[str, Outcome | Fatal]]:
        """Run ``rows`` at once; yield ``(id, outcome)`` for each as it ends."""
        await self._sync_quarantines()
        send, receive = anyio.create_memory_object_stream[tuple[str, Outcome | Fatal]](len(rows))
        # Yielding inside the task group is safe here: Ray drains this generator
        # in one task, to its end, and a dead driver takes the actor with it.
        async with anyio.create_task_group() as tg:
            for row in rows:
                tg.start_soon(self._one, row, send.clone())
            send.close()
            async with receive:
                async for result in receive:
                    yield result

    async def _one(
        self, row: InputRow, send: MemoryObjectSendStream[tuple[str, Outcome | Fatal]]
    ) -> None:
        stage = self._stage
        assert stage is not None, "start() first"
        with send:
            try:
                result: Outcome | Fatal = await stage.process(row)
            except Exception as exc:
                result = (
                    Fatal.of(exc) if is_fatal(exc) else stage.failure(row, classify_exception(exc))
                )
            await send.send((row.id, result))

    async def _sync_quarantines(self) -> None:
        service, runtime = self.spec.service, self._runtime
        if service is None or runtime is None:
            return
        pools = runtime.endpoint_pools
        for pool in pools:
            if id(pool) not in self._hooked:
                self._hooked.add(id(pool))
                pool.on_quarantine = _reporter(service, pool)
        now = time.monotonic()
        if now - self._polled < _QUARANTINE_POLL:
            return
        self._polled = now
        self._seen_quarantines, fresh = await service.quarantines.remote(self._seen_quarantines)
        for provider, url, seconds in fresh:
            for pool in pools:
                if pool.name == provider:
                    pool.quarantine_url(url, seconds)

    async def stats(self) -> dict[str, Any]:
        """Limiter, gate and endpoint figures, and this process's CPU seconds."""
        runtime = self._runtime
        out: dict[str, Any] = {"pid": os.getpid(), "cpu_seconds": time.process_time()}
        if runtime is None:
            return out
        out["limiters"] = {
            name: {
                "grants": lim.stats.grants,
                "grant_times": list(lim.grant_times or ()),
                "gate": _gate_stats(lim),
            }
            for name, lim in runtime.limiters.items()
        }
        out["endpoints"] = {
            f"{pool.name}:{e.url}": {"requests": e.stats.requests, "peak": e.stats.peak_in_flight}
            for pool in runtime.endpoint_pools
            for e in pool.endpoints
        }
        return out

    async def close(self) -> None:
        """Close the runtime."""
        await self._stack.aclose()


def _gate_stats(limiter: ProviderLimiter) -> dict[str, float] | None:
    gate = limiter.gate
    if not isinstance(gate, LeasedRateGate):
        return None
    s = gate.stats
    return {
        "used": s.used,
        "expired": s.expired,
        "leases": s.leases,
        "lease_seconds": s.lease_seconds,
    }


def _reporter(service: Any, pool: EndpointPool) -> Callable[[Endpoint, float], None]:
    def report(endpoint: Endpoint, seconds: float) -> None:
        # Fire and forget: the answer carries nothing, and the pool must not wait.
        service.report_quarantine.remote(pool.name, endpoint.url, seconds)

    return report
