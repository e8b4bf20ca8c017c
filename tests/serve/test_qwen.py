from __future__ import annotations

import base64
import io
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from PIL import Image

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

import httpx2  # noqa: E402
from aiohttp import web  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from genevolve_async.serve import qwen  # noqa: E402
from genevolve_async.serve.qwen import create_app  # noqa: E402
from genevolve_async.sim import make_bomb_png  # noqa: E402


def png_bytes(
    size: tuple[int, int] = (80, 60), color: tuple[int, int, int] = (20, 120, 200)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def decode_png(encoded: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert image.format == "PNG"
    return image


def body(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "image_urls": [data_uri(png_bytes())],
        "prompt": "make the sky orange",
        "seed": 0,
        "num_inference_steps": 2,
        "width": 64,
        "height": 64,
    }
    request.update(overrides)
    return request


class _Output:
    def __init__(self, image: Image.Image) -> None:
        self.images = [image]


class GatedPipeline:
    """Blocks each call until `gate` is set; counts started calls."""

    def __init__(self, gate: threading.Event, fail: bool = False) -> None:
        self.gate = gate
        self.fail = fail
        self.started = 0
        self.references: list[int] = []

    def __call__(self, **kwargs: Any) -> _Output:
        self.started += 1
        self.references.append(len(kwargs["image"]))
        if not self.gate.wait(timeout=30):
            raise RuntimeError("test gate never opened")
        if self.fail:
            raise RuntimeError("CUDA out of memory (simulated)")
        return _Output(Image.new("RGB", (kwargs["width"], kwargs["height"]), (1, 2, 3)))


def service_of(app: FastAPI) -> Any:
    return app.state.service


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx2.AsyncClient]:
    """Run the app's lifespan (ASGITransport does not) and yield a client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    # Polls state the service exposes only as numbers (busy, queued); tests only.
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.005)


async def test_generate_with_tiny_pipeline(tiny_pipeline: Any) -> None:
    app = create_app([("cpu", tiny_pipeline)], model="tiny-random")
    async with serving(app) as client:
        response = await client.post("/generate", json=body())
        health = (await client.get("/health")).json()
    assert response.status_code == 200
    reply = response.json()
    assert reply["success"] is True
    assert reply["image"] == reply["image_base64"]
    image = decode_png(reply["image"])
    assert image.size == (64, 64) == (reply["width"], reply["height"])
    assert reply["device"] == "cpu"
    assert reply["seconds"] >= 0
    assert health == {
        "status": "ok",
        "num_gpus": 1,
        "devices": ["cpu"],
        "busy": 0,
        "queued": 0,
        "max_queue": 16,
        "model": "tiny-random",
    }


async def test_size_follows_first_reference_when_not_given() -> None:
    gate = threading.Event()
    gate.set()
    app = create_app([("cpu", GatedPipeline(gate))])
    async with serving(app) as client:
        response = await client.post("/generate", json=body(width=None, height=None))
    assert (response.json()["width"], response.json()["height"]) == (1024, 768)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_urls": [data_uri(b"definitely not an image")]}, "not a decodable image"),
        ({"image_urls": ["data:image/png;base64,%%%"]}, "reference 1"),
        ({"image_urls": []}, "at least one reference"),
        ({"image_urls": [data_uri(png_bytes())] * 5}, "too many references"),
        ({"image_urls": ["ftp://example.invalid/a.png"]}, "data URI or an http(s) URL"),
        ({"prompt": None}, "prompt"),
        ({"num_images_per_prompt": 2}, "num_images_per_prompt"),
        ({"seed": 2**80}, "seed"),
        ({"seed": -(2**70)}, "seed"),
        ({"image_urls": [data_uri(make_bomb_png(13_000, 13_000))] * 4}, "over the limit"),
        ({"image_urls": [data_uri(make_bomb_png(30_000, 30_000))]}, "not a decodable image"),
        (
            {"image_urls": [data_uri(png_bytes((1, 4000)))], "width": 8192, "height": None},
            "each side must be 1 to 8192",
        ),
    ],
)
async def test_bad_requests_are_400(overrides: dict[str, Any], message: str) -> None:
    app = create_app([("cpu", GatedPipeline(threading.Event()))])
    async with serving(app) as client:
        response = await client.post("/generate", json=body(**overrides))
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert message in response.json()["message"]


async def test_malformed_json_is_400() -> None:
    app = create_app([("cpu", GatedPipeline(threading.Event()))])
    async with serving(app) as client:
        response = await client.post("/generate", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["message"].startswith("invalid request")


async def test_not_started_is_503() -> None:
    # Without its lifespan the app cannot schedule jobs; it says so instead of hanging.
    app = create_app([("cpu", GatedPipeline(threading.Event()))])
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/generate", json=body())
    assert response.status_code == 503


async def test_body_over_limit_is_413() -> None:
    app = create_app([("cpu", GatedPipeline(threading.Event()))], max_body_bytes=1000)
    async with serving(app) as client:
        response = await client.post("/generate", json=body(prompt="x" * 2000))
    assert response.status_code == 413
    assert "larger than 1000 bytes" in response.json()["message"]


async def test_model_failure_is_success_false() -> None:
    gate = threading.Event()
    gate.set()
    app = create_app([("cpu", GatedPipeline(gate, fail=True))])
    async with serving(app) as client:
        response = await client.post("/generate", json=body())
    assert response.status_code == 200
    assert response.json() == {
        "success": False,
        "message": "RuntimeError: CUDA out of memory (simulated)",
    }


async def test_full_queue_is_503_at_once() -> None:
    gate = threading.Event()
    pipeline = GatedPipeline(gate)
    app = create_app([("cpu", pipeline)], max_queue=1)
    service = service_of(app)
    statuses: list[int] = []
    async with serving(app) as client:

        async def post() -> None:
            statuses.append((await client.post("/generate", json=body())).status_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(post)  # takes the only device
            await wait_until(lambda: pipeline.started == 1)
            tg.start_soon(post)  # waits in the queue
            await wait_until(lambda: service.health()["queued"] == 1)
            assert service.health()["busy"] == 1
            with anyio.fail_after(10):  # a hang detector: a queued call would wait for the gate
                refused = await client.post("/generate", json=body())
            assert refused.status_code == 503
            assert refused.headers["Retry-After"].isdigit()
            assert "queued" in refused.json()["message"]
            gate.set()
    assert statuses == [200, 200]
    assert pipeline.started == 2


async def test_devices_work_in_parallel_first_free_first() -> None:
    gates = [threading.Event(), threading.Event()]
    pipelines = [GatedPipeline(gates[0]), GatedPipeline(gates[1])]
    app = create_app([("cpu", pipelines[0]), ("cpu", pipelines[1])], max_queue=0)
    devices_used: list[int] = []
    async with serving(app) as client:

        async def post() -> None:
            reply = await client.post("/generate", json=body())
            devices_used.append(reply.status_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(post)
            tg.start_soon(post)
            # Both run at once, one per device; a third finds no free device.
            await wait_until(lambda: pipelines[0].started == pipelines[1].started == 1)
            health = service_of(app).health()
            assert (health["num_gpus"], health["busy"], health["queued"]) == (2, 2, 0)
            assert (await client.post("/generate", json=body())).status_code == 503
            gates[1].set()
            await wait_until(lambda: service_of(app).health()["busy"] == 1)
            tg.start_soon(post)  # must go to the device that just freed up
            await wait_until(lambda: pipelines[1].started == 2)
            gates[0].set()
    assert devices_used == [200, 200, 200]


async def test_job_timeout_is_504_and_keeps_the_device() -> None:
    gate = threading.Event()
    pipeline = GatedPipeline(gate)
    app = create_app([("cpu", pipeline)], job_timeout=0.2)
    async with serving(app) as client:
        response = await client.post("/generate", json=body())
        assert response.status_code == 504
        # The abandoned request's job still owns the pipeline until it returns.
        assert service_of(app).health()["busy"] == 1
        gate.set()
        await wait_until(lambda: service_of(app).health()["busy"] == 0)
        assert (await client.post("/generate", json=body())).status_code == 200


async def test_shutdown_finishes_running_and_fails_queued() -> None:
    gate = threading.Event()
    pipeline = GatedPipeline(gate)
    app = create_app([("cpu", pipeline)], shutdown_grace=10)
    service = service_of(app)
    statuses: list[int] = []
    started, stop, stopped = anyio.Event(), anyio.Event(), anyio.Event()

    async def run_lifespan() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stop.wait()
        stopped.set()

    transport = httpx2.ASGITransport(app=app)
    async with (
        httpx2.AsyncClient(transport=transport, base_url="http://test") as client,
        anyio.create_task_group() as tg,
    ):

        async def post() -> None:
            statuses.append((await client.post("/generate", json=body())).status_code)

        tg.start_soon(run_lifespan)
        await started.wait()
        tg.start_soon(post)
        await wait_until(lambda: pipeline.started == 1)
        tg.start_soon(post)
        await wait_until(lambda: service.health()["queued"] == 1)
        threading.Timer(0.2, gate.set).start()
        stop.set()
        with anyio.fail_after(5):
            await stopped.wait()
        late = await client.post("/generate", json=body())
    # The queued request fails at once; the running one finishes within the grace.
    assert statuses == [503, 200]
    assert late.status_code == 503 and "Retry-After" in late.headers
    assert pipeline.started == 1


@asynccontextmanager
async def image_host() -> AsyncIterator[str]:
    async def png(request: web.Request) -> web.Response:
        return web.Response(body=png_bytes((32, 64)), content_type="image/png")

    app = web.Application()
    app.router.add_get("/ref.png", png)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_http_references_are_fetched_when_enabled() -> None:
    gate = threading.Event()
    gate.set()
    app = create_app(
        [("cpu", GatedPipeline(gate))],
        fetch_http_references=True,
        allowed_reference_networks=["127.0.0.0/8"],
    )
    async with image_host() as host, serving(app) as client:
        ok = await client.post(
            "/generate", json=body(image_urls=[f"{host}/ref.png"], width=None, height=None)
        )
        missing = await client.post("/generate", json=body(image_urls=[f"{host}/nope.png"]))
    assert ok.status_code == 200
    assert (ok.json()["width"], ok.json()["height"]) == (512, 1024)
    assert missing.status_code == 400
    assert "HTTP 404" in missing.json()["message"]


async def test_http_references_are_off_by_default_and_guarded_when_on() -> None:
    gate = threading.Event()
    gate.set()
    default = create_app([("cpu", GatedPipeline(gate))])
    guarded = create_app([("cpu", GatedPipeline(gate))], fetch_http_references=True)
    async with image_host() as host:
        async with serving(default) as client:
            off = await client.post("/generate", json=body(image_urls=[f"{host}/ref.png"]))
            data = await client.post("/generate", json=body())  # a data URI: always accepted
        async with serving(guarded) as client:
            private = await client.post("/generate", json=body(image_urls=[f"{host}/ref.png"]))
    assert off.status_code == 400 and "not enabled" in off.json()["message"]
    assert data.status_code == 200
    # Loopback is not public: the same guard as the agent's image downloads.
    assert private.status_code == 400 and "private_address" in private.json()["message"]


async def test_real_uvicorn_server(tiny_pipeline: Any) -> None:
    app = create_app([("cpu", tiny_pipeline)], model="tiny-random")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        await wait_until(lambda: server.started)
        try:
            # A hang detector: the tiny two-step render needs about a second, but
            # torch's worker threads slow down far more than the rest when other
            # processes hold the cores (30 s ran out beside a CPU hog).
            async with httpx2.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=180
            ) as client:
                health = (await client.get("/health")).json()
                reply = (await client.post("/generate", json=body(seed=3))).json()
        finally:
            server.should_exit = True
    sock.close()
    assert health["devices"] == ["cpu"] and health["num_gpus"] == 1
    assert reply["success"] is True
    assert decode_png(reply["image"]).size == (64, 64)


def test_cli_parses_and_runs_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    qwen.main(
        [
            "--model",
            "some/model",
            "--port",
            "8123",
            "--devices",
            "cuda:0,cuda:1",
            "--max-queue",
            "3",
            "--job-timeout",
            "60",
        ]
    )
    (call,) = calls
    assert (call["host"], call["port"]) == ("127.0.0.1", 8123)
    # Slow clients are bounded: connections, header bytes, idle keep-alive.
    assert call["limit_concurrency"] and call["h11_max_incomplete_event_size"]
    assert call["timeout_keep_alive"] <= 30
    health = call["app"].state.service.health()
    assert health["devices"] == ["cuda:0", "cuda:1"]
    assert health["max_queue"] == 3 and health["model"] == "some/model"
