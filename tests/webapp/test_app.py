"""The JSON endpoints, validation, errors and backpressure, in-process (httpx2's ASGI transport)."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import httpx2
import pytest
from fastapi import FastAPI
from PIL import Image

from examples.webapp.app import create_app
from examples.webapp.settings import WebSettings
from genevolve_async.sim import Latency

from .conftest import (
    POLICY_KEY,
    SERPER_KEY,
    RuntimeRecorder,
    Sims,
    asgi_client,
    service_of,
    wait_until,
)

MakeApp = Callable[..., FastAPI]


async def test_program_returns_the_program_and_a_trajectory_summary(
    make_app: MakeApp, runtimes: RuntimeRecorder, sims: Sims, tmp_path: Path
) -> None:
    app = make_app()
    async with asgi_client(app) as client:
        response = await client.post("/v1/programs", json={"prompt": "a lighthouse at dawn"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["termination"] == "answer"
    assert body["error"] is None
    program = body["program"]
    assert program["gen_prompt"].startswith("A detailed rendering of a lighthouse at dawn")
    assert [r["img_id"] for r in program["reference_images"]] == ["IMG_001", "IMG_002"]
    assert all("local_path" not in r for r in program["reference_images"])
    summary = body["summary"]
    assert summary["rounds"] == 4
    assert summary["tool_calls"] == {"search": 1, "image_search": 1, "query_knowledge": 1}
    assert summary["usage"]["total_tokens"] > 0
    assert summary["rollout_id"] == body["id"]
    # The downloads happened (into the configured cache), but no server path leaves.
    assert any((tmp_path / "images").iterdir())
    assert str(tmp_path) not in response.text
    assert len(runtimes.made) == 1


async def test_per_request_options_reuse_the_one_runtime_and_agent(
    make_app: MakeApp, runtimes: RuntimeRecorder
) -> None:
    app = make_app()
    async with asgi_client(app) as client:
        agent = service_of(app).agent
        short = await client.post(
            "/v1/programs", json={"prompt": "a fox", "max_rounds": 2, "seed": 7}
        )
        full = await client.post("/v1/programs", json={"prompt": "a fox", "seed": 8})
        assert service_of(app).agent is agent
    assert short.json()["summary"]["rounds"] == 2  # the final-step round answers
    assert short.json()["summary"]["seed"] == 7
    assert full.json()["summary"]["rounds"] == 4
    assert full.json()["summary"]["seed"] == 8
    assert len(runtimes.made) == 1
    assert not runtimes.made[0].is_open  # closed by the lifespan on shutdown


async def test_image_comes_inline_and_by_url(make_app: MakeApp, sims: Sims) -> None:
    app = make_app()
    async with asgi_client(app) as client:
        response = await client.post("/v1/images", json={"prompt": "a red kite", "seed": 3})
        assert response.status_code == 200, response.text
        image = response.json()["image"]
        png = base64.b64decode(image["data_base64"])
        fetched = await client.get(image["url"])
        missing = await client.get("/v1/images/not-an-id")
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/png"
    assert fetched.content == png
    with Image.open(io.BytesIO(png)) as decoded:
        assert decoded.size == (image["width"], image["height"])
    assert response.json()["program"]["reference_images"]
    assert sims.qwen.renders == 1
    assert sims.qwen.received[0]["image_count"] == 2  # the program's two references
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"


async def test_images_without_a_renderer_is_503(make_app: MakeApp) -> None:
    app = make_app(qwen_urls=())
    async with asgi_client(app) as client:
        response = await client.post("/v1/images", json={"prompt": "a red kite"})
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "no_renderer"
    assert response.json()["program"] is not None


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"prompt": ""}, "prompt", "must not be empty"),
        ({"prompt": "   \n "}, "prompt", "must not be empty"),
        ({"prompt": "x" * 201}, "prompt", "is 201 characters; the limit is 200"),
        ({"prompt": "a fox", "colour": "red"}, "colour", "is not a known field"),
        ({}, "prompt", "is required"),
        ({"prompt": 42}, "prompt", "Input should be a valid string"),
        ({"prompt": "a fox", "timeout": 10_000}, "timeout", "must be at most 60 seconds"),
        ({"prompt": "a fox", "max_rounds": 50}, "max_rounds", "must be at most 11"),
        ({"prompt": "a fox", "seed": -1}, "seed", "greater than or equal to 0"),
    ],
)
async def test_bad_requests_get_422_with_a_clear_message(
    make_app: MakeApp, sims: Sims, payload: dict[str, object], field: str, message: str
) -> None:
    app = make_app(max_prompt_chars=200, max_timeout=60.0)
    async with asgi_client(app) as client:
        for path in ("/v1/programs", "/v1/images", "/v1/stream"):
            response = await client.post(path, json=payload)
            assert response.status_code == 422, (path, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request"
            assert {"field": field, "message": error["fields"][0]["message"]} in error["fields"]
            assert message in error["message"]
            assert "x" * 50 not in response.text  # the input is never echoed
    assert sims.policy.stats.requests == 0


async def test_malformed_json_and_huge_bodies(make_app: MakeApp) -> None:
    app = make_app(max_prompt_chars=100)
    async with asgi_client(app) as client:
        broken = await client.post(
            "/v1/programs", content=b'{"prompt": ', headers={"content-type": "application/json"}
        )
        huge = await client.post("/v1/programs", json={"prompt": "y" * 100_000})

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"z" * 1000

        chunked = await client.post(
            "/v1/programs", content=chunks(), headers={"content-type": "application/json"}
        )
    assert broken.status_code == 422
    assert broken.json()["error"]["fields"] == [{"field": "body", "message": "is not valid JSON"}]
    for response in (huge, chunked):
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "request_too_large"


async def test_deadline_ends_the_rollout_as_timeout(make_app: MakeApp, sims: Sims) -> None:
    sims.policy.latency = Latency(mean=0.2)
    app = make_app()
    async with asgi_client(app) as client:
        response = await client.post("/v1/programs", json={"prompt": "a slow fox", "timeout": 0.5})
        health = (await client.get("/healthz")).json()
    assert response.status_code == 504
    body = response.json()
    assert body["termination"] == "timeout"
    assert body["error"] == {
        "type": "timeout",
        "message": "the request's 0.5s deadline passed before the rollout finished",
    }
    assert body["program"] is None
    assert 1 <= body["summary"]["rounds"] <= 3
    assert health["running"] == 0 and health["active_jobs"] == 0


async def test_render_past_the_deadline_is_504_with_the_program(
    make_app: MakeApp, sims: Sims
) -> None:
    sims.qwen.latency = Latency(mean=60.0)
    app = make_app()
    async with asgi_client(app) as client:
        with anyio.fail_after(20):  # a hang detector: 30x the deadline, a third of the render
            response = await client.post("/v1/images", json={"prompt": "a kite", "timeout": 0.6})
    assert response.status_code == 504
    assert (
        response.json()["error"]["message"] == "the request's 0.6s deadline passed while rendering"
    )
    assert response.json()["program"] is not None
    assert response.json()["image"] is None


async def test_over_capacity_requests_get_429_with_retry_after(
    make_app: MakeApp, sims: Sims
) -> None:
    sims.policy.latency = Latency(mean=0.15)
    app = make_app(max_concurrent_rollouts=2, queue_wait=0.1, retry_after=3)
    responses: list[httpx2.Response] = []
    async with asgi_client(app) as client:

        async def post(path: str, i: int) -> None:
            responses.append(await client.post(path, json={"prompt": f"fox {i}"}))

        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(post, "/v1/programs", i)
            await wait_until(lambda: service_of(app).statistics()["running"] == 2, timeout=10)
            tg.start_soon(post, "/v1/programs", 2)
            tg.start_soon(post, "/v1/images", 3)
            tg.start_soon(post, "/v1/stream", 4)
        assert service_of(app).statistics()["running"] == 0
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429]
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.headers["retry-after"] == "3"
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"]["type"] == "overloaded"
        assert "2 rollout slots" in refused.json()["error"]["message"]


async def test_a_full_line_refuses_at_once(make_app: MakeApp, sims: Sims) -> None:
    sims.policy.latency = Latency(mean=0.1)
    app = make_app(max_concurrent_rollouts=1, queue_wait=30.0, max_queued=1)
    responses: list[tuple[int, httpx2.Response]] = []
    async with asgi_client(app) as client:

        async def post(i: int) -> None:
            responses.append((i, await client.post("/v1/programs", json={"prompt": f"fox {i}"})))

        async with anyio.create_task_group() as tg:
            tg.start_soon(post, 0)
            await wait_until(lambda: service_of(app).statistics()["running"] == 1, timeout=10)
            tg.start_soon(post, 1)
            await wait_until(lambda: service_of(app).statistics()["waiting"] == 1, timeout=10)
            with anyio.fail_after(10):  # refused without waiting out queue_wait (30 s)
                await post(2)
    by_request = {i: r for i, r in responses}
    assert by_request[0].status_code == by_request[1].status_code == 200
    assert by_request[2].status_code == 429
    assert "1 requests are already waiting" in by_request[2].json()["error"]["message"]


async def test_requests_within_the_wait_bound_queue_and_succeed(
    make_app: MakeApp, sims: Sims
) -> None:
    sims.policy.latency = Latency(mean=0.05)
    app = make_app(max_concurrent_rollouts=1, queue_wait=10.0)
    responses: list[httpx2.Response] = []
    async with asgi_client(app) as client:

        async def post(i: int) -> None:
            responses.append(await client.post("/v1/programs", json={"prompt": f"fox {i}"}))

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(post, i)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert sims.policy.stats.route("POST /v1/chat/completions").peak_in_flight == 1


async def test_backend_failures_never_leak_keys_or_paths(
    make_app: MakeApp, sims: Sims, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app()
    async with asgi_client(app) as client:
        ok = await client.post("/v1/stream", json={"prompt": "a heron"})
        sims.policy.down = True
        down = await client.post("/v1/programs", json={"prompt": "a heron"})
        sims.policy.down = False
        sims.serper.api_key = "another-key"  # Serper now refuses ours
        refused = await client.post("/v1/programs", json={"prompt": "a heron"})
    assert ok.status_code == 200
    assert down.status_code == 502
    assert down.json()["error"]["type"] == "service_unavailable"
    assert refused.status_code == 502  # a refused key ends the rollout (never retried)
    assert refused.json()["error"]["type"] == "authentication"
    assert "check the API key" in refused.json()["error"]["message"]
    texts = [ok.text, down.text, refused.text, caplog.text]
    for text in texts:
        assert POLICY_KEY not in text
        assert SERPER_KEY not in text
        assert str(tmp_path) not in text
    assert "local_path: <path>" in ok.text  # observations keep their shape, minus the path


async def test_sim_mode_runs_on_its_own_backends() -> None:
    # What GENEVOLVE_WEB_SIM=1 gives: no URL, key or GPU needed.
    app = create_app(WebSettings(sim=True, sim_latency=0.0))
    async with asgi_client(app) as client:
        response = await client.post("/v1/images", json={"prompt": "a red fox in fresh snow"})
    assert response.status_code == 200, response.text
    assert response.json()["termination"] == "answer"
    assert response.json()["image"]["width"] > 0


async def test_page_static_files_and_health(make_app: MakeApp) -> None:
    app = make_app()
    async with asgi_client(app) as client:
        page = await client.get("/")
        script = await client.get("/static/app.js")
        health = await client.get("/healthz")
        unknown = await client.get("/nope")
    assert page.status_code == 200
    assert '<form id="request-form"' in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self'
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "/v1/stream" in script.text
    assert health.json() == {"status": "ok", "capacity": 8, "running": 0, "waiting": 0,
                             "active_jobs": 0}  # fmt: skip
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "http_error"
