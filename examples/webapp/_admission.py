"""Backpressure: a cap on rollouts running at once, with a bounded wait for a slot.

A request past the cap waits in line for at most ``wait`` seconds, then is
refused with 429 and ``Retry-After``. The line is bounded in length too:
with ``max_waiting`` requests already in it, the next one is refused at
once. It is anyio's limiter queue, so it holds only connected requests, and
a client that gives up leaves it at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

import anyio
from fastapi.responses import JSONResponse

__all__ = ["Admission", "AdmissionStats", "Overloaded", "error_body", "overloaded_response"]


def error_body(kind: str, message: str) -> dict[str, dict[str, str]]:
    """The ``{"error": {"type", "message"}}`` shape every error response uses."""
    return {"error": {"type": kind, "message": message}}


class Overloaded(Exception):
    """Every rollout slot stayed taken for the whole wait.

    Attributes:
        retry_after: Seconds the client is told to wait before retrying.
    """

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def overloaded_response(exc: Overloaded) -> JSONResponse:
    """The 429 answer to an :class:`Overloaded` request."""
    return JSONResponse(
        error_body("overloaded", str(exc)),
        status_code=429,
        headers={"Retry-After": str(exc.retry_after)},
    )


class AdmissionStats(NamedTuple):
    """What the admission gate is doing now."""

    capacity: int
    running: int
    waiting: int


class Admission:
    """The per-process rollout cap.

    Args:
        capacity: Rollouts that may run at once.
        wait: Seconds a request may wait for a slot.
        max_waiting: Requests that may wait at once; past it, refusal is immediate.
        retry_after: Seconds to put in the 429's ``Retry-After``.
    """

    def __init__(self, capacity: int, *, wait: float, max_waiting: int, retry_after: int) -> None:
        self._limiter = anyio.CapacityLimiter(capacity)
        self.wait = wait
        self.max_waiting = max_waiting
        self.retry_after = retry_after

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one rollout slot for the block.

        Raises:
            Overloaded: No slot freed up within ``wait`` seconds.
        """
        # A token of our own rather than the current task: the slot belongs to
        # this block, whichever task runs it.
        token = object()
        acquired = False
        try:
            # A free slot is taken without a checkpoint, so even wait=0 admits.
            self._limiter.acquire_on_behalf_of_nowait(token)
            acquired = True
        except anyio.WouldBlock:
            if self._limiter.statistics().tasks_waiting >= self.max_waiting:
                raise Overloaded(
                    f"all {self._limiter.total_tokens:g} rollout slots are busy and "
                    f"{self.max_waiting} requests are already waiting; retry later",
                    retry_after=self.retry_after,
                ) from None
            with anyio.move_on_after(self.wait):
                await self._limiter.acquire_on_behalf_of(token)
                acquired = True
        if not acquired:
            raise Overloaded(
                f"all {self._limiter.total_tokens:g} rollout slots stayed busy for "
                f"{self.wait:g}s; retry later",
                retry_after=self.retry_after,
            )
        try:
            yield
        finally:
            self._limiter.release_on_behalf_of(token)

    def statistics(self) -> AdmissionStats:
        """Capacity, slots in use and requests waiting."""
        stats = self._limiter.statistics()
        return AdmissionStats(
            capacity=int(stats.total_tokens),
            running=stats.borrowed_tokens,
            waiting=stats.tasks_waiting,
        )
