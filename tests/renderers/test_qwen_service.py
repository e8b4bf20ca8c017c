"""QwenServiceRenderer against simulated services (and our real one) on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

from genevolve_async import (
    BadResponseError,
    ConfigurationError,
    Endpoint,
    RetryPolicy,
    Runtime,
    ServiceUnavailableError,
)
from genevolve_async.renderers import QwenServiceRenderer, ReferenceRequiredError
from genevolve_async.renderers.qwen_service import _gpu_count
from genevolve_async.sim import Latency, SimQwenService, SimServer

FAST_RETRY = RetryPolicy(initial=0.01, max_delay=0.05, jitter=0.0)


@pytest.fixture
def ref(tmp_path: Path) -> str:
    path = tmp_path / "ref.png"
    Image.new("RGB", (300, 200), (200, 40, 40)).save(path)
    return str(path)


@pytest.fixture
async def fast_runtime() -> AsyncIterator[Runtime]:
    async with Runtime(retry=FAST_RETRY) as runtime:
        yield runtime


@pytest.fixture
async def services() -> AsyncIterator[tuple[list[SimQwenService], list[str]]]:
    """Three simulated services with 1, 2 and 3 GPUs."""
    sims = [SimQwenService(gpus=g, latency=Latency(mean=0.05), seed=g) for g in (1, 2, 3)]
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(SimServer(s.app)) for s in sims]
        yield sims, [s.url for s in servers]


async def test_renders_with_spec_body(fast_runtime: Runtime, ref: str) -> None:
    sim = SimQwenService()
    async with SimServer(sim.app) as server:
        renderer = QwenServiceRenderer(server.url + "/generate", runtime=fast_runtime)
        image = await renderer.render("the first reference image at dusk", [ref])
    assert image.format == "PNG"
    # SPEC: long side 1024, aspect of the first reference, multiples of 16.
    assert image.size == (1024, 688)
    (body,) = sim.received
    assert body == {
        "prompt": "the first reference image at dusk",
        "seed": 0,
        "true_cfg_scale": 4.0,
        "negative_prompt": " ",
        "num_inference_steps": 40,
        "guidance_scale": 1.0,
        "num_images_per_prompt": 1,
        "width": 1024,
        "height": 688,
        "image_count": 1,
    }


async def test_seed_size_and_reference_cap(fast_runtime: Runtime, ref: str) -> None:
    sim = SimQwenService()
    async with SimServer(sim.app) as server:
        renderer = QwenServiceRenderer([server.url], runtime=fast_runtime, num_inference_steps=8)
        image = await renderer.render("p", [ref] * 6, seed=9, width=64, height=32)
    assert image.size == (64, 32)
    body = sim.received[0]
    assert body["seed"] == 9 and body["num_inference_steps"] == 8
    assert body["image_count"] == 4  # at most 4 references


async def test_image_base64_answers(fast_runtime: Runtime, ref: str) -> None:
    sim = SimQwenService(image_key="image_base64")
    async with SimServer(sim.app) as server:
        image = await QwenServiceRenderer(server.url, runtime=fast_runtime).render("p", [ref])
    assert image.size == (1024, 688)


async def test_round_robin_when_idle(
    services: tuple[list[SimQwenService], list[str]], fast_runtime: Runtime, ref: str
) -> None:
    sims, urls = services
    renderer = QwenServiceRenderer(urls, runtime=fast_runtime)
    for _ in range(6):
        await renderer.render("p", [ref])
    assert [s.renders for s in sims] == [2, 2, 2]


async def test_caps_follow_health_and_are_never_exceeded(
    services: tuple[list[SimQwenService], list[str]], fast_runtime: Runtime, ref: str
) -> None:
    sims, urls = services
    renderer = QwenServiceRenderer(urls, runtime=fast_runtime)
    async with anyio.create_task_group() as tg:
        for _ in range(36):
            tg.start_soon(renderer.render, "p", [ref])
    assert [e.capacity for e in renderer.pool.endpoints] == [1, 2, 3]
    for sim in sims:
        assert sim.rejected_busy == 0  # a 503 would mean we sent beyond the GPU slots
        assert sim.peak_in_flight <= sim.gpus
        assert sim.renders > 0
        assert sim.stats.route("GET /health").requests == 1  # one lazy health check per URL
    for endpoint, sim in zip(renderer.pool.endpoints, sims, strict=True):
        assert endpoint.stats.peak_in_flight <= sim.gpus
    # Bigger services get more of the work.
    assert sims[0].renders < sims[2].renders
    assert sum(s.renders for s in sims) == 36


async def test_health_without_gpus_means_one(fast_runtime: Runtime, ref: str) -> None:
    sim = SimQwenService(gpus=2, health_gpus=0, latency=Latency(mean=0.05))
    async with SimServer(sim.app) as server:
        renderer = QwenServiceRenderer(server.url, runtime=fast_runtime)
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(renderer.render, "p", [ref])
    assert renderer.pool.endpoints[0].capacity == 1
    assert sim.peak_in_flight == 1


async def test_configured_cap_skips_health(fast_runtime: Runtime, ref: str) -> None:
    sim = SimQwenService(gpus=2, latency=Latency(mean=0.05))
    async with SimServer(sim.app) as server:
        renderer = QwenServiceRenderer(server.url, runtime=fast_runtime, max_in_flight_per_url=2)
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(renderer.render, "p", [ref])
    assert sim.stats.route("GET /health").requests == 0
    assert sim.peak_in_flight == 2 and sim.rejected_busy == 0


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        ({"num_gpus": 4}, 4),
        ({"gpus": 2}, 2),
        ({"gpus": ["cuda:0", "cuda:1", "cuda:2"]}, 3),
        ({"gpu_count": 5}, 5),
        ({"devices": ["cuda:0", "cuda:1"]}, 2),
        ({"num_gpus": 0}, 1),
        ({"num_gpus": True}, 1),
        ({"status": "ok"}, 1),
    ],
)
def test_gpu_count(health: dict[str, object], expected: int) -> None:
    assert _gpu_count(health) == expected


async def test_failed_request_moves_to_another_endpoint(
    services: tuple[list[SimQwenService], list[str]], fast_runtime: Runtime, ref: str
) -> None:
    sims, urls = services
    sims[0].fail_next(100, 500)
    renderer = QwenServiceRenderer(urls, runtime=fast_runtime, quarantine_after=100)
    for _ in range(6):
        await renderer.render("p", [ref])
    failures = sims[0].stats.route("POST /generate").statuses[500]
    assert failures >= 1  # round-robin sent it some first tries
    # Every render succeeded, and each failure cost exactly one retry: the retry
    # always went to another endpoint, never back to the failing one.
    assert sims[0].renders == 0
    assert sims[1].renders + sims[2].renders == 6
    assert fast_runtime.stats.retries["qwen_service"] == failures


async def test_503_and_504_are_retried_elsewhere(fast_runtime: Runtime, ref: str) -> None:
    a, b = SimQwenService(), SimQwenService()
    a.fail_next(1, 503)
    a.fail_next(1, 504)
    async with SimServer(a.app) as sa, SimServer(b.app) as sb:
        renderer = QwenServiceRenderer([sa.url, sb.url], runtime=fast_runtime)
        for _ in range(4):
            await renderer.render("p", [ref])
    assert a.renders + b.renders == 4
    assert fast_runtime.stats.retries["qwen_service"] == 2


@pytest.mark.parametrize(("urls", "expected"), [(1, [5.0]), (2, [0.01, 0.02])])
async def test_retry_after_applies_only_when_staying(
    ref: str, urls: int, expected: list[float]
) -> None:
    """A 503's Retry-After is the endpoint's: honoured when the retry must go back
    to it, dropped when another endpoint takes the retry."""
    sims = [SimQwenService(retry_after=5.0) for _ in range(urls)]
    for sim in sims:
        sim.fail_next(1, 503)
    delays: list[float] = []

    async def record(delay: float) -> None:
        delays.append(delay)

    policy = RetryPolicy(initial=0.01, jitter=0.0, sleep=record)
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(SimServer(s.app)) for s in sims]
        runtime = await stack.enter_async_context(Runtime(retry=policy))
        await QwenServiceRenderer([s.url for s in servers], runtime=runtime).render("p", [ref])
    assert delays == expected


def quarantined(endpoint: Endpoint) -> bool:
    return endpoint.quarantined_until is not None


async def test_quarantine_and_probe_before_restore(fast_runtime: Runtime, ref: str) -> None:
    bad, good = SimQwenService(), SimQwenService()
    bad.fail_next(3, 500)
    async with SimServer(bad.app) as sb, SimServer(good.app) as sg:
        renderer = QwenServiceRenderer(
            [sb.url, sg.url], runtime=fast_runtime, quarantine_after=3, cooldown=0.2
        )
        for _ in range(6):
            await renderer.render("p", [ref])
        bad_endpoint = renderer.pool.endpoints[0]
        assert bad_endpoint.stats.quarantines == 1
        assert quarantined(bad_endpoint)
        assert bad.renders == 0 and good.renders == 6
        # Still sick when the cooldown ends: the /health probe keeps it out.
        bad.down = True
        await anyio.sleep(0.25)
        health_before = bad.stats.route("GET /health").requests
        await renderer.render("p", [ref])
        assert bad.stats.route("GET /health").requests == health_before + 1
        assert quarantined(bad_endpoint)
        # Healthy again: the next probe after the cooldown restores it.
        bad.down = False
        await anyio.sleep(0.25)
        for _ in range(4):
            await renderer.render("p", [ref])
        assert not quarantined(bad_endpoint)
        assert bad.renders > 0


async def test_all_quarantined_fails(fast_runtime: Runtime, ref: str) -> None:
    sim = SimQwenService()
    sim.down = True
    async with SimServer(sim.app) as server:
        renderer = QwenServiceRenderer(server.url, runtime=fast_runtime, quarantine_after=2)
        with pytest.raises(ServiceUnavailableError):
            await renderer.render("p", [ref])
    assert fast_runtime.stats.failures["qwen_service"] == 1


async def test_400_is_not_retried(fast_runtime: Runtime, ref: str) -> None:
    sim = SimQwenService()
    sim.fail_next(1, 400)
    async with SimServer(sim.app) as server:
        renderer = QwenServiceRenderer(server.url, runtime=fast_runtime)
        with pytest.raises(BadResponseError, match="HTTP 400"):
            await renderer.render("p", [ref])
    assert sim.stats.route("POST /generate").requests == 1
    assert renderer.pool.endpoints[0].quarantined_until is None


async def test_success_false_is_tried_three_times_and_carries_the_message(
    fast_runtime: Runtime, ref: str
) -> None:
    sim = SimQwenService()
    sim.fail_next(3, "success_false")
    async with SimServer(sim.app) as server:
        renderer = QwenServiceRenderer(server.url, runtime=fast_runtime)
        with pytest.raises(BadResponseError, match="simulated model failure"):
            await renderer.render("p", [ref])
    assert sim.stats.route("POST /generate").requests == 3  # the original's three tries
    assert renderer.pool.endpoints[0].quarantined_until is None  # alive, not broken


async def test_success_false_moves_round_robin(fast_runtime: Runtime, ref: str) -> None:
    first, second = SimQwenService(), SimQwenService()
    first.fail_next(1, "success_false")
    async with SimServer(first.app) as one, SimServer(second.app) as two:
        renderer = QwenServiceRenderer([one.url, two.url], runtime=fast_runtime)
        await renderer.render("p", [ref])
    assert (first.model_failures, first.renders, second.renders) == (1, 0, 1)


async def test_without_health_the_callers_parallelism_spreads(
    fast_runtime: Runtime, ref: str
) -> None:
    sims = [SimQwenService(gpus=4, health=False, latency=Latency(mean=0.1)) for _ in range(2)]
    async with SimServer(sims[0].app) as one, SimServer(sims[1].app) as two:
        renderer = QwenServiceRenderer([one.url, two.url], runtime=fast_runtime)
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(renderer.render, "p", [ref])
    # Not capped at one request per URL: both took several at once, evenly.
    assert [e.capacity for e in renderer.pool.endpoints] == [None, None]
    assert [s.renders for s in sims] == [4, 4]
    assert all(s.peak_in_flight > 1 for s in sims)
    assert all(e.quarantined_until is None for e in renderer.pool.endpoints)


async def test_a_render_that_timed_out_is_not_sent_again(ref: str) -> None:
    # The service may be rendering it still: a second POST would take a GPU twice.
    sim = SimQwenService(gpus=2, latency=Latency(mean=1.0))
    async with (
        SimServer(sim.app) as server,
        Runtime(retry=RetryPolicy(attempts=3, initial=0.01, jitter=0)) as runtime,
    ):
        renderer = QwenServiceRenderer(server.url, runtime=runtime, timeout=0.1)
        with pytest.raises(ServiceUnavailableError, match="timed out"):
            await renderer.render("p", [ref])
    assert sim.stats.route("POST /generate").requests == 1


async def test_needs_a_reference(fast_runtime: Runtime) -> None:
    renderer = QwenServiceRenderer("http://127.0.0.1:9", runtime=fast_runtime)
    with pytest.raises(ReferenceRequiredError):
        await renderer.render("p", [])


async def test_unreadable_reference(fast_runtime: Runtime, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.png"
    bogus.write_bytes(b"not an image")
    renderer = QwenServiceRenderer("http://127.0.0.1:9", runtime=fast_runtime)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        await renderer.render("p", [bogus])


async def test_own_runtime(ref: str) -> None:
    sim = SimQwenService()
    async with SimServer(sim.app) as server:
        async with QwenServiceRenderer(server.url) as renderer:
            image = await renderer.render("p", [ref])
            runtime = renderer.runtime
        assert image.size == (1024, 688)
        assert not runtime.is_open


@pytest.mark.parametrize("urls", [[], [""], ["ftp://x"], "localhost:8000"])
def test_bad_urls(urls: list[str] | str) -> None:
    with pytest.raises(ConfigurationError):
        QwenServiceRenderer(urls)


def test_repr_has_urls_only() -> None:
    renderer = QwenServiceRenderer("http://user:secret@h:1/?token=x")
    assert "secret" not in repr(renderer) and "token" not in repr(renderer)


async def test_end_to_end_with_our_real_service(tiny_pipeline: Any, ref: str) -> None:
    """The client and genevolve_async.serve.qwen (uvicorn, tiny CPU pipeline) work together."""
    pytest.importorskip("diffusers")
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    from genevolve_async.serve.qwen import create_app

    app = create_app([("cpu", tiny_pipeline)], model="tiny-random")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        try:
            with anyio.fail_after(30):
                while not server.started:  # noqa: ASYNC110 - uvicorn exposes no event
                    await anyio.sleep(0.01)
            async with Runtime(retry=FAST_RETRY) as runtime:
                renderer = QwenServiceRenderer(url, runtime=runtime, num_inference_steps=2)
                image = await renderer.render("make the sky orange", [ref], width=64, height=48)
                capacity = renderer.pool.endpoints[0].capacity
        finally:
            server.should_exit = True
    sock.close()
    assert image.format == "PNG"
    assert image.size == (64, 48)
    assert capacity == 1  # the service's /health reports one device


async def test_busy_503s_never_quarantine_the_only_endpoint(
    fast_runtime: Runtime, ref: str
) -> None:
    """SPEC: a 503 means every GPU is busy. Under shared load it must not take
    the endpoint out (a quarantined lone endpoint would fail every render)."""
    sim = SimQwenService()
    sim.fail_next(5, 503)
    async with SimServer(sim.app) as server:
        renderer = QwenServiceRenderer([server.url], runtime=fast_runtime, quarantine_after=2)
        image = await renderer.render("p", [ref])
        assert image.size[0] > 0
        assert renderer.pool.endpoints[0].stats.quarantines == 0
