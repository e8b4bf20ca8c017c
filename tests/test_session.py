"""The runtime's one session: proxies, no duplicate POSTs, bounded answers, control bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web

from genevolve_async import (
    ConfigurationError,
    PolicyClient,
    RetryPolicy,
    Runtime,
    ServiceUnavailableError,
)
from genevolve_async._provider_call import post_json
from genevolve_async.renderers import QwenServiceRenderer
from genevolve_async.sim import SimPolicy, SimQwenService, SimSerper, SimServer
from genevolve_async.tools import ImageCache, ImageCacheSettings, SerperBackend

KEY = "sk-proxy-test-key-1234567890"


class ForwardProxy:
    """A loopback HTTP forward proxy that counts what it forwards.

    Requests arrive in absolute form (``GET http://serper.example/search``);
    ``routes`` maps the external host names onto the loopback servers that
    play them.
    """

    def __init__(self, routes: dict[str, str]) -> None:
        self.routes = routes
        self.forwarded: list[str] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session: aiohttp.ClientSession | None = None

    async def _forward(self, request: web.Request) -> web.Response:
        host = request.url.host or ""
        self.forwarded.append(f"{request.method} {host}{request.path}")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        target = self.routes[host] + request.path_qs
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with self._session.request(
            request.method, target, data=await request.read(), headers=headers
        ) as resp:
            body = await resp.read()
            return web.Response(body=body, status=resp.status, content_type=resp.content_type)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


@pytest.fixture
async def sims() -> AsyncIterator[tuple[str, str]]:
    async with (
        SimServer(SimPolicy().app) as policy,
        SimServer(SimSerper(api_key=KEY).app) as serper,
    ):
        yield policy.url, serper.url


async def test_external_providers_go_through_the_proxy_and_loopback_goes_direct(
    sims: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policy_url, serper_url = sims
    proxy = ForwardProxy({"policy.example": policy_url, "serper.example": serper_url})
    async with SimServer(proxy.app) as server:
        monkeypatch.setenv("HTTP_PROXY", server.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        try:
            async with Runtime() as runtime:
                serper = SerperBackend(base_url="http://serper.example", api_key=KEY)
                assert await serper.search(runtime, "a fox", 3)
                for route in ("lean", "openai"):
                    client = PolicyClient(
                        runtime, base_urls="http://policy.example/v1", model="m", route=route
                    )
                    await client.complete([{"role": "user", "content": "hi"}])
                forwarded = list(proxy.forwarded)
                # Loopback never takes the proxy.
                direct = SerperBackend(base_url=serper_url, api_key=KEY)
                assert await direct.search(runtime, "a fox", 3)
        finally:
            await proxy.aclose()
    assert forwarded == [
        "POST serper.example/search",
        "POST policy.example/v1/chat/completions",
        "POST policy.example/v1/chat/completions",
    ]
    assert proxy.forwarded == forwarded


async def test_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = ForwardProxy({})
    async with SimServer(proxy.app) as server:
        monkeypatch.setenv("HTTP_PROXY", server.url)
        monkeypatch.setenv("NO_PROXY", "serper.invalid")
        async with Runtime(retry=RetryPolicy(attempts=1)) as runtime:
            serper = SerperBackend(base_url="http://serper.invalid", api_key=KEY)
            with pytest.raises(ServiceUnavailableError):  # direct: the name does not resolve
                await serper.search(runtime, "q", 1)
    assert proxy.forwarded == []


# -- no duplicate side effects ----------------------------------------------------


class DroppingServer:
    """Reads each POST's body, then drops the connection without answering."""

    def __init__(self) -> None:
        self.posts = 0
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self._drop)

    async def _drop(self, request: web.Request) -> web.Response:
        await request.read()
        self.posts += 1
        assert request.transport is not None
        request.transport.abort()
        await anyio.sleep(10)
        raise AssertionError("unreachable")


async def test_a_post_that_reached_the_server_is_sent_once(tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(ref)
    dropping = DroppingServer()
    retry = RetryPolicy(attempts=4, initial=0.01, jitter=0)
    async with SimServer(dropping.app) as server, Runtime(retry=retry) as runtime:
        # The transport alone never re-sends it.
        with pytest.raises(ServiceUnavailableError) as info:
            await post_json(runtime.http, server.url + "/x", b"{}", service="t")
        assert info.value.retryable is False
        assert dropping.posts == 1
        # Nor does a provider that is not safe to repeat, retries or not.
        renderer = QwenServiceRenderer(server.url, runtime=runtime, max_in_flight_per_url=1)
        with pytest.raises(ServiceUnavailableError):
            await renderer.render("p", [ref])
        assert dropping.posts == 2


async def test_a_connect_failure_is_retried_elsewhere(tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(ref)
    sim = SimQwenService()
    with anyio.fail_after(20):
        async with (
            SimServer(sim.app) as good,
            Runtime(retry=RetryPolicy(attempts=3, initial=0.01, jitter=0)) as runtime,
        ):
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            await listener.aclose()  # a port nobody listens on: refused before sending
            renderer = QwenServiceRenderer(
                [f"http://127.0.0.1:{port}", good.url], runtime=runtime, max_in_flight_per_url=1
            )
            for _ in range(2):
                await renderer.render("p", [ref])
    assert sim.renders == 2


# -- bounded answers ------------------------------------------------------------


async def _serve_forever(chunk: bytes, sent: list[int]) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        try:
            while True:
                writer.write(chunk)
                sent[0] += len(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    "chunk", [b"X-Flood: yes\r\n" * 64, b"a" * 65536], ids=["header-lines", "one-endless-line"]
)
async def test_an_image_host_sending_headers_for_ever_is_cut_off(
    tmp_path: Path, chunk: bytes
) -> None:
    sent = [0]
    server, port = await _serve_forever(chunk, sent)
    settings = ImageCacheSettings(folder=tmp_path, allow_private=True, timeout=30)
    try:
        with anyio.fail_after(10):  # a hang detector, not a timing assertion
            async with Runtime() as runtime:
                cache = await ImageCache.for_runtime(runtime, settings)
                assert await cache.fetch(f"http://127.0.0.1:{port}/flood.png") is None
                assert dict(cache.stats.dropped) == {"network": 1}
    finally:
        server.close()
    # Cut off within the header limits plus what the sockets buffered, not gigabytes.
    assert sent[0] < 32 * 2**20


async def test_a_policy_answer_past_the_body_limit_is_refused() -> None:
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"1," * 600_000 + b"1]", content_type="application/json")

    app = web.Application()
    app.router.add_post("/x", big)
    async with SimServer(app) as server, Runtime() as runtime:
        with pytest.raises(Exception, match="limit"):
            await post_json(runtime.http, server.url + "/x", b"{}", service="t", max_bytes=1000)


async def test_control_bytes_never_reach_the_wire() -> None:
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    async with SimServer(app) as server, Runtime() as runtime:
        await post_json(runtime.http, server.url + "/a\x00b\x0bc\x7fd", b"{}", service="t")
        for bad in ("a\x00b", "a\x0bb", "a\x7fb", "a\r\nX-Injected: 1"):
            with pytest.raises(ConfigurationError):
                await post_json(
                    runtime.http, server.url + "/h", b"{}", service="t", headers={"X-Key": bad}
                )
    assert seen == ["/a%00b%0Bc%7Fd"]  # percent-encoded, never raw


async def test_a_capped_pool_warns_once_when_requests_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await anyio.sleep(0.05)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/x", slow)
    async with (
        SimServer(app) as server,
        Runtime(max_connections=2) as runtime,
        anyio.create_task_group() as tg,
    ):
        for _ in range(8):
            tg.start_soon(partial(post_json, runtime.http, server.url + "/x", b"{}", service="t"))
    warnings = [r for r in caplog.records if "queueing for a connection" in r.getMessage()]
    assert len(warnings) == 1


async def test_guarded_downloads_go_through_the_proxy_and_keep_the_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genevolve_async.sim import SimImageHost

    host = SimImageHost()
    async with SimServer(host.app) as images:
        proxy = ForwardProxy({"images.example": images.url})
        async with SimServer(proxy.app) as server:
            monkeypatch.setenv("HTTP_PROXY", server.url)
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            settings = ImageCacheSettings(folder=tmp_path, allow_private=False)
            try:
                async with Runtime() as runtime:
                    cache = await ImageCache.for_runtime(runtime, settings)
                    # The name does not resolve here (no DNS of our own): the proxy
                    # resolves it, and the connection to the user's proxy is allowed.
                    assert await cache.fetch("http://images.example/img/a.png") is not None
                    # A private literal is refused before anything is sent.
                    assert await cache.fetch("http://10.1.2.3/img/b.png") is None
                    assert dict(cache.stats.dropped) == {"private_address": 1}
            finally:
                await proxy.aclose()
    assert proxy.forwarded == ["GET images.example/img/a.png"]
