"""Timeouts and cancellation: the exchange ends, the connection closes, nothing leaks."""

from __future__ import annotations

import time

import anyio
import pytest

from genevolve_async._wire import WireClient

from ._raw import RawServer, ServerConn, answer, keep_answering

TIMEOUT = 0.3
SLACK = 2.0  # generous: these assert "roughly the timeout", never a tight wall time


async def _never_answer(conn: ServerConn) -> None:
    await conn.read_request()
    await conn.until_eof()


async def _part_then_whole(conn: ServerConn) -> None:
    """The first connection gets part of a body and then silence; later ones whole answers."""
    if conn.index == 0:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        await conn.until_eof()
    else:
        await keep_answering(answer(b"whole"))(conn)


async def _answer_later_connections(conn: ServerConn) -> None:
    """Connection 0 never answers; later connections answer normally."""
    if conn.index == 0:
        await _never_answer(conn)
    else:
        await keep_answering(answer(b"later"))(conn)


async def test_no_answer_times_out_and_closes(client: WireClient) -> None:
    async with RawServer(_answer_later_connections) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            await client.request("GET", server.url(), timeout=TIMEOUT)
        elapsed = time.monotonic() - started
        assert TIMEOUT * 0.5 <= elapsed < TIMEOUT + SLACK
        assert "0.3" in str(caught.value)
        assert client.connections_in_use == 0
        assert client.idle_connections == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == b"later"


async def test_body_that_stalls_times_out(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        await conn.until_eof()

    async with RawServer(handler) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.request("GET", server.url(), timeout=TIMEOUT)
        assert time.monotonic() - started < TIMEOUT + SLACK
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
    assert client.connections_in_use == 0


async def test_timeout_covers_a_trickling_answer(client: WireClient) -> None:
    """The timeout is for the whole exchange, not between bytes."""

    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            await conn.send(b"x")
            await anyio.sleep(0.02)

    async with RawServer(handler) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.request("GET", server.url(), timeout=TIMEOUT)
        assert time.monotonic() - started < TIMEOUT + SLACK


async def test_a_finished_request_leaves_no_timer_behind(client: WireClient) -> None:
    async with RawServer(keep_answering(answer())) as server:
        await client.request("GET", server.url(), timeout=0.1)
        await anyio.sleep(0.3)  # past the first request's deadline
        assert client.idle_connections == 1
        await client.request("GET", server.url(), timeout=5)
    assert len(server.connections) == 1


async def test_connect_timeout_from_a_slow_resolver() -> None:
    async def slow_resolve(host: str, port: int) -> list[str]:
        await anyio.sleep(30)
        return ["127.0.0.1"]  # pragma: no cover

    async with WireClient(connect_timeout=TIMEOUT, resolve=slow_resolve) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            await client.request("GET", "http://slow.test:8080/")
        assert time.monotonic() - started < TIMEOUT + SLACK
        assert "slow.test:8080" in str(caught.value)
        assert client.connections_in_use == 0


async def test_request_timeout_bounds_connecting() -> None:
    async def slow_resolve(host: str, port: int) -> list[str]:
        await anyio.sleep(30)
        return ["127.0.0.1"]  # pragma: no cover

    async with WireClient(connect_timeout=60, resolve=slow_resolve) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.request("GET", "http://slow.test/", timeout=TIMEOUT)
        assert time.monotonic() - started < TIMEOUT + SLACK
        assert client.connections_in_use == 0


async def test_stream_timeout_covers_the_body(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
        await conn.until_eof()

    async with RawServer(handler) as server:
        chunks: list[bytes] = []
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with client.stream("GET", server.url(), timeout=TIMEOUT) as response:
                assert response.status == 200
                async for chunk in response.iter_chunks():
                    chunks.append(chunk)
        assert time.monotonic() - started < TIMEOUT + SLACK
        assert b"".join(chunks) == b"first"
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
    assert client.connections_in_use == 0


async def test_stream_head_timeout(client: WireClient) -> None:
    async with RawServer(_never_answer) as server:
        with pytest.raises(TimeoutError):
            async with client.stream("GET", server.url(), timeout=TIMEOUT):
                pytest.fail("no head arrived")  # pragma: no cover
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
    assert client.connections_in_use == 0


# -- cancellation ------------------------------------------------------------------


async def test_cancelled_request_closes_its_connection(client: WireClient) -> None:
    async with RawServer(_answer_later_connections) as server:
        with anyio.move_on_after(TIMEOUT) as scope:
            await client.request("GET", server.url())
        assert scope.cancelled_caught
        assert client.connections_in_use == 0
        assert client.idle_connections == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == b"later"
    assert len(server.connections) == 2


async def test_cancelled_mid_body_closes_its_connection(client: WireClient) -> None:
    async with RawServer(_part_then_whole) as server:
        with anyio.move_on_after(TIMEOUT):
            await client.request("GET", server.url())
        assert client.connections_in_use == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == b"whole"


async def test_cancelled_in_a_task_group(client: WireClient) -> None:
    async with RawServer(_answer_later_connections) as server:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.request, "GET", server.url())
            await server.wait_for_requests(1)
            assert client.connections_in_use == 1
            tg.cancel_scope.cancel()
        assert client.connections_in_use == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
        assert (await client.request("GET", server.url(), timeout=5)).body == b"later"


async def test_cancelled_while_connecting() -> None:
    started = anyio.Event()

    async def slow_resolve(host: str, port: int) -> list[str]:
        started.set()
        await anyio.sleep(30)
        return ["127.0.0.1"]  # pragma: no cover

    async with WireClient(resolve=slow_resolve) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.request, "GET", "http://slow.test/")
            await started.wait()
            assert client.connections_in_use == 1  # opening counts
            tg.cancel_scope.cancel()
        assert client.connections_in_use == 0


async def test_cancelled_stream_closes_its_connection(client: WireClient) -> None:
    async with RawServer(_part_then_whole) as server:
        with anyio.move_on_after(TIMEOUT):
            async with client.stream("GET", server.url()) as response:
                async for _ in response.iter_chunks():
                    pass
        assert client.connections_in_use == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
        assert (await client.request("GET", server.url(), timeout=5)).body == b"whole"
