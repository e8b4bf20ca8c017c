"""Connection limits: all origins together, per origin, and waiters that leave."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio
import pytest

from genevolve_async._wire import WireClient
from genevolve_async._wire import _client as wire_client_module

from ._raw import RawServer, ServerConn, answer, keep_answering


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        WireClient(max_connections=0)
    with pytest.raises(ValueError):
        WireClient(max_connections_per_host=-1)


async def test_max_connections_caps_concurrency() -> None:
    async with (
        RawServer(keep_answering(answer(b"slow"), delay=0.05)) as server,
        WireClient(max_connections=2) as client,
    ):
        results: list[bytes] = []

        async def one(i: int) -> None:
            response = await client.request("GET", server.url(f"/{i}"), timeout=10)
            assert client.connections_in_use <= 2
            results.append(response.body)

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(one, i)
        assert results == [b"slow"] * 10
        assert server.max_in_flight == 2
        assert server.max_open <= 2
        assert len(server.connections) <= 2
        assert sorted(r.target for r in server.requests) == sorted(f"/{i}" for i in range(10))
        assert client.connections_in_use == 0


async def test_max_connections_counts_all_origins_together() -> None:
    both = {"now": 0, "peak": 0}

    def counting(body: bytes) -> Callable[[ServerConn], Awaitable[None]]:
        async def handler(conn: ServerConn) -> None:
            while await conn.read_request() is not None:
                both["now"] += 1
                both["peak"] = max(both["peak"], both["now"])
                await anyio.sleep(0.05)
                both["now"] -= 1
                await conn.send(answer(body))

        return handler

    async with (
        RawServer(counting(b"a")) as first,
        RawServer(counting(b"b")) as second,
        WireClient(max_connections=2) as client,
    ):

        async def one(url: str) -> None:
            assert (await client.request("GET", url, timeout=10)).status == 200

        async with anyio.create_task_group() as tg:
            for server in (first, second) * 4:
                tg.start_soon(one, server.url())
        assert both["peak"] == 2
        assert len(first.requests) == len(second.requests) == 4
        assert client.connections_in_use == 0


async def test_max_connections_per_host_caps_each_origin() -> None:
    async with (
        RawServer(keep_answering(answer(b"a"), delay=0.05)) as first,
        RawServer(keep_answering(answer(b"b"), delay=0.05)) as second,
        WireClient(max_connections_per_host=2) as client,
    ):
        peak = 0

        async def one(url: str) -> None:
            nonlocal peak
            response = await client.request("GET", url, timeout=10)
            assert response.status == 200

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, first.in_flight + second.in_flight)
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            async with anyio.create_task_group() as inner:
                for _ in range(10):
                    inner.start_soon(one, first.url())
                    inner.start_soon(one, second.url())
            tg.cancel_scope.cancel()
        assert first.max_in_flight == 2
        assert second.max_in_flight == 2
        assert len(first.connections) <= 2 and len(second.connections) <= 2
        assert peak > 2  # the two origins ran side by side
        assert client.connections_in_use == 0


async def settle() -> None:
    """Let tasks just started run up to their first real wait (a slot, a socket)."""
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


def held_handler(release: asyncio.Event) -> Callable[[ServerConn], Awaitable[None]]:
    """A keep-alive handler that answers each request once ``release`` is set."""

    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            with conn.in_flight():
                await release.wait()
                await conn.send(answer(b"held"))

    return handler


@pytest.mark.parametrize("leaves", ["cancelled", "timed_out"])
async def test_a_waiter_that_leaves_leaks_no_slot(leaves: str) -> None:
    release = asyncio.Event()
    async with (
        RawServer(held_handler(release)) as server,
        WireClient(max_connections=1) as client,
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.request, "GET", server.url("/held"))
            await server.wait_for_requests(1)
            if leaves == "cancelled":
                with anyio.move_on_after(0.1) as scope:
                    await client.request("GET", server.url("/waiter"))
                assert scope.cancelled_caught
            else:
                with pytest.raises(TimeoutError):
                    await client.request("GET", server.url("/waiter"), timeout=0.1)
            assert client.connections_in_use == 1
            release.set()
        assert client.connections_in_use == 0
        with anyio.fail_after(5):
            response = await client.request("GET", server.url("/after"))
        assert response.body == b"held"
        assert [r.target for r in server.requests] == ["/held", "/after"]


async def test_many_cancelled_waiters_then_full_use() -> None:
    release = asyncio.Event()
    async with (
        RawServer(held_handler(release)) as server,
        WireClient(max_connections=2) as client,
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.request, "GET", server.url())
            tg.start_soon(client.request, "GET", server.url())
            await server.wait_for_requests(2)
            async with anyio.create_task_group() as waiters:
                for _ in range(5):
                    waiters.start_soon(client.request, "GET", server.url())
                await anyio.sleep(0.05)
                waiters.cancel_scope.cancel()
            release.set()
        assert client.connections_in_use == 0
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(client.request, "GET", server.url())
        assert server.max_in_flight == 2


async def test_woken_waiter_gets_the_slot() -> None:
    release = asyncio.Event()
    async with (
        RawServer(held_handler(release)) as server,
        WireClient(max_connections=1) as client,
    ):
        done: list[str] = []

        async def one(name: str) -> None:
            await client.request("GET", server.url(f"/{name}"), timeout=5)
            done.append(name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "a")
            await server.wait_for_requests(1)
            tg.start_soon(one, "b")
            tg.start_soon(one, "c")
            await anyio.sleep(0.05)
            release.set()
        assert sorted(done) == ["a", "b", "c"]
        assert server.max_in_flight == 1


async def test_per_host_free_slot_wakes_a_waiter_that_can_use_it() -> None:
    release_a = asyncio.Event()
    never = asyncio.Event()
    async with (
        RawServer(held_handler(release_a)) as host_a,
        RawServer(held_handler(never)) as host_b,
        WireClient(max_connections_per_host=1) as client,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(client.request, "GET", host_a.url("/a1"))
        tg.start_soon(client.request, "GET", host_b.url("/b1"))
        await host_a.wait_for_requests(1)
        await host_b.wait_for_requests(1)
        tg.start_soon(client.request, "GET", host_b.url("/b2"))  # waits for B
        await settle()
        finished = anyio.Event()

        async def a2() -> None:
            await client.request("GET", host_a.url("/a2"))
            finished.set()

        tg.start_soon(a2)  # waits for A, queued after b2
        await settle()
        release_a.set()  # a1 finishes: its slot should go to a2
        try:
            with anyio.fail_after(1):
                await finished.wait()
        finally:
            tg.cancel_scope.cancel()


async def test_sweep_while_waiting_does_not_orphan_a_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wire_client_module, "_PRUNE_EVERY", -1.0)  # sweep on every release
    release = asyncio.Event()
    async with (
        RawServer(held_handler(release)) as host_a,
        RawServer(keep_answering(answer(b"b"))) as host_b,
    ):
        client = WireClient(max_connections=1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.request, "GET", host_a.url())
            await host_a.wait_for_requests(1)
            tg.start_soon(client.request, "GET", host_b.url())  # waits for the slot
            await settle()
            release.set()
        await client.request("GET", host_b.url(), timeout=5)
        assert len(host_b.connections) == 1  # the second B request reused the first's
        await client.aclose()
        with anyio.fail_after(2):
            await host_b.connections[0].eof.wait()  # aclose closed it
