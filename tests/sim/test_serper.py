"""The simulated Serper over real HTTP: shapes, auth, faults, rate limit, statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

from genevolve_async._limits import max_in_window
from genevolve_async.sim import Faults, Latency, SimSerper, SimServer

KEY = "sim-key"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, key: str | None = KEY
) -> tuple[int, Any, Any]:
    headers = {"X-API-KEY": key} if key is not None else {}
    async with session.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def test_search_has_serpers_shape(session: aiohttp.ClientSession) -> None:
    sim = SimSerper(api_key=KEY)
    async with SimServer(sim.app) as server:
        status, data, _ = await post(session, server.url + "/search", {"q": "Mont Blanc", "num": 4})
    assert status == 200
    assert data["searchParameters"] == {
        "q": "Mont Blanc",
        "type": "search",
        "num": 4,
        "engine": "google",
    }
    assert data["credits"] == 1
    organic = data["organic"]
    assert [o["position"] for o in organic] == [1, 2, 3, 4]
    assert all({"title", "link", "snippet"} <= set(o) for o in organic)
    assert "sitelinks" in organic[0] and "date" in organic[1]
    assert data["relatedSearches"] and data["peopleAlsoAsk"]
    assert sim.queries["Mont Blanc"] == 1


async def test_some_queries_carry_a_knowledge_graph(session: aiohttp.ClientSession) -> None:
    sim = SimSerper()
    async with SimServer(sim.app) as server:
        found = []
        for i in range(8):
            _, data, _ = await post(session, server.url + "/search", {"q": f"topic {i}"})
            found.append("knowledgeGraph" in data)
            if "knowledgeGraph" in data:
                graph = data["knowledgeGraph"]
                assert {"title", "type", "description", "attributes"} <= set(graph)
    assert any(found) and not all(found)
    assert len(data["organic"]) == 10  # num defaults to 10


async def test_images_point_at_the_image_host_unique_per_query(
    session: aiohttp.ClientSession,
) -> None:
    sim = SimSerper(image_host="http://images.test:81/")
    async with SimServer(sim.app) as server:
        _, first, _ = await post(session, server.url + "/images", {"q": "red fox", "num": 5})
        _, again, _ = await post(session, server.url + "/images", {"q": "red fox", "num": 5})
        _, other, _ = await post(session, server.url + "/images", {"q": "red fox!", "num": 5})
    items = first["images"]
    assert len(items) == 5 and first["searchParameters"]["type"] == "images"
    keys = {
        "title",
        "imageUrl",
        "imageWidth",
        "imageHeight",
        "thumbnailUrl",
        "source",
        "domain",
        "link",
        "position",
    }
    assert all(keys <= set(item) for item in items)
    urls = [item["imageUrl"] for item in items]
    assert all(u.startswith("http://images.test:81/img/") and u.endswith(".png") for u in urls)
    assert len(set(urls)) == 5
    assert urls == [item["imageUrl"] for item in again["images"]]
    assert not set(urls) & {item["imageUrl"] for item in other["images"]}


async def test_wrong_or_missing_key_is_serpers_403(session: aiohttp.ClientSession) -> None:
    sim = SimSerper(api_key=KEY)
    async with SimServer(sim.app) as server:
        for key in ("wrong", None):
            status, data, _ = await post(session, server.url + "/search", {"q": "x"}, key=key)
            assert status == 403
            assert data == {"message": "Unauthorized.", "statusCode": 403}
        status, data, _ = await post(session, server.url + "/search", {"num": 3})
        assert status == 400 and data["statusCode"] == 400
    assert sim.stats.route("POST /search").statuses == {403: 2, 400: 1}


async def test_queued_and_random_faults(session: aiohttp.ClientSession) -> None:
    sim = SimSerper(faults=Faults(rate_500=1.0))
    sim.fail_next(1, 429, retry_after=2)
    sim.fail_next(1, 200, body={"message": "Not enough credits"})
    async with SimServer(sim.app) as server:
        url = server.url + "/images"
        status, _, headers = await post(session, url, {"q": "x"})
        assert status == 429 and headers["Retry-After"] == "2"
        status, data, _ = await post(session, url, {"q": "x"})
        assert status == 200 and data == {"message": "Not enough credits"}
        status, _, _ = await post(session, url, {"q": "x"})
        assert status == 500
    sim = SimSerper(faults=Faults(rate_403=1.0))
    async with SimServer(sim.app) as server:
        status, data, _ = await post(session, server.url + "/search", {"q": "x"})
        assert status == 403 and data["message"] == "Unauthorized."


async def test_server_side_rate_limit(session: aiohttp.ClientSession) -> None:
    sim = SimSerper(rate_limit=5, retry_after=0.5)
    async with SimServer(sim.app) as server:
        statuses: list[int] = []

        async def one(endpoint: str) -> None:
            status, _, headers = await post(session, f"{server.url}/{endpoint}", {"q": "x"})
            statuses.append(status)
            if status == 429:
                assert headers["Retry-After"] == "0.5"

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, "search" if i % 2 else "images")
    # Both endpoints count against the one plan.
    assert sorted(statuses) == [200] * 5 + [429] * 3
    assert len(sim.arrivals["search"]) == len(sim.arrivals["images"]) == 4
    assert len(sim.request_times()) == 8 and max_in_window(sim.request_times()) == 8


async def test_latency_and_per_route_statistics(session: aiohttp.ClientSession) -> None:
    sim = SimSerper(latency=Latency(mean=0.1))
    async with SimServer(sim.app) as server, anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(post, session, server.url + "/search", {"q": f"q{i}"})
        tg.start_soon(post, session, server.url + "/images", {"q": "img"})
    stats = sim.stats.to_dict()["routes"]
    assert stats["POST /search"]["requests"] == 3
    assert stats["POST /search"]["peak_in_flight"] == 3
    assert stats["POST /images"] == {"requests": 1, "peak_in_flight": 1, "statuses": {"200": 1}}


def test_image_faults_are_deterministic_and_near_their_rate() -> None:
    sim = SimSerper(image_faults={"corrupt": 0.2, "huge": 0.1})
    tags = [sim._fault_tag(f"query {j}", i) for j in range(300) for i in range(5)]
    assert tags == [sim._fault_tag(f"query {j}", i) for j in range(300) for i in range(5)]
    share = {t: tags.count(t) / len(tags) for t in ("corrupt", "huge")}
    assert 0.15 < share["corrupt"] < 0.25
    assert 0.05 < share["huge"] < 0.13
    payload = sim._images_payload("query 0", 5)
    assert all(
        "/img/f-" in i["imageUrl"] for i, t in zip(payload["images"], tags[:5], strict=True) if t
    )
