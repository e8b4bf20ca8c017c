"""Keep-alive: when a connection is reused, when it is not, and the stale-connection retry."""

from __future__ import annotations

import anyio
import pytest

from genevolve_async._wire import ConnectionClosedError, WireClient

from ._raw import RawServer, ServerConn, answer, keep_answering, wait_until


async def test_sequential_requests_share_one_connection(client: WireClient) -> None:
    async with RawServer(keep_answering(answer(b"same"))) as server:
        for _ in range(3):
            response = await client.request("GET", server.url(), timeout=5)
            assert response.body == b"same"
            assert client.connections_in_use == 0
            assert client.idle_connections == 1
    assert len(server.connections) == 1
    assert len(server.requests) == 3


async def test_connection_close_answer_is_not_reused(client: WireClient) -> None:
    reply = answer(b"bye", headers=[("Connection", "close")])
    async with RawServer(keep_answering(reply)) as server:
        first = await client.request("GET", server.url(), timeout=5)
        assert not first.keep_alive
        assert client.idle_connections == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()  # we closed our side
        second = await client.request("GET", server.url(), timeout=5)
    assert (first.body, second.body) == (b"bye", b"bye")
    assert len(server.connections) == 2


async def test_http_1_0_answer_is_not_reused(client: WireClient) -> None:
    reply = answer(b"old", version="HTTP/1.0")
    async with RawServer(keep_answering(reply)) as server:
        first = await client.request("GET", server.url(), timeout=5)
        second = await client.request("GET", server.url(), timeout=5)
    assert (first.body, second.body) == (b"old", b"old")
    assert not first.keep_alive
    assert len(server.connections) == 2


async def test_server_closing_right_after_each_answer(client: WireClient) -> None:
    """A server that answers keep-alive and then drops the connection: every
    request still succeeds, whether or not we noticed the close in time."""

    async def handler(conn: ServerConn) -> None:
        if await conn.read_request() is not None:
            await conn.send(answer(b"once"))
        conn.close()

    async with RawServer(handler) as server:
        for _ in range(4):
            response = await client.request("GET", server.url(), timeout=5)
            assert response.body == b"once"
    assert len(server.connections) >= 4


async def test_stale_connection_is_retried_on_a_fresh_one(client: WireClient) -> None:
    """The server drops the reused connection after reading our request, without
    a byte of answer: the request goes again on a new connection."""

    async def handler(conn: ServerConn) -> None:
        if conn.index == 0:
            await conn.read_request()
            await conn.send(answer(b"first"))
            await conn.read_request()  # the reused connection: read, then drop it
            conn.close()
            return
        await keep_answering(answer(b"fresh"))(conn)

    async with RawServer(handler) as server:
        first = await client.request("GET", server.url("/1"), timeout=5)
        second = await client.request("POST", server.url("/2"), body=b"payload", timeout=5)
    assert (first.body, second.body) == (b"first", b"fresh")
    assert len(server.connections) == 2
    assert [r.target for r in server.requests] == ["/1", "/2", "/2"]
    assert server.requests[2].body == b"payload"
    assert client.connections_in_use == 0


async def test_stale_connection_reset_is_retried(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        if conn.index == 0:
            await conn.read_request()
            await conn.send(answer(b"first"))
            await conn.read_request()
            conn.abort()  # RST instead of FIN
            return
        await keep_answering(answer(b"fresh"))(conn)

    async with RawServer(handler) as server:
        await client.request("GET", server.url(), timeout=5)
        second = await client.request("GET", server.url(), timeout=5)
    assert second.body == b"fresh"
    assert len(server.connections) == 2


async def test_stream_retries_a_stale_connection_too(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        if conn.index == 0:
            await conn.read_request()
            await conn.send(answer(b"first"))
            await conn.read_request()
            conn.close()
            return
        await keep_answering(answer(b"fresh"))(conn)

    async with RawServer(handler) as server:
        await client.request("GET", server.url(), timeout=5)
        async with client.stream("GET", server.url(), timeout=5) as response:
            body = b"".join([chunk async for chunk in response.iter_chunks()])
    assert body == b"fresh"
    assert len(server.connections) == 2


async def test_no_retry_once_part_of_the_answer_came(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        if conn.index == 0:
            await conn.read_request()
            await conn.send(answer(b"first"))
            await conn.read_request()
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            conn.close()
            return
        await keep_answering(answer(b"later"))(conn)

    async with RawServer(handler) as server:
        await client.request("GET", server.url("/1"), timeout=5)
        with pytest.raises(ConnectionClosedError):
            await client.request("POST", server.url("/2"), body=b"x", timeout=5)
        assert len(server.connections) == 1  # not sent again
        assert [r.target for r in server.requests] == ["/1", "/2"]
        assert client.connections_in_use == 0
        later = await client.request("GET", server.url("/3"), timeout=5)
    assert later.body == b"later"
    assert len(server.connections) == 2


async def test_no_retry_once_part_of_the_head_came(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        if conn.index == 0:
            await conn.read_request()
            await conn.send(answer(b"first"))
            await conn.read_request()
            await conn.send(b"HTTP/1.1 200 O")
            conn.close()
            return
        await keep_answering(answer())(conn)

    async with RawServer(handler) as server:
        await client.request("GET", server.url(), timeout=5)
        with pytest.raises(ConnectionClosedError):
            await client.request("GET", server.url(), timeout=5)
    assert len(server.connections) == 1


async def test_no_retry_on_a_fresh_connection(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        conn.close()

    async with RawServer(handler) as server:
        with pytest.raises(ConnectionClosedError):
            await client.request("GET", server.url(), timeout=5)
    assert len(server.connections) == 1
    assert client.connections_in_use == 0


async def test_the_retry_happens_once(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        if conn.index == 0:
            await conn.send(answer(b"first"))
            await conn.read_request()
        conn.close()

    async with RawServer(handler) as server:
        await client.request("GET", server.url(), timeout=5)
        with pytest.raises(ConnectionClosedError):
            await client.request("GET", server.url(), timeout=5)
    assert len(server.connections) == 2  # the reused one and one fresh retry


async def test_expired_idle_connection_is_not_reused() -> None:
    async with (
        RawServer(keep_answering(answer())) as server,
        WireClient(keepalive_timeout=0.05) as client,
    ):
        await client.request("GET", server.url(), timeout=5)
        await anyio.sleep(0.2)
        await client.request("GET", server.url(), timeout=5)
        assert len(server.connections) == 2
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()  # the expired one was closed


async def test_idle_connection_within_keepalive_is_reused() -> None:
    async with (
        RawServer(keep_answering(answer())) as server,
        WireClient(keepalive_timeout=30) as client,
    ):
        await client.request("GET", server.url(), timeout=5)
        await anyio.sleep(0.1)
        await client.request("GET", server.url(), timeout=5)
    assert len(server.connections) == 1


async def test_server_closing_an_idle_connection_is_noticed(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(answer())
        conn.close()

    async with RawServer(handler) as server:
        await client.request("GET", server.url(), timeout=5)
        await wait_until(lambda: client.idle_connections == 0)
        await client.request("GET", server.url(), timeout=5)
    assert len(server.connections) == 2
    assert len(server.requests) == 2  # the closed connection was not tried


async def test_unsolicited_bytes_on_an_idle_connection_drop_it(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(answer(b"one"))
        await anyio.sleep(0.05)
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra")
        await conn.until_eof()

    async with RawServer(handler) as server:
        await client.request("GET", server.url(), timeout=5)
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
        assert client.idle_connections == 0
        server.handler = keep_answering(answer(b"two"))
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == b"two"
    assert len(server.connections) == 2


async def test_bytes_after_the_answer_in_the_same_read(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        if conn.index == 0:
            await conn.read_request()
            await conn.send(answer(b"A") + answer(b"B", headers=[("X-Smuggled", "1")]))
        while await conn.read_request() is not None:
            await conn.send(answer(b"C"))

    async with RawServer(handler) as server:
        first = await client.request("GET", server.url(), timeout=5)
        second = await client.request("GET", server.url(), timeout=5)
    assert first.body == b"A"
    assert "x-smuggled" not in first.headers
    assert second.body == b"C"
    assert len(server.connections) == 2  # the out-of-step connection was dropped
