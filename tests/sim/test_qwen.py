"""The simulated Qwen-Image-Edit service, over real loopback sockets."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
from PIL import Image

from genevolve_async.sim import Latency, QwenFaults, SimQwenService, SimServer, make_png

REF = "data:image/png;base64," + base64.b64encode(make_png((10, 20, 30))).decode()


def body(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "image_urls": [REF],
        "prompt": "the first reference image, at dusk",
        "seed": 0,
        "width": 64,
        "height": 48,
    }
    request.update(overrides)
    return request


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, payload: Any) -> tuple[int, Any]:
    async with http.post(url + "/generate", json=payload) as resp:
        return resp.status, await resp.json()


async def test_health_reports_gpus(http: aiohttp.ClientSession) -> None:
    sim = SimQwenService(gpus=3)
    async with SimServer(sim.app) as server, http.get(server.url + "/health") as resp:
        payload = await resp.json()
    assert resp.status == 200
    assert payload["status"] == "ok"
    assert payload["num_gpus"] == 3
    assert payload["devices"] == ["sim:0", "sim:1", "sim:2"]


async def test_health_can_report_no_gpus(http: aiohttp.ClientSession) -> None:
    sim = SimQwenService(gpus=2, health_gpus=0)
    async with SimServer(sim.app) as server, http.get(server.url + "/health") as resp:
        payload = await resp.json()
    assert "num_gpus" not in payload and "devices" not in payload


async def test_generate_answers_png_of_requested_size(http: aiohttp.ClientSession) -> None:
    sim = SimQwenService()
    async with SimServer(sim.app) as server:
        status, payload = await post(http, server.url, body(width=80, height=32, seed=7))
    assert status == 200
    assert payload["success"] is True
    image = Image.open(io.BytesIO(base64.b64decode(payload["image"])))
    assert image.format == "PNG"
    assert image.size == (80, 32)
    assert sim.renders == 1
    assert sim.received[0]["seed"] == 7
    assert sim.received[0]["image_count"] == 1
    assert "image_urls" not in sim.received[0]


async def test_image_base64_key(http: aiohttp.ClientSession) -> None:
    sim = SimQwenService(image_key="image_base64")
    async with SimServer(sim.app) as server:
        status, payload = await post(http, server.url, body())
    assert status == 200
    assert "image" not in payload
    assert payload["image_base64"]


@pytest.mark.parametrize(
    "payload",
    [
        body(image_urls=[]),
        body(image_urls=["ftp://x/y.png"]),
        body(image_urls=["data:image/png,notbase64"]),
        body(prompt=None),
        body(width=5),
        [1, 2],
    ],
)
async def test_bad_requests_get_400(http: aiohttp.ClientSession, payload: Any) -> None:
    sim = SimQwenService()
    async with SimServer(sim.app) as server:
        status, answer = await post(http, server.url, payload)
    assert status == 400
    assert answer["success"] is False and answer["message"]


async def test_non_json_body_gets_400(http: aiohttp.ClientSession) -> None:
    sim = SimQwenService()
    async with SimServer(sim.app) as server, http.post(server.url + "/generate", data=b"{") as resp:
        assert resp.status == 400


async def test_requests_beyond_the_gpu_slots_get_503_at_once(http: aiohttp.ClientSession) -> None:
    # Renders far longer than a loopback refusal takes, even on a busy machine.
    sim = SimQwenService(gpus=2, latency=Latency(mean=1.0))
    statuses: list[int] = []
    async with SimServer(sim.app) as server:

        async def one() -> None:
            statuses.append((await post(http, server.url, body()))[0])

        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(one)
            with anyio.fail_after(10):
                while sim.in_flight < 2:  # noqa: ASYNC110 - the sim exposes a count, no event
                    await anyio.sleep(0.005)
            await one()
    # The refusal came back while both renders were still running: it did not queue.
    assert statuses == [503, 200, 200]
    assert sim.rejected_busy == 1
    assert sim.peak_in_flight == 2
    assert sim.stats.route("POST /generate").statuses[503] == 1


@pytest.mark.parametrize("status", [400, 500, 503, 504])
async def test_fail_next_statuses(http: aiohttp.ClientSession, status: int) -> None:
    sim = SimQwenService()
    sim.fail_next(1, status)  # type: ignore[arg-type]
    async with SimServer(sim.app) as server:
        first, answer = await post(http, server.url, body())
        second, _ = await post(http, server.url, body())
    assert (first, second) == (status, 200)
    assert answer["success"] is False


async def test_success_false_fault(http: aiohttp.ClientSession) -> None:
    sim = SimQwenService()
    sim.fail_next(1, "success_false")
    async with SimServer(sim.app) as server:
        status, answer = await post(http, server.url, body())
    assert status == 200
    assert answer == {"success": False, "message": "simulated model failure"}
    assert sim.model_failures == 1 and sim.renders == 0


async def test_slow_fault_stretches_latency(http: aiohttp.ClientSession) -> None:
    sim = SimQwenService(latency=Latency(mean=0.02), faults=QwenFaults(slow_factor=10))
    sim.fail_next(1, "slow")
    async with SimServer(sim.app) as server:
        started = time.monotonic()
        status, _ = await post(http, server.url, body())
        elapsed = time.monotonic() - started
    assert status == 200
    assert elapsed >= 0.9 * 0.2


async def test_random_faults_follow_rates(http: aiohttp.ClientSession) -> None:
    sim = SimQwenService(faults=QwenFaults(rate_500=1.0))
    async with SimServer(sim.app) as server:
        status, _ = await post(http, server.url, body())
    assert status == 500
    assert QwenFaults().draw(sim.rng) is None


async def test_down_fails_everything(http: aiohttp.ClientSession) -> None:
    sim = SimQwenService()
    sim.down = True
    async with SimServer(sim.app) as server:
        status, _ = await post(http, server.url, body())
        async with http.get(server.url + "/health") as resp:
            health_status = resp.status
        sim.down = False
        recovered, _ = await post(http, server.url, body())
    assert (status, health_status, recovered) == (503, 503, 200)
    assert sim.stats.route("GET /health").requests == 1
    assert sim.stats.route("POST /generate").requests == 2


async def test_png_cache_per_size(http: aiohttp.ClientSession) -> None:
    sim = SimQwenService()
    async with SimServer(sim.app) as server:
        for _ in range(3):
            await post(http, server.url, body(width=64, height=64))
        await post(http, server.url, body(width=32, height=64))
    assert len(sim._png_cache) == 2


def test_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        SimQwenService(gpus=0)
