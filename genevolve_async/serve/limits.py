"""Limits for the HTTP servers we run (the Qwen service, the web demo) against slow clients.

uvicorn keeps a connection open for as long as a client takes to send its
headers or its body, and its defaults bound neither the number of such
connections nor the size of a header block. :class:`ServerLimits` gathers
what uvicorn can bound (``uvicorn_options``) and what it cannot, a deadline
on reading the request body (:class:`BodyReadTimeout`, an ASGI middleware).
Slow headers are bounded by ``max_connections``: a client trickling headers
holds one of those slots and nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio

__all__ = ["BodyReadTimeout", "ServerLimits"]

_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_App = Callable[[MutableMapping[str, Any], _Receive, _Send], Awaitable[None]]


@dataclass(kw_only=True, slots=True, frozen=True)
class ServerLimits:
    """What one server process allows a client.

    Attributes are uvicorn's where uvicorn has them (see ``uvicorn_options``).
    """

    keep_alive: int = 5
    """Seconds an idle keep-alive connection stays open (uvicorn ``timeout_keep_alive``)."""
    max_connections: int = 1024
    """Connections and tasks at once; beyond, 503 (uvicorn ``limit_concurrency``)."""
    max_header_bytes: int = 64 * 1024
    """Largest header block h11 buffers (uvicorn ``h11_max_incomplete_event_size``)."""
    body_timeout: float = 60.0
    """Seconds a client may take to send its whole request body."""
    backlog: int = 2048
    """Connections the kernel queues before accepting."""

    def __post_init__(self) -> None:
        if min(self.keep_alive, self.max_connections, self.max_header_bytes, self.backlog) < 1:
            raise ValueError("server limits must be positive")
        if self.body_timeout <= 0:
            raise ValueError("body_timeout must be positive")

    def uvicorn_options(self) -> dict[str, Any]:
        """Keywords for ``uvicorn.run`` / ``uvicorn.Config``."""
        return {
            "timeout_keep_alive": self.keep_alive,
            "limit_concurrency": self.max_connections,
            "h11_max_incomplete_event_size": self.max_header_bytes,
            "backlog": self.backlog,
        }


class BodyReadTimeout:
    """ASGI middleware: a request body must arrive within ``seconds``, all chunks together.

    Past the deadline the application is told the client disconnected
    (``http.disconnect``), so it stops waiting and the server closes the
    connection. Reads after the body is complete (watching for a
    disconnect during a long answer) are not timed.
    """

    def __init__(self, app: Any, *, seconds: float = 60.0) -> None:
        self.app: _App = app
        self.seconds = seconds

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: _Receive, send: _Send
    ) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        deadline = anyio.current_time() + self.seconds
        body_done = False

        async def bounded_receive() -> _Message:
            nonlocal body_done
            if body_done:
                return await receive()
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                message = await receive()
                if message.get("type") != "http.request" or not message.get("more_body"):
                    body_done = True
                return message
            body_done = True
            return {"type": "http.disconnect"}

        await self.app(scope, bounded_receive, send)
