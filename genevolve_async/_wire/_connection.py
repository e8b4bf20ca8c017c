"""One HTTP/1.1 connection as an asyncio ``Protocol``, parsed by httptools.

Why a protocol and not streams: bytes arrive in ``data_received`` and go
straight into llhttp (C); the whole answer is usually parsed inside one
callback, and the waiting task is woken once, with the answer complete. That
is a few microseconds of Python per exchange, where a stream-based client
pays for readers, buffers and several wake-ups.

A connection carries one exchange at a time (no pipelining). Each exchange
gets a fresh :class:`WireResponse`, which is also the parser's callback
target.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httptools

from ._exceptions import BodyTooLargeError, ConnectionClosedError, RemoteProtocolError

if TYPE_CHECKING:
    from ._pool import HostPool

__all__ = ["Connection", "Headers", "WireResponse"]

# A streamed body pauses the socket past this many unread bytes: a slow
# consumer then holds at most this much per connection, not the whole body.
_HIGH_WATER = 512 * 1024
_LOW_WATER = 128 * 1024


class Headers(dict[str, str]):
    """Response headers with lower-case names; ``get`` takes any case."""

    __slots__ = ()

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


class WireResponse:
    """One answer: status and headers first, then the body, read or streamed."""

    __slots__ = (
        "_body_waiter",
        "_buffered",
        "_chunks",
        "_conn",
        "_decoder",
        "_error",
        "_head_only",
        "_head_waiter",
        "_informational",
        "_max_body",
        "_parser",
        "_raw_headers",
        "_size",
        "_streaming",
        "body",
        "complete",
        "headers",
        "keep_alive",
        "received",
        "status",
    )

    def __init__(
        self,
        conn: Connection,
        head_waiter: asyncio.Future[None],
        max_body: int | None,
        *,
        head_only: bool = False,
        streaming: bool = False,
    ) -> None:
        self._conn = conn
        self._head_only = head_only
        self._head_waiter: asyncio.Future[None] | None = head_waiter
        self._body_waiter: asyncio.Future[None] | None = None
        self._max_body = max_body
        # The parser holds us (its callbacks) and we hold it: a cycle, broken
        # when the answer ends so that reference counting frees both at once
        # (the bench tunes the cyclic GC to run rarely).
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._size = 0
        self._decoder: Any = None
        self._error: BaseException | None = None
        self._informational = False
        self._streaming = streaming
        self.status = 0
        self.headers = Headers()
        self.body = b""
        """The whole body, once :meth:`WireClient.request` has read it."""
        self.complete = False
        """The whole body has arrived."""
        self.keep_alive = False
        """The connection may carry another exchange after this one."""
        self.received = False
        """Any byte of the answer has arrived."""

    def __repr__(self) -> str:
        return f"<WireResponse {self.status}>"

    # -- what callers read -------------------------------------------------------

    @property
    def content_type(self) -> str:
        """The media type, lower-case and without parameters (``""`` if absent)."""
        value = dict.get(self.headers, "content-type", "")
        return value.split(";", 1)[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        """The announced body length, if the answer announced a valid one."""
        value = dict.get(self.headers, "content-length")
        if value is None or not value.strip().isdigit():
            return None
        return int(value)

    async def read(self) -> bytes:
        """The whole body (waits for the rest of it)."""
        if self._streaming:  # the caller wants it all after all: no more pauses
            self._streaming = False
            self._conn.resume()
        while not self.complete:
            if self._error is not None:
                raise self._error
            await self._wait_body()
        if self._error is not None:
            raise self._error
        chunks = self._chunks
        if len(chunks) == 1:
            body = chunks.popleft()
        else:
            body = b"".join(chunks)
            chunks.clear()
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body piece by piece as it arrives; the socket pauses for a slow reader."""
        while True:
            if self._error is not None:
                raise self._error
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered <= _LOW_WATER:
                    self._conn.resume()
                yield chunk
            elif self.complete:
                return
            else:
                await self._wait_body()

    async def _wait_body(self) -> None:
        waiter = self._body_waiter = self._conn.loop.create_future()
        try:
            await waiter
        finally:
            self._body_waiter = None

    # -- parser callbacks (llhttp calls these from feed_data) --------------------

    def on_message_begin(self) -> None:
        if self.complete:
            # A second answer to one request: the connection is out of step.
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        assert self._parser is not None, "only the parser calls this"
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            # 100 Continue and friends: the real answer follows.
            self._informational = True
            self._raw_headers.clear()
            return
        self.status = status
        headers = self.headers
        for raw_name, raw_value in self._raw_headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            earlier = dict.get(headers, name)
            dict.__setitem__(headers, name, value if earlier is None else f"{earlier}, {value}")
        self._raw_headers.clear()
        encoding = dict.get(headers, "content-encoding")
        if encoding is not None and encoding.strip().lower() not in ("", "identity"):
            try:
                self._decoder = _decoder_for(encoding)
            except RemoteProtocolError as exc:
                self._conn.fail(exc)
                return
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._head_only:
            # An answer to HEAD has no body, whatever its Content-Length says.
            self._finish()

    def on_body(self, body: bytes) -> None:
        if self._error is not None or self.complete:
            return
        decoder = self._decoder
        if decoder is not None:
            limit = self._max_body
            try:
                if limit is None:
                    body = decoder.decompress(body)
                else:
                    # Bounded: a small compressed chunk may expand a thousandfold.
                    body = decoder.decompress(body, limit - self._size + 1)
                    if decoder.unconsumed_tail:
                        self._conn.fail(BodyTooLargeError(f"the body is over {limit} bytes"))
                        return
            except zlib.error as exc:
                self._conn.fail(RemoteProtocolError(f"a body that does not decompress: {exc}"))
                return
        if self._keep(body) and self._streaming:
            if self._buffered > _HIGH_WATER:
                self._conn.pause()
            self._wake_body()

    def _keep(self, chunk: bytes) -> bool:
        """Count ``chunk`` against the limit and keep it; ``False`` if it broke the limit."""
        self._size += len(chunk)
        if self._max_body is not None and self._size > self._max_body:
            self._conn.fail(BodyTooLargeError(f"the body is over {self._max_body} bytes"))
            return False
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        return True

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self.complete or self._error is not None:
            return  # a failed body's decoder may hold a bomb's tail: never flush it
        if self._decoder is not None:
            try:
                rest = self._decoder.flush()
            except zlib.error as exc:
                self._conn.fail(RemoteProtocolError(f"a body that does not decompress: {exc}"))
                return
            if rest and not self._keep(rest):
                return
        self._finish()

    def _finish(self) -> None:
        assert self._parser is not None, "only the parser calls this"
        self.keep_alive = self._parser.should_keep_alive()
        self._parser = None  # feed_data holds it for the rest of this call
        self.complete = True
        self._conn.resume()  # a paused socket must read the next answer
        self._wake_body()

    # -- connection events ------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.received = True
        parser = self._parser
        if parser is None:  # bytes after the end, or after a failure: out of step
            self.keep_alive = False
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._conn.fail(RemoteProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._conn.fail(RemoteProtocolError(f"not an HTTP/1.1 answer: {exc}"))

    def eof(self, reset: bool = False) -> None:
        """The peer closed: an answer without a length ends here (unless ``reset``)."""
        if self.complete or self._error is not None:
            return
        headers = self.headers
        if (
            not reset
            and self.status
            and "content-length" not in headers
            and "transfer-encoding" not in headers
        ):
            # Neither length nor chunking: the body runs until the connection closes.
            self.keep_alive = False
            decoder = self._decoder
            if decoder is not None:
                if not self._keep(decoder.flush()):
                    return
                if not decoder.eof:  # the compressed stream stopped short
                    self.fail(ConnectionClosedError("the compressed body was cut off"))
                    return
            self.complete = True
            self._wake_body()
            return
        self.fail(
            ConnectionClosedError("the server closed the connection before the answer was complete")
        )

    def fail(self, exc: BaseException) -> None:
        if self.complete or self._error is not None:
            return
        self._error = exc
        self._parser = None
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._wake_body()

    def _wake_body(self) -> None:
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _decoder_for(encoding: str) -> Any:
    coding = encoding.strip().lower()
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Deflate()
    raise RemoteProtocolError(f"an answer in an encoding we did not ask for: {coding}")


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped (the standard) or raw (common).

    The first bytes decide: a zlib header is checked; without one, the stream
    is read as raw deflate, as browsers and urllib3 do.
    """

    __slots__ = ("_inner", "_started")

    def __init__(self) -> None:
        self._inner: Any = zlib.decompressobj(zlib.MAX_WBITS)
        self._started = False

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inner.unconsumed_tail  # type: ignore[no-any-return]

    @property
    def eof(self) -> bool:
        return self._inner.eof  # type: ignore[no-any-return]

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        if not self._started:
            self._started = True
            try:
                return self._inner.decompress(data, max_length)  # type: ignore[no-any-return]
            except zlib.error:
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inner.decompress(data, max_length)  # type: ignore[no-any-return]

    def flush(self) -> bytes:
        return self._inner.flush()  # type: ignore[no-any-return]


class Connection(asyncio.Protocol):
    """A socket to one origin, carrying one exchange at a time."""

    __slots__ = (
        "_paused",
        "closed",
        "idle_since",
        "loop",
        "pool",
        "response",
        "reused",
        "transport",
    )

    def __init__(self, pool: HostPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.response: WireResponse | None = None
        self.closed = False
        self.reused = False
        """This connection has carried an exchange before."""
        self.idle_since = 0.0
        self._paused = False

    def start(
        self,
        request: bytes,
        max_body: int | None,
        *,
        head_only: bool = False,
        streaming: bool = False,
    ) -> WireResponse:
        """Send ``request`` (the whole message) and return its pending answer.

        ``head_only``: the request is a HEAD, so the answer has no body.
        ``streaming``: the body will be read piece by piece, so a reader that
        falls behind pauses the socket.
        """
        assert self.transport is not None and self.response is None
        response = WireResponse(
            self, self.loop.create_future(), max_body, head_only=head_only, streaming=streaming
        )
        self.response = response
        self.transport.write(request)
        return response

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:
            # Bytes nobody asked for: the connection is out of step, so unusable.
            self.close()
            return
        response.feed(data)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self.response
        self.pool.live.discard(self)
        if response is not None:
            # An error (a reset) is not an orderly end, even for a body that
            # runs until the connection closes.
            response.eof(reset=exc is not None)

    # -- used by WireResponse ------------------------------------------------------------

    def fail(self, exc: BaseException) -> None:
        response = self.response
        if response is not None:
            response.fail(exc)
        self.close()

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        """Drop the socket now (an unfinished exchange fails)."""
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
