"""Loopback servers that speak raw bytes, for scripting the wire client's edge cases.

A :class:`RawServer` runs one handler per accepted connection. The handler
gets a :class:`ServerConn`: it reads requests with :meth:`ServerConn.read_request`
and writes whatever bytes the test wants with :meth:`ServerConn.send`. The
server records every connection and request, counts requests in flight, and
notices when the client closes its side (``ServerConn.eof``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import anyio

__all__ = [
    "RawServer",
    "Received",
    "ServerConn",
    "answer",
    "chunked",
    "gzipped",
    "keep_answering",
    "wait_until",
]

Handler = Callable[["ServerConn"], Awaitable[None]]


@dataclass
class Received:
    """One request as the server read it off the socket."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_count(self, name: str) -> int:
        wanted = name.lower()
        return sum(1 for key, _ in self.headers if key.lower() == wanted)


@dataclass
class ServerConn:
    """The server's side of one accepted connection."""

    server: RawServer
    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: list[Received] = field(default_factory=list)
    eof: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the server has read EOF (or a reset) from the client."""

    async def read_request(self) -> Received | None:
        """The next request, or ``None`` when the client closed the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.eof.set()
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        received = Received(method, target, version, headers, b"", head)
        length = received.header("content-length")
        if length:
            received.body = await self.reader.readexactly(int(length))
            received.raw += received.body
        self.requests.append(received)
        self.server.requests.append(received)
        return received

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_eof(self) -> None:
        """Read (and drop) until the client closes its side."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.eof.set()

    def close(self) -> None:
        """Close the server's side now."""
        self.writer.close()

    def abort(self) -> None:
        """Reset the connection now."""
        self.writer.transport.abort()

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a request as being answered while the block runs."""
        server = self.server
        server.in_flight += 1
        server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            yield
        finally:
            server.in_flight -= 1


class RawServer:
    """``async with RawServer(handler) as server``: a loopback server for raw scripts."""

    def __init__(
        self, handler: Handler, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.handler = handler
        self.host = host
        self.tls = tls
        self.port = 0
        self.connections: list[ServerConn] = []
        self.requests: list[Received] = []
        self.open = 0
        self.max_open = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, path: str = "/") -> str:
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://{self.authority}{path}"

    @property
    def authority(self) -> str:
        """What the ``Host`` header should say for this server."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{shown}:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)  # handlers end quietly when cancelled
        for conn in self.connections:
            conn.writer.transport.abort()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = ServerConn(self, len(self.connections), reader, writer)
        self.connections.append(conn)
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self.handler(conn)
            if not writer.is_closing():
                await conn.until_eof()
        except (ConnectionError, asyncio.IncompleteReadError):
            conn.eof.set()
        except asyncio.CancelledError:
            # Only __aexit__ cancels handlers: end quietly, or asyncio's stream
            # callback logs the cancelled task as an unhandled error.
            pass
        finally:
            self.open -= 1
            writer.transport.abort()
            self._tasks.discard(task)

    async def wait_for_connections(self, count: int, timeout: float = 5.0) -> None:
        await wait_until(lambda: len(self.connections) >= count, timeout)

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:
        await wait_until(lambda: len(self.requests) >= count, timeout)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; ``TimeoutError`` after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polls state no event reports
            await anyio.sleep(0.005)


def answer(
    body: bytes = b"ok",
    *,
    status: str = "200 OK",
    headers: list[tuple[str, str]] | None = None,
    length: bool = True,
    version: str = "HTTP/1.1",
) -> bytes:
    """A whole answer's bytes (``Content-Length`` unless ``length`` is false)."""
    lines = [f"{version} {status}"]
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(pieces: list[bytes]) -> bytes:
    """``pieces`` in chunked framing, with the final empty chunk."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces if piece)
    return out + b"0\r\n\r\n"


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def keep_answering(
    make: Callable[[Received], bytes] | bytes, *, delay: float = 0.0
) -> Callable[[ServerConn], Awaitable[None]]:
    """A keep-alive handler answering each request with ``make`` (bytes or a function)."""

    async def handler(conn: ServerConn) -> None:
        while True:
            request = await conn.read_request()
            if request is None:
                return
            with conn.in_flight():
                if delay:
                    await asyncio.sleep(delay)
                await conn.send(make(request) if callable(make) else make)

    return handler
