"""The simulated Generative Language API, over real loopback sockets."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from PIL import Image

from genevolve_async.sim import Faults, Latency, SimGemini, SimServer

MODEL = "gemini-3-pro-image-preview"
JPEG = base64.b64encode(b"\xff\xd8fake").decode()


def body(*, images: int = 1, text: str | None = "draw a fox") -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}] if text is not None else []
    parts += [{"inlineData": {"mimeType": "image/jpeg", "data": JPEG}}] * images
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": {"seed": 5}}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    url: str,
    payload: Any,
    *,
    key: str | None = "sim-key",
    version: str = "v1beta",
) -> tuple[int, Any]:
    headers = {"x-goog-api-key": key} if key is not None else {}
    async with http.post(
        f"{url}/{version}/models/{MODEL}:generateContent", json=payload, headers=headers
    ) as resp:
        return resp.status, await resp.json()


async def test_answers_an_inline_png(http: aiohttp.ClientSession) -> None:
    sim = SimGemini(image_size=(40, 30))
    async with SimServer(sim.app) as server:
        status, answer = await call(http, server.url, body(images=2))
    assert status == 200
    candidate = answer["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    blob = candidate["content"]["parts"][0]["inlineData"]
    assert blob["mimeType"] == "image/png"
    image = Image.open(io.BytesIO(base64.b64decode(blob["data"])))
    assert image.size == (40, 30)
    (request,) = sim.requests
    assert request.model == MODEL and request.api_version == "v1beta"
    assert request.text == "draw a fox"
    assert request.image_mime_types == ("image/jpeg", "image/jpeg")
    assert request.generation_config == {"seed": 5}


async def test_key_in_query_is_accepted(http: aiohttp.ClientSession) -> None:
    sim = SimGemini()
    async with (
        SimServer(sim.app) as server,
        http.post(
            f"{server.url}/v1beta/models/{MODEL}:generateContent?key=sim-key", json=body()
        ) as resp,
    ):
        assert resp.status == 200


async def test_missing_key_is_403(http: aiohttp.ClientSession) -> None:
    sim = SimGemini()
    async with SimServer(sim.app) as server:
        status, answer = await call(http, server.url, body(), key=None)
    assert status == 403
    assert answer["error"]["status"] == "PERMISSION_DENIED"
    assert not sim.requests


async def test_wrong_key_is_400_api_key_invalid(http: aiohttp.ClientSession) -> None:
    sim = SimGemini()
    async with SimServer(sim.app) as server:
        status, answer = await call(http, server.url, body(), key="nope")
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    assert answer["error"]["details"][0]["reason"] == "API_KEY_INVALID"


async def test_any_key_when_none_configured(http: aiohttp.ClientSession) -> None:
    sim = SimGemini(api_key=None)
    async with SimServer(sim.app) as server:
        status, _ = await call(http, server.url, body(), key="whatever")
    assert status == 200


async def test_queued_429_carries_retry_info(http: aiohttp.ClientSession) -> None:
    sim = SimGemini()
    sim.fail_next(1, 429, retry_delay=1.5)
    async with SimServer(sim.app) as server:
        status, answer = await call(http, server.url, body())
        again, _ = await call(http, server.url, body())
    assert (status, again) == (429, 200)
    error = answer["error"]
    assert error["code"] == 429 and error["status"] == "RESOURCE_EXHAUSTED"
    retry = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]
    assert len(sim.arrivals) == 2


async def test_queued_500(http: aiohttp.ClientSession) -> None:
    sim = SimGemini()
    sim.fail_next(1, 500)
    async with SimServer(sim.app) as server:
        status, answer = await call(http, server.url, body())
    assert status == 500
    assert answer["error"]["status"] == "INTERNAL"


async def test_random_faults(http: aiohttp.ClientSession) -> None:
    sim = SimGemini(faults=Faults(rate_429=1.0, retry_after=2.0))
    async with SimServer(sim.app) as server:
        status, answer = await call(http, server.url, body())
    assert status == 429
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"} in answer[
        "error"
    ]["details"]
    sim.faults = Faults(rate_500=1.0)
    async with SimServer(sim.app) as server:
        status, _ = await call(http, server.url, body())
    assert status == 500


async def test_rpm_quota(http: aiohttp.ClientSession) -> None:
    sim = SimGemini(rpm_limit=2)
    async with SimServer(sim.app) as server:
        statuses = [(await call(http, server.url, body()))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_block_next_answers_without_image(http: aiohttp.ClientSession) -> None:
    sim = SimGemini(latency=Latency(mean=0.001))
    sim.block_next(1)
    async with SimServer(sim.app) as server:
        status, answer = await call(http, server.url, body())
    assert status == 200
    candidate = answer["candidates"][0]
    assert candidate["finishReason"] == "IMAGE_SAFETY"
    assert "inlineData" not in candidate["content"]["parts"][0]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"contents": []},
        body(text=None),
        {
            "contents": [
                {
                    "parts": [
                        {"text": "x"},
                        {"inlineData": {"mimeType": "text/plain", "data": "eA=="}},
                    ]
                }
            ]
        },
    ],
)
async def test_bad_bodies_are_400(http: aiohttp.ClientSession, payload: Any) -> None:
    sim = SimGemini()
    async with SimServer(sim.app) as server:
        status, answer = await call(http, server.url, payload)
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    assert len(sim.arrivals) == 1 and not sim.requests
