"""The simulated image host over real HTTP: images, faulty images, redirects, counters."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import anyio
import pytest
from PIL import Image

from genevolve_async.sim import Faults, SimImageHost, SimServer, make_bomb_png

Served = tuple[SimImageHost, str, aiohttp.ClientSession]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    host = SimImageHost(oversized_bytes=200_000, slow_delay=0.01, stall_seconds=5)
    async with SimServer(host.app) as server, aiohttp.ClientSession() as session:
        yield host, server.url, session


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes, str | None]:
    async with session.get(url, allow_redirects=False) as resp:
        return resp.status, resp.content_type, await resp.read(), resp.headers.get("Location")


def decodes(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception:
        return False
    return True


async def test_each_name_gets_its_own_decodable_png(served: Served) -> None:
    host, url, session = served
    status, ctype, first, _ = await get(session, f"{url}/img/a.png")
    _, _, second, _ = await get(session, f"{url}/img/b.png")
    assert status == 200 and ctype == "image/png"
    assert decodes(first) and decodes(second) and first != second
    assert first == host.image_bytes("a.png")
    assert host.downloads == {"a.png": 1, "b.png": 1}


@pytest.mark.parametrize(
    ("name", "status", "ctype", "decodable"),
    [
        ("f-corrupt-x.png", 200, "image/png", False),
        ("f-truncated-x.png", 200, "image/png", False),
        ("f-html-x.png", 200, "text/html", False),
        ("f-wrongtype-x.png", 200, "text/html", True),
        ("f-slow-x.png", 200, "image/png", True),
        ("f-status404-x.png", 404, "application/json", False),
        ("f-status503-x.png", 503, "application/json", False),
        ("f-unknown-x.png", 200, "image/png", True),
    ],
)
async def test_faulty_images_by_name(
    served: Served, name: str, status: int, ctype: str, decodable: bool
) -> None:
    _, url, session = served
    got_status, got_type, data, _ = await get(session, f"{url}/img/{name}")
    assert (got_status, got_type, decodes(data)) == (status, ctype, decodable)


async def test_oversized_bodies_with_and_without_length(served: Served) -> None:
    _, url, session = served
    async with session.get(f"{url}/img/f-huge-x.png") as resp:
        assert resp.content_length == 200_000
        assert len(await resp.read()) == 200_000
    async with session.get(f"{url}/img/f-hugestream-x.png") as resp:
        assert resp.content_length is None
        assert len(await resp.read()) >= 200_000


async def test_bomb_claims_a_huge_size() -> None:
    data = make_bomb_png(30000, 30000)
    assert len(data) < 10_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))


async def test_stall_sends_a_little_then_nothing(served: Served) -> None:
    _, url, session = served
    async with session.get(f"{url}/img/f-stall-x.png") as resp:
        assert resp.status == 200
        assert len(await resp.content.readexactly(32)) == 32
        with anyio.move_on_after(0.2) as scope:
            await resp.content.read(1)
        assert scope.cancelled_caught


async def test_redirect_chains_and_redirect_to(served: Served) -> None:
    host, url, session = served
    assert await get(session, f"{url}/redirect/2/r.png") == (
        302,
        "application/octet-stream",
        b"",
        "/redirect/1/r.png",
    )
    assert (await get(session, f"{url}/redirect/1/r.png"))[3] == "/img/r.png"
    target = "http://example.invalid/elsewhere.png"
    assert (await get(session, f"{url}/redirect-to?url={target}"))[3] == target
    assert (await get(session, f"{url}/redirect-to"))[0] == 400
    async with session.get(f"{url}/redirect/3/r.png") as resp:  # following them ends at the image
        assert resp.status == 200 and await resp.read() == host.image_bytes("r.png")


async def test_random_faults_on_images() -> None:
    host = SimImageHost(faults=Faults(rate_429=1.0, retry_after=3))
    async with (
        SimServer(host.app) as server,
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/img/a.png") as resp,
    ):
        assert resp.status == 429 and resp.headers["Retry-After"] == "3"
    assert host.stats.route("GET /img/{name}").statuses == {429: 1}
