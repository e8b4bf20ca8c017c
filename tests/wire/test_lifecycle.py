"""Closing the client: idle connections close, later requests raise, waiters leave."""

from __future__ import annotations

import asyncio
import gc

import anyio
import pytest

from genevolve_async._wire import WireClient, WireResponse

from ._raw import RawServer, ServerConn, answer, keep_answering, wait_until


async def test_aclose_closes_idle_connections() -> None:
    async with (
        RawServer(keep_answering(answer(b"a"))) as first,
        RawServer(keep_answering(answer(b"b"))) as second,
    ):
        client = WireClient()
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(client.request, "GET", first.url())
                tg.start_soon(client.request, "GET", second.url())
        assert client.idle_connections == len(first.connections) + len(second.connections)
        await client.aclose()
        assert client.idle_connections == 0
        with anyio.fail_after(5):
            for conn in first.connections + second.connections:
                await conn.eof.wait()
        with pytest.raises(RuntimeError, match="closed"):
            await client.request("GET", first.url(), timeout=5)
        with pytest.raises(RuntimeError, match="closed"):
            async with client.stream("GET", first.url(), timeout=5):
                pytest.fail("entered")  # pragma: no cover
        await client.aclose()  # idempotent
        assert client.connections_in_use == 0


async def test_async_with_closes() -> None:
    async with RawServer(keep_answering(answer())) as server:
        async with WireClient() as client:
            await client.request("GET", server.url(), timeout=5)
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
        with pytest.raises(RuntimeError):
            await client.request("GET", server.url(), timeout=5)


async def test_aclose_wakes_waiters() -> None:
    release = asyncio.Event()

    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await release.wait()
            await conn.send(answer(b"held"))

    async with RawServer(handler) as server:
        client = WireClient(max_connections=1)
        outcomes: list[str] = []

        async def waiter() -> None:
            try:
                await client.request("GET", server.url("/waiter"), timeout=5)
            except RuntimeError:
                outcomes.append("closed")

        async def held() -> None:
            try:
                await client.request("GET", server.url("/held"), timeout=5)
            except OSError:
                pass  # closing the client may fail the request in flight

        async with anyio.create_task_group() as tg:
            tg.start_soon(held)
            await server.wait_for_requests(1)
            tg.start_soon(waiter)
            await anyio.sleep(0.05)
            await client.aclose()
            await wait_until(lambda: bool(outcomes))
            release.set()
        assert outcomes == ["closed"]
        assert [r.target for r in server.requests] == ["/held"]


async def test_answer_arriving_after_aclose_is_not_kept() -> None:
    release = asyncio.Event()

    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await release.wait()
            await conn.send(answer(b"late"))

    async with RawServer(handler) as server:
        client = WireClient()
        results: list[bytes | str] = []

        async def one() -> None:
            try:
                results.append((await client.request("GET", server.url(), timeout=5)).body)
            except OSError:
                results.append("failed")

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            await server.wait_for_requests(1)
            await client.aclose()
            release.set()
        # Whether the request in flight fails or finishes, its socket is not kept.
        assert results in ([b"late"], ["failed"])
        assert client.idle_connections == 0
        assert client.connections_in_use == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()


async def test_aclose_fails_requests_in_flight() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.until_eof()

    async with RawServer(handler) as server:
        client = WireClient()
        failed = anyio.Event()

        async def one() -> None:
            try:
                await client.request("GET", server.url())
            except OSError:
                failed.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            await server.wait_for_requests(1)
            await client.aclose()
            try:
                with anyio.fail_after(1):
                    await failed.wait()
            finally:
                tg.cancel_scope.cancel()


async def test_finished_answers_are_freed_without_the_cyclic_gc(client: WireClient) -> None:
    # The parser and its answer refer to each other until the answer ends; a
    # cycle left behind would wait for the cyclic GC, which the bench slows.
    async with RawServer(keep_answering(answer(b"freed"))) as server:
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                response = await client.request("GET", server.url(), timeout=5)
                assert response.body == b"freed"
            del response
            alive = [o for o in gc.get_objects() if isinstance(o, WireResponse)]
        finally:
            gc.enable()
    assert alive == []
