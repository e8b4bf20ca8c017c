"""The ``resolve`` hook: what it is asked, what its addresses do, and its errors."""

from __future__ import annotations

import anyio
import pytest

from genevolve_async._wire import WireClient

from ._raw import RawServer, answer, keep_answering


class Recorder:
    """A resolver that records its calls and answers fixed addresses."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        await anyio.lowlevel.checkpoint()
        return list(self.addresses)


async def test_resolver_is_asked_and_its_address_used() -> None:
    resolve = Recorder(["127.0.0.1"])
    async with (
        RawServer(keep_answering(answer(b"via resolver"))) as server,
        WireClient(resolve=resolve) as client,
    ):
        url = f"http://Images.Test:{server.port}/cat.png"
        response = await client.request("GET", url, timeout=5)
        again = await client.request("GET", url, timeout=5)
    assert response.body == again.body == b"via resolver"
    assert resolve.calls == [("images.test", server.port)]  # once: the second reused
    assert server.requests[0].header("Host") == f"images.test:{server.port}"


async def test_resolver_port_defaults_by_scheme() -> None:
    resolve = Recorder([])
    async with WireClient(resolve=resolve) as client:
        for url in ("http://a.test/", "https://b.test/x", "http://c.test:8080/"):
            with pytest.raises(OSError):
                await client.request("GET", url, timeout=5)
    assert resolve.calls == [("a.test", 80), ("b.test", 443), ("c.test", 8080)]


async def test_next_address_is_tried_when_one_refuses() -> None:
    # 127.0.0.2 is loopback too, but nothing listens there on this port.
    resolve = Recorder(["127.0.0.2", "127.0.0.1"])
    async with (
        RawServer(keep_answering(answer(b"second address"))) as server,
        WireClient(resolve=resolve) as client,
    ):
        response = await client.request("GET", f"http://two.test:{server.port}/", timeout=5)
    assert response.body == b"second address"
    assert len(server.connections) == 1


async def test_every_address_refusing_raises_the_last_error() -> None:
    async with RawServer(keep_answering(answer())) as server:
        port = server.port
    resolve = Recorder(["127.0.0.2", "127.0.0.1"])  # the server is gone: both refuse
    async with WireClient(resolve=resolve) as client:
        with pytest.raises(ConnectionRefusedError):
            await client.request("GET", f"http://gone.test:{port}/", timeout=5)
        assert client.connections_in_use == 0


class Refused(OSError):
    """What an address guard raises for a name it will not connect to."""


async def test_resolver_oserror_surfaces_as_is() -> None:
    error = Refused("private address refused: 10.0.0.1")

    async def refuse(host: str, port: int) -> list[str]:
        raise error

    async with WireClient(resolve=refuse) as client:
        with pytest.raises(Refused) as caught:
            await client.request("GET", "http://internal.test/", timeout=5)
        assert caught.value is error
        assert client.connections_in_use == 0
        with pytest.raises(Refused):
            async with client.stream("GET", "http://internal.test/", timeout=5):
                pytest.fail("entered")  # pragma: no cover
        assert client.connections_in_use == 0


async def test_resolver_with_no_address() -> None:
    async with WireClient(resolve=Recorder([])) as client:
        with pytest.raises(OSError, match="no address"):
            await client.request("GET", "http://empty.test/", timeout=5)
        assert client.connections_in_use == 0


async def test_resolver_is_asked_for_each_new_connection() -> None:
    resolve = Recorder(["127.0.0.1"])
    reply = answer(b"", headers=[("Connection", "close")])
    async with (
        RawServer(keep_answering(reply)) as server,
        WireClient(resolve=resolve) as client,
    ):
        for _ in range(3):
            await client.request("GET", f"http://fresh.test:{server.port}/", timeout=5)
    assert len(resolve.calls) == 3
    assert len(server.connections) == 3
