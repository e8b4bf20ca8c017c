"""The driver's side of a cluster job: one queue of items, workers pulling from it.

Each worker has a credit per item it may hold (its share of the in-flight
cap). Whenever it has credit it takes up to ``batch`` items from the queue
and streams them through its actor; every outcome that comes back returns a
credit. A slow worker's credits come back slowly, so it simply takes fewer.

A worker that dies (SIGKILL, a lost node) fails its streams with a Ray
actor error: the items it held and had not answered go back to the front
of the queue, a replacement starts (``max_restarts`` times per worker), and
the items run again elsewhere. Outcomes are delivered once, by id, on the
driver: an answer that arrived counts, one that did not is redone, so the
batch ends with every id exactly once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskStatus

from .._errors import GenEvolveError
from ..pipeline._inputs import InputRow
from ..pipeline._stages import BatchAborted, Outcome
from ._ray import import_ray
from ._worker import Fatal, RolloutWorker, WorkerSpec

__all__ = ["Dispatcher", "WorkerLost"]


class WorkerLost(GenEvolveError):
    """An item's Ray worker died every time it ran it (the item fails, the batch goes on)."""


@dataclass(eq=False, slots=True)
class _Pending:
    row: InputRow
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Outcome | BaseException | None = None
    attempts: int = 0
    abandoned: bool = False

    def deliver(self, result: Outcome | BaseException) -> None:
        if self.result is None:
            self.result = result
            self.done.set()


class _Queue:
    """Items waiting for a worker; requeued ones go first."""

    def __init__(self) -> None:
        self._items: deque[_Pending] = deque()
        self._ready = anyio.Event()

    def put(self, item: _Pending) -> None:
        self._items.append(item)
        self._ready.set()

    def put_front(self, items: list[_Pending]) -> None:
        self._items.extendleft(reversed(items))
        self._ready.set()

    def drain(self) -> list[_Pending]:
        items = list(self._items)
        self._items.clear()
        return items

    async def take(self, most: int) -> list[_Pending]:
        while True:
            while self._items and self._items[0].abandoned:
                self._items.popleft()
            if self._items:
                return [self._items.popleft() for _ in range(min(most, len(self._items)))]
            if self._ready.is_set():
                self._ready = anyio.Event()
            await self._ready.wait()


@dataclass(kw_only=True, slots=True)
class WorkerInfo:
    """One live worker (tests kill ``pid``)."""

    slot: int
    handle: Any
    pid: int
    alive: bool = True
    taken: int = 0
    """Items it pulled."""
    start_cpu: float = 0.0
    """Its process's CPU seconds once started (the bench subtracts start-up)."""


class Dispatcher:
    """Feeds one job's items to its workers and hands their outcomes back.

    Args:
        spec: What each worker is built from.
        workers: How many workers.
        per_worker: Items one worker holds at once.
        batch: Most items per pull.
        max_restarts: Replacements per worker slot after a death.
        max_attempts: Deaths an item may see before it fails.
        actor_options: More ``ray.remote`` options for the workers.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        workers: int,
        per_worker: int,
        batch: int = 4,
        max_restarts: int = 1,
        max_attempts: int = 3,
        actor_options: dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.workers = workers
        self.per_worker = max(1, per_worker)
        self.batch = max(1, batch)
        self.max_restarts = max_restarts
        self.max_attempts = max_attempts
        self.actor_options = actor_options or {}
        self.live: list[WorkerInfo] = []
        self.deaths = 0
        self.final_stats: list[dict[str, Any]] = []
        """Each worker's figures (see ``RolloutWorker.stats``), taken as the job ends."""
        self._queue = _Queue()
        self._failure: BaseException | None = None
        self._alive = workers
        self._started = anyio.Event()

    async def submit(self, row: InputRow) -> Outcome:
        """Run one item on some worker; its outcome, or the error that stops the batch."""
        if self._failure is not None:
            raise self._failure
        pending = _Pending(row=row)
        self._queue.put(pending)
        try:
            await pending.done.wait()
        finally:
            pending.abandoned = pending.result is None
        if isinstance(pending.result, BaseException):
            raise pending.result
        assert pending.result is not None
        return pending.result

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the workers (reported once all answered) and feed them until cancelled."""
        ray = import_ray()
        actor = ray.remote(RolloutWorker).options(
            max_concurrency=self.per_worker + 16, **self.actor_options
        )
        first = [await self._start(actor, slot) for slot in range(self.workers)]
        self.live.extend(first)
        task_status.started()
        try:
            async with anyio.create_task_group() as tg:
                for info in first:
                    tg.start_soon(self._supervise, actor, info)
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop_all(ray)

    async def _start(self, actor: Any, slot: int) -> WorkerInfo:
        handle = actor.remote(self.spec)
        try:
            pid, cpu = await handle.start.remote()
        except Exception as exc:
            raise BatchAborted(f"a Ray worker could not start: {_cause(exc)}") from None
        return WorkerInfo(slot=slot, handle=handle, pid=pid, start_cpu=cpu)

    async def _supervise(self, actor: Any, info: WorkerInfo) -> None:
        restarts = self.max_restarts
        while True:
            await self._feed(info)
            self.deaths += 1
            if restarts == 0:
                break
            restarts -= 1
            info = await self._start(actor, info.slot)
            self.live.append(info)
        self._alive -= 1
        if self._alive == 0:
            self._failure = BatchAborted(
                "every Ray worker died; what finished is written, rerun the same command to resume"
            )
            for pending in self._queue.drain():
                pending.deliver(self._failure)

    async def _feed(self, info: WorkerInfo) -> None:
        """Pull items for one worker until it dies."""
        credits = anyio.Semaphore(self.per_worker)
        async with anyio.create_task_group() as tg:
            while info.alive:
                await credits.acquire()
                wanted = 1
                while wanted < self.batch and credits.value > 0:
                    credits.acquire_nowait()
                    wanted += 1
                items = await self._queue.take(wanted)
                for _ in range(wanted - len(items)):
                    credits.release()
                info.taken += len(items)
                tg.start_soon(self._stream, info, items, credits, tg.cancel_scope)

    async def _stream(
        self,
        info: WorkerInfo,
        items: list[_Pending],
        credits: anyio.Semaphore,
        worker_scope: anyio.CancelScope,
    ) -> None:
        ray = import_ray()
        by_id = {p.row.id: p for p in items}
        try:
            stream = info.handle.run.options(num_returns="streaming").remote([p.row for p in items])
            async for ref in stream:
                row_id, result = await ref
                pending = by_id.pop(row_id)
                pending.deliver(result.error() if isinstance(result, Fatal) else result)
                credits.release()
        except _death_errors(ray):
            info.alive = False
            worker_scope.cancel()  # its other streams requeue their items too
        except Exception as exc:  # the actor code raised: those items fail, the batch goes on
            for pending in by_id.values():
                pending.deliver(exc)
            by_id.clear()
        finally:
            self._requeue(list(by_id.values()))

    def _requeue(self, items: list[_Pending]) -> None:
        again = []
        for pending in items:
            if pending.result is not None or pending.abandoned:
                continue
            pending.attempts += 1
            if pending.attempts >= self.max_attempts:
                pending.deliver(
                    WorkerLost(
                        f"row {pending.row.id!r}: its Ray worker died {pending.attempts} times "
                        "while running it"
                    )
                )
            else:
                again.append(pending)
        if again:
            self._queue.put_front(again)

    async def _stop_all(self, ray: Any) -> None:
        for info in self.live:
            if info.alive:
                with anyio.move_on_after(5):
                    try:
                        stats = await info.handle.stats.remote()
                        self.final_stats.append(
                            {**stats, "start_cpu": info.start_cpu, "taken": info.taken}
                        )
                        await info.handle.close.remote()
                    except Exception:  # it is going away either way
                        pass
            ray.kill(info.handle)


def _death_errors(ray: Any) -> tuple[type[BaseException], ...]:
    exceptions = ray.exceptions
    return (exceptions.RayActorError, exceptions.WorkerCrashedError, exceptions.ObjectLostError)


def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(exc).splitlines()[0]
