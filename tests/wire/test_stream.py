"""``WireClient.stream``: bodies read as they arrive, back-pressure, and handing back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import anyio
import pytest

from genevolve_async._wire import (
    BodyTooLargeError,
    ConnectionClosedError,
    RemoteProtocolError,
    WireClient,
    WireResponse,
)

from ._raw import RawServer, ServerConn, answer, chunked, gzipped, keep_answering

MiB = 2**20


def _buffered(response: WireResponse) -> int:
    """Body bytes the client holds that the consumer has not taken yet (white-box)."""
    return sum(len(chunk) for chunk in response._chunks)


def big_body_handler(
    body: bytes, sent: list[int], piece: int = 256 * 1024
) -> Callable[[ServerConn], Awaitable[None]]:
    """Keep-alive: answer each request with ``body``, written piece by piece with
    drains; ``sent[0]`` counts the bytes the socket took so far."""

    async def handler(conn: ServerConn) -> None:
        sock = conn.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 128 * 1024)
        while await conn.read_request() is not None:
            sent[0] = 0
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            view = memoryview(body)
            for start in range(0, len(body), piece):
                await conn.send(bytes(view[start : start + piece]))
                sent[0] = start + len(view[start : start + piece])

    return handler


async def test_stream_a_large_body_then_reuse(client: WireClient) -> None:
    body = bytes(range(256)) * (8 * MiB // 256)
    sent = [0]
    async with RawServer(big_body_handler(body, sent)) as server:
        chunks: list[bytes] = []
        async with client.stream("GET", server.url(), timeout=10) as response:
            assert response.status == 200
            assert response.content_length == len(body)
            async for chunk in response.iter_chunks():
                chunks.append(chunk)
        assert b"".join(chunks) == body
        assert len(chunks) > 1
        assert client.connections_in_use == 0
        assert client.idle_connections == 1  # a complete stream hands the connection back
        again = await client.request("GET", server.url(), timeout=10, max_body=None)
    assert again.body == body
    assert len(server.connections) == 1


async def test_leaving_a_stream_early_closes_its_connection(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        if conn.index == 0:
            await conn.read_request()
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"z" * 1000)
            await conn.until_eof()
        else:
            await keep_answering(answer(b"next"))(conn)

    async with RawServer(handler) as server:
        async with client.stream("GET", server.url(), timeout=5) as response:
            async for chunk in response.iter_chunks():
                assert chunk
                break
        assert client.connections_in_use == 0
        assert client.idle_connections == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
        assert (await client.request("GET", server.url(), timeout=5)).body == b"next"
    assert len(server.connections) == 2


async def test_leaving_a_large_stream_early(client: WireClient) -> None:
    body = b"L" * (16 * MiB)
    sent = [0]
    async with RawServer(big_body_handler(body, sent)) as server:
        got = 0
        async with client.stream("GET", server.url(), timeout=10) as response:
            async for chunk in response.iter_chunks():
                got += len(chunk)
                if got > MiB:
                    break
        assert client.connections_in_use == 0
        assert client.idle_connections == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()


async def test_stream_not_iterated_with_an_unfinished_body(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await conn.until_eof()

    async with RawServer(handler) as server:
        async with client.stream("GET", server.url(), timeout=5) as response:
            assert response.status == 200
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
    assert client.connections_in_use == 0


async def test_slow_consumer_pauses_reading() -> None:
    body = b"B" * (64 * MiB)
    sent = [0]
    async with RawServer(big_body_handler(body, sent)) as server, WireClient() as client:
        got = 0
        held_max = 0
        sent_while_paused = -1
        async with client.stream("GET", server.url(), timeout=30) as response:
            async for chunk in response.iter_chunks():
                got += len(chunk)
                if sent_while_paused < 0 and got >= MiB:
                    await anyio.sleep(0.3)  # a consumer that stalls
                    held_max = _buffered(response)
                    sent_while_paused = sent[0]
                    await anyio.sleep(0.1)
                    # The server stays blocked while we do not read.
                    assert sent[0] - sent_while_paused < 4 * MiB
        assert got == len(body)
    # The client held at most about the high-water mark, not the whole body...
    assert held_max <= 2 * MiB, f"held {held_max / MiB:.1f} MiB while paused"
    # ...and the server could not write the body out into the void.
    assert sent_while_paused < len(body) // 2


async def test_back_pressure_before_the_first_iteration() -> None:
    body = b"P" * (64 * MiB)
    sent = [0]
    async with RawServer(big_body_handler(body, sent)) as server, WireClient() as client:
        async with client.stream("GET", server.url(), timeout=30) as response:
            await anyio.sleep(0.3)  # e.g. opening the file to write into
            held = _buffered(response)
            got = sum([len(chunk) async for chunk in response.iter_chunks()])
        assert got == len(body)
    assert held <= 2 * MiB, f"held {held / MiB:.1f} MiB before iterating"


async def test_stream_read_whole_body(client: WireClient) -> None:
    async with RawServer(keep_answering(answer(b"all at once"))) as server:
        async with client.stream("GET", server.url(), timeout=5) as response:
            assert await response.read() == b"all at once"
        async with client.stream("GET", server.url(), timeout=5) as response:
            assert await response.read() == b"all at once"
    assert len(server.connections) == 1


async def test_stream_chunked_gzip(client: WireClient) -> None:
    data = b"".join(b"line %d\n" % i for i in range(20000))
    packed = gzipped(data)
    pieces = [packed[i : i + 4096] for i in range(0, len(packed), 4096)]
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
        + chunked(pieces)
    )
    async with (
        RawServer(keep_answering(reply)) as server,
        client.stream("GET", server.url(), timeout=5) as response,
    ):
        got = b"".join([chunk async for chunk in response.iter_chunks()])
    assert got == data


async def test_stream_until_eof(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\n\r\n")
        for i in range(5):
            await conn.send(b"part %d;" % i)
            await asyncio.sleep(0.01)
        conn.close()

    async with (
        RawServer(handler) as server,
        client.stream("GET", server.url(), timeout=5) as response,
    ):
        got = b"".join([chunk async for chunk in response.iter_chunks()])
    assert got == b"part 0;part 1;part 2;part 3;part 4;"
    assert client.idle_connections == 0


async def test_stream_max_body(client: WireClient) -> None:
    async with RawServer(keep_answering(answer(b"m" * 5000))) as server:
        with pytest.raises(BodyTooLargeError):
            async with client.stream("GET", server.url(), timeout=5, max_body=4000) as response:
                async for _ in response.iter_chunks():
                    pass
        assert client.connections_in_use == 0
        assert client.idle_connections == 0
        async with client.stream("GET", server.url(), timeout=5) as response:
            assert len(await response.read()) == 5000
    assert len(server.connections) == 2


async def test_stream_server_closes_mid_body(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        conn.close()

    async with RawServer(handler) as server:
        got: list[bytes] = []
        with pytest.raises(ConnectionClosedError):
            async with client.stream("GET", server.url(), timeout=5) as response:
                async for chunk in response.iter_chunks():
                    got.append(chunk)
    assert b"".join(got) == b"short"
    assert client.connections_in_use == 0


async def test_stream_garbage_fails_on_entry(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"NOT HTTP AT ALL\r\n\r\n")
        await conn.until_eof()

    async with RawServer(handler) as server:
        with pytest.raises(RemoteProtocolError):
            async with client.stream("GET", server.url(), timeout=5):
                pytest.fail("entered")  # pragma: no cover
    assert client.connections_in_use == 0


async def test_error_inside_the_block_closes_the_connection(client: WireClient) -> None:
    async with RawServer(keep_answering(answer(b"fine"))) as server:
        with pytest.raises(KeyError):
            async with client.stream("GET", server.url(), timeout=5) as response:
                assert await response.read() == b"fine"
                raise KeyError("caller's own error")
        assert client.connections_in_use == 0
        assert client.idle_connections == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()


async def test_streams_respect_max_connections() -> None:
    async with (
        RawServer(keep_answering(answer(b"s" * 10000), delay=0.03)) as server,
        WireClient(max_connections=2) as client,
    ):

        async def one() -> None:
            async with client.stream("GET", server.url(), timeout=10) as response:
                assert len(await response.read()) == 10000

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(one)
        assert server.max_in_flight <= 2
        assert client.connections_in_use == 0


async def test_begun_streams_overlap_without_tasks(client: WireClient) -> None:
    async with RawServer(keep_answering(lambda r: answer(r.target.encode()), delay=0.05)) as server:
        streams = [client.stream("GET", server.url(f"/{i}"), timeout=5) for i in range(3)]
        for stream in streams:
            await stream.begin()  # sends, does not wait for the answer
        await server.wait_for_requests(3)
        assert server.max_in_flight == 3 and len(server.connections) == 3
        bodies = []
        for stream in streams:
            async with stream as response:
                bodies.append(await response.read())
    assert bodies == [b"/0", b"/1", b"/2"]
    assert client.connections_in_use == 0 and client.idle_connections == 3


async def test_an_abandoned_stream_closes_its_connection(client: WireClient) -> None:
    async with RawServer(keep_answering(answer(b"unread"), delay=0.05)) as server:
        stream = client.stream("GET", server.url(), timeout=5)
        await stream.begin()
        with pytest.raises(RuntimeError, match="already begun"):
            await stream.begin()
        stream.abandon()
        assert client.connections_in_use == 0 and client.idle_connections == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
