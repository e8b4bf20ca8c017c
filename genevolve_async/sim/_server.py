"""Running a simulated backend on loopback, and the statistics every route keeps."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

__all__ = ["RouteStats", "SimServer", "Stats"]


@dataclass(kw_only=True, slots=True)
class RouteStats:
    """Counters for one route of one simulated server."""

    requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


@dataclass(kw_only=True, slots=True)
class Stats:
    """Everything a simulated server saw."""

    routes: dict[str, RouteStats] = field(default_factory=dict)
    connections: set[int] = field(default_factory=set)
    """Distinct client connections (by transport identity)."""
    peak_connections_open: int = 0
    request_times: list[float] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    """Faults served, by kind (``429``, ``500``, ``reset``, ``slow``, ``killed``, ...)."""

    def route(self, name: str) -> RouteStats:
        stats = self.routes.get(name)
        if stats is None:
            stats = self.routes[name] = RouteStats()
        return stats

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.routes.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "connections": len(self.connections),
            "faults": dict(sorted(self.faults.items())),
            "routes": {
                name: {
                    "requests": r.requests,
                    "peak_in_flight": r.peak_in_flight,
                    "statuses": {str(k): v for k, v in sorted(r.statuses.items())},
                }
                for name, r in sorted(self.routes.items())
            },
        }


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def counting_middleware(stats: Stats, *, record_times: bool = False) -> Any:
    """An aiohttp middleware that keeps :class:`Stats` per route."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        name = resource.canonical if resource is not None else request.path
        route = stats.route(f"{request.method} {name}")
        route.requests += 1
        route.in_flight += 1
        route.peak_in_flight = max(route.peak_in_flight, route.in_flight)
        if request.transport is not None:
            stats.connections.add(id(request.transport))
        if record_times:
            stats.request_times.append(time.monotonic())
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route.in_flight -= 1
            route.statuses[status] += 1

    return middleware


class SimServer:
    """Serve an aiohttp application on a loopback port, as an async context manager.

    Example::

        async with SimServer(SimPolicy().app) as server:
            print(server.url)
    """

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        # Bind first so the port is known (and kept) before serving.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(4096)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._socket = sock
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.SockSite(runner, sock, backlog=4096).start()
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
