"""Idle connections to one origin, and how many are open.

The client owns the limits (all origins together, and per origin), which
count connections in use, as aiohttp's do: an idle connection holds no slot,
so a burst to one origin never closes warm connections to another. Idle
connections are reused newest first, so a burst's extra connections age out
(after the keep-alive time) instead of being kept warm.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["HostPool", "Origin"]

Origin = tuple[str, str, int]
"""``(scheme, host, port)``: what one connection can serve."""


class HostPool:
    """The connections to one origin."""

    __slots__ = ("busy", "idle", "live", "origin", "waiters", "waiting")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.idle: list[Connection] = []
        self.live: set[Connection] = set()
        """Every open connection, idle or busy (closed all at once by ``aclose``)."""
        self.busy = 0
        """Connections in use or opening."""
        self.waiters: deque[asyncio.Future[None]] = deque()
        """Requests waiting for this origin's cap (``max_connections_per_host``)."""
        self.waiting = 0
        """Requests waiting for either cap; a pool with waiters is never pruned."""

    def take_idle(self, now: float, keepalive: float) -> Connection | None:
        """The newest idle connection still usable, closing expired ones."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue  # the server closed it while idle
            if now - conn.idle_since > keepalive:
                conn.close()
                continue
            return conn
        return None

    def prune(self, now: float, keepalive: float) -> None:
        """Close idle connections past the keep-alive time; drop closed ones."""
        kept = []
        for conn in self.idle:
            if conn.closed:
                continue
            if now - conn.idle_since > keepalive:
                conn.close()
            else:
                kept.append(conn)
        self.idle = kept
