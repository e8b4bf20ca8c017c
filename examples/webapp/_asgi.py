"""ASGI pieces the frameworks leave to us: a body cap, disconnect watching, an event stream.

Starlette's ``StreamingResponse`` notices a departed client only when its
next write fails (ASGI 2.4 servers) or runs the body in a child task;
:class:`EventStream` instead runs the producer in the request's own task
and cancels it the moment the server reports ``http.disconnect``, so a
rollout stops promptly even while it is waiting for a slow model round.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._admission import Overloaded, error_body, overloaded_response

__all__ = [
    "PING",
    "BodyLimit",
    "DisconnectWatch",
    "EventStream",
    "Write",
    "cancelled_on_disconnect",
    "sse_frame",
]

Write = Callable[[bytes], Awaitable[None]]
"""Sends one chunk of the event stream to the client."""

PING = b": ping\n\n"
"""An SSE comment: keeps proxies from closing an idle stream; clients ignore it."""


def sse_frame(event: str, data: Mapping[str, Any], *, event_id: int) -> bytes:
    """One server-sent event; ``data`` is JSON on a single line."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event}\ndata: {payload}\n\n".encode()


async def _wait_for_disconnect(receive: Receive) -> None:
    # After the body has been read, the next message a server sends is
    # http.disconnect; anything else (a stray empty body chunk) is skipped.
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass(kw_only=True, slots=True)
class DisconnectWatch:
    """Whether the client left while the guarded block ran."""

    disconnected: bool = False


@asynccontextmanager
async def cancelled_on_disconnect(receive: Receive) -> AsyncIterator[DisconnectWatch]:
    """Run the block, cancelling it if the client disconnects.

    After the block, ``watch.disconnected`` tells whether it was cut short;
    the cancellation itself does not propagate past the block.
    """
    watch = DisconnectWatch()
    error: Exception | None = None
    async with anyio.create_task_group() as tg:

        async def watcher() -> None:
            await _wait_for_disconnect(receive)
            watch.disconnected = True
            tg.cancel_scope.cancel()

        tg.start_soon(watcher)
        try:
            yield watch
        except Exception as exc:
            # Re-raised below, outside the task group, so callers (and the
            # framework's exception handlers) see it bare, not in a group.
            error = exc
        finally:
            tg.cancel_scope.cancel()
    if error is not None:
        raise error


class EventStream(Response):
    """A ``text/event-stream`` response whose producer lives and dies with the client.

    Args:
        producer: Writes the stream's frames with the ``Write`` it is given.
        gate: Entered before the response starts (the rollout slot). An
            :class:`Overloaded` from it turns the answer into a 429.
        headers: Extra response headers.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        producer: Callable[[Write], Awaitable[None]],
        *,
        gate: Callable[[], AbstractAsyncContextManager[object]],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # Not super().__init__: that would render an empty body and send
        # Content-Length: 0. This mirrors StreamingResponse.
        self.producer = producer
        self.gate = gate
        self.status_code = 200
        self.background = None
        self.init_headers(
            {"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})}
        )
        self.disconnected = False
        """True once the client left before the stream ended."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def write(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async with cancelled_on_disconnect(receive) as watch:
            try:
                async with self.gate():
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                    )
                    await self.producer(write)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Overloaded as exc:
                await overloaded_response(exc)(scope, receive, send)
        self.disconnected = watch.disconnected


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before anything parses them.

    A declared ``Content-Length`` is checked up front (the server enforces
    it); a chunked body is read up to the cap and then replayed to the app.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left mid-upload; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            error_body("request_too_large", f"the request body is over {self.max_bytes} bytes")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
