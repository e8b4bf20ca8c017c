"""A blocking portal on a daemon thread, for the sync ``run()``.

anyio's ``start_blocking_portal`` runs its loop on a ``ThreadPoolExecutor``
worker, which the interpreter joins at exit: an agent that was never closed
would hang the process. Ours runs on a daemon thread and is stopped by
``close()`` or by a finalizer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from anyio.from_thread import BlockingPortal

__all__ = ["PortalThread"]

T = TypeVar("T")


class PortalThread:
    """An event loop on a daemon thread, driven from sync code."""

    def __init__(self, name: str = "genevolve-portal") -> None:
        handoff: queue.Queue[BlockingPortal | BaseException] = queue.Queue()

        async def main() -> None:
            async with BlockingPortal() as portal:
                handoff.put(portal)
                await portal.sleep_until_stopped()

        def target() -> None:
            try:
                anyio.run(main)
            except BaseException as exc:  # pragma: no cover - surfaced to the caller
                handoff.put(exc)

        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()
        got = handoff.get()
        if isinstance(got, BaseException):  # pragma: no cover
            raise got
        self._portal: BlockingPortal | None = got

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def call(self, func: Callable[[], Awaitable[T]]) -> T:
        if self._portal is None:
            raise RuntimeError("the agent's event-loop thread has been stopped")
        return self._portal.call(func)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (cancelling what still runs) and join the thread."""
        portal, self._portal = self._portal, None
        if portal is None:
            return
        try:
            portal.call(portal.stop, True)
        except RuntimeError:  # already stopped
            pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
