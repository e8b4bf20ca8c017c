"""NanoBananaRenderer through the real google-genai client against the loopback fake."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

from genevolve_async import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    RetryPolicy,
    Runtime,
    RuntimeConfig,
    ServiceUnavailableError,
)
from genevolve_async._limits import max_in_window
from genevolve_async.renderers import NanoBananaRenderer
from genevolve_async.renderers.nano_banana import _as_jpeg, _retry_delay
from genevolve_async.sim import Latency, SimGemini, SimServer

KEY = "sim-key"


@pytest.fixture
def refs(tmp_path: Path) -> list[str]:
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.new("RGBA", (40, 20), (10, 200, 30, 128)).save(png)
    Image.new("RGB", (20, 40), (200, 10, 30)).save(jpg, quality=80)
    return [str(png), str(jpg)]


@pytest.fixture
async def gemini() -> AsyncIterator[tuple[SimGemini, str]]:
    sim = SimGemini(image_size=(48, 32))
    async with SimServer(sim.app) as server:
        yield sim, server.url


@pytest.fixture
async def fast_runtime() -> AsyncIterator[Runtime]:
    async with Runtime(retry=RetryPolicy(initial=0.01, max_delay=0.05, jitter=0)) as runtime:
        yield runtime


def renderer_for(url: str, runtime: Runtime | None, **kwargs: Any) -> NanoBananaRenderer:
    return NanoBananaRenderer(
        api_key=KEY, base_url=url, api_version="v1beta", runtime=runtime, **kwargs
    )


async def test_returns_the_inline_image(
    gemini: tuple[SimGemini, str], fast_runtime: Runtime, refs: list[str]
) -> None:
    sim, url = gemini
    image = await renderer_for(url, fast_runtime).render("a fox", refs, seed=11)
    assert image.size == (48, 32)
    (request,) = sim.requests
    assert request.model == "gemini-3-pro-image-preview"
    assert request.api_version == "v1beta"
    assert request.text == "a fox"
    assert request.image_mime_types == ("image/jpeg", "image/jpeg")
    assert request.generation_config == {"seed": 11}


async def test_without_references(gemini: tuple[SimGemini, str], fast_runtime: Runtime) -> None:
    sim, url = gemini
    renderer = renderer_for(url, fast_runtime)
    assert renderer.needs_reference is False
    await renderer.render("a fox", [])
    assert sim.requests[0].image_mime_types == ()
    assert sim.requests[0].generation_config == {}


async def test_render_program_falls_back_to_request(
    gemini: tuple[SimGemini, str], fast_runtime: Runtime
) -> None:
    sim, url = gemini
    row = {"gen_prompt": "edit the first", "reference_images": [{"local_path": "/missing.jpg"}]}
    await renderer_for(url, fast_runtime).render_program(row, request="the original request")
    assert sim.requests[0].text == "the original request"


async def test_429_is_retried_after_its_delay(
    gemini: tuple[SimGemini, str], refs: list[str]
) -> None:
    sim, url = gemini
    sim.fail_next(1, 429, retry_delay=0.4)
    async with Runtime() as runtime:  # the default policy: it honours the service's delay
        image = await renderer_for(url, runtime).render("a fox", refs)
        assert runtime.stats.rate_limited["nano_banana"] == 1
        assert runtime.stats.retries["nano_banana"] == 1
    assert image.size == (48, 32)
    first, second = sim.arrivals
    assert second - first >= 0.9 * 0.4


async def test_5xx_is_retried(gemini: tuple[SimGemini, str], fast_runtime: Runtime) -> None:
    sim, url = gemini
    sim.fail_next(2, 500)
    await renderer_for(url, fast_runtime).render("a fox", [])
    assert len(sim.arrivals) == 3


async def test_persistent_5xx_fails(gemini: tuple[SimGemini, str]) -> None:
    sim, url = gemini
    sim.fail_next(5, 503)
    async with Runtime(retry=RetryPolicy(attempts=2, initial=0.01, jitter=0)) as runtime:
        with pytest.raises(ServiceUnavailableError, match="503"):
            await renderer_for(url, runtime).render("a fox", [])
        assert runtime.stats.failures["nano_banana"] == 1
    assert len(sim.arrivals) == 2


async def test_other_4xx_is_not_retried(
    gemini: tuple[SimGemini, str], fast_runtime: Runtime
) -> None:
    sim, url = gemini
    sim.fail_next(1, 404)
    with pytest.raises(BadResponseError, match="404"):
        await renderer_for(url, fast_runtime).render("a fox", [])
    assert len(sim.arrivals) == 1


async def test_no_image_is_a_bad_response(
    gemini: tuple[SimGemini, str], fast_runtime: Runtime
) -> None:
    sim, url = gemini
    sim.block_next(1)
    with pytest.raises(BadResponseError, match="IMAGE_SAFETY"):
        await renderer_for(url, fast_runtime).render("a fox", [])
    assert len(sim.arrivals) == 1


async def test_wrong_key_is_an_authentication_error_without_the_key(
    gemini: tuple[SimGemini, str], fast_runtime: Runtime
) -> None:
    sim, url = gemini
    secret = "AIza-very-secret-value"
    renderer = NanoBananaRenderer(api_key=secret, base_url=url, runtime=fast_runtime)
    with pytest.raises(AuthenticationError) as info:
        await renderer.render("a fox", [])
    assert secret not in str(info.value)
    assert secret not in repr(renderer)
    assert len(sim.arrivals) == 1  # not retried


async def test_key_from_environment(
    gemini: tuple[SimGemini, str], fast_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, url = gemini
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    await NanoBananaRenderer(base_url=url, runtime=fast_runtime).render("a fox", [])
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_API_KEY", "wrong")  # GOOGLE_API_KEY wins
    await NanoBananaRenderer(base_url=url, runtime=fast_runtime).render("a fox", [])
    assert len(sim.requests) == 2


async def test_missing_key_fails_at_first_use(
    fast_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    renderer = NanoBananaRenderer(runtime=fast_runtime)  # constructing needs no key
    with pytest.raises(ConfigurationError, match="GOOGLE_API_KEY or GEMINI_API_KEY"):
        await renderer.render("a fox", [])


async def test_rpm_bucket_spaces_requests(gemini: tuple[SimGemini, str]) -> None:
    sim, url = gemini
    rpm, count = 1200, 31  # 20 requests per second
    async with Runtime(RuntimeConfig(record_grants=True)) as runtime:
        renderer = renderer_for(url, runtime, rpm=rpm)
        # The SDK's first call does one-off work between our grant and the wire;
        # get it out of the way so arrivals track grants.
        await renderer.render("warm-up", [])
        async with anyio.create_task_group() as tg:
            for _ in range(count - 1):
                tg.start_soon(renderer.render, "a fox", [])
        limiter = await renderer.limiter()
        assert limiter.grant_times is not None
        assert max_in_window(limiter.grant_times, 1.0) <= rpm // 60
    assert len(sim.arrivals) == count
    # Loopback delivery adds a few ms of jitter between grant and arrival; a
    # window a little under a second absorbs it while still catching any burst.
    assert max_in_window(sim.arrivals, 0.95) <= rpm // 60
    assert max(sim.arrivals) - min(sim.arrivals) >= 0.95 * (count - 1) / (rpm / 60)


async def test_max_in_flight(refs: list[str]) -> None:
    sim = SimGemini(latency=Latency(mean=0.05))
    async with SimServer(sim.app) as server, Runtime() as runtime:
        renderer = renderer_for(server.url, runtime, max_in_flight=2)
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(renderer.render, "a fox", [])
    route = next(r for name, r in sim.stats.routes.items() if "generateContent" in name)
    assert route.requests == 6
    assert route.peak_in_flight <= 2


async def test_limiter_and_client_are_shared_per_runtime(
    gemini: tuple[SimGemini, str], fast_runtime: Runtime
) -> None:
    _, url = gemini
    first = renderer_for(url, fast_runtime, rpm=60)
    second = renderer_for(url, fast_runtime, rpm=60)
    assert await first.limiter() is await second.limiter()
    assert await first._client() is await second._client()
    # One limiter per provider and runtime: without rpm/max_in_flight a
    # renderer takes it as it is, and other limits are refused, not ignored.
    assert await renderer_for(url, fast_runtime).limiter() is await first.limiter()
    assert fast_runtime.limiter("nano_banana") is await first.limiter()
    with pytest.raises(ConfigurationError, match="one budget"):
        await renderer_for(url, fast_runtime, rpm=600).limiter()


async def test_own_runtime_closes_the_sdk_client(gemini: tuple[SimGemini, str]) -> None:
    _, url = gemini
    async with renderer_for(url, None) as renderer:
        await renderer.render("a fox", [])
        runtime = renderer.runtime
    assert not runtime.is_open


@pytest.mark.parametrize(
    ("details", "headers", "expected"),
    [
        (
            {
                "error": {
                    "details": [
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}
                    ]
                }
            },
            None,
            12.0,
        ),
        (
            {
                "error": {
                    "details": [
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.5s"}
                    ]
                }
            },
            None,
            0.5,
        ),
        (
            {
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": {"seconds": 3, "nanos": 500_000_000},
                    }
                ]
            },
            None,
            3.5,
        ),
        ({"error": {"details": []}}, {"Retry-After": "7"}, 7.0),
        ({"error": {}}, None, None),
        ("not a dict", None, None),
    ],
)
def test_retry_delay(details: object, headers: dict[str, str] | None, expected: float) -> None:
    assert _retry_delay(details, headers) == expected


def test_references_become_jpeg(refs: list[str]) -> None:
    png, jpg = refs
    converted = _as_jpeg(png, 90)
    assert Image.open(io.BytesIO(converted)).format == "JPEG"
    assert _as_jpeg(jpg, 90) == Path(jpg).read_bytes()  # JPEGs go as they are
    with pytest.raises(ConfigurationError, match="cannot be read"):
        _as_jpeg(str(Path(png).with_name("missing.png")), 90)


def test_large_references_are_scaled_down(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    Image.new("RGB", (3000, 1000), (1, 2, 3)).save(big)
    scaled = Image.open(io.BytesIO(_as_jpeg(str(big), 90, 2048)))
    assert scaled.format == "JPEG" and scaled.size == (2048, 683)
    assert _as_jpeg(str(big), 90, 4096) == big.read_bytes()


@pytest.mark.parametrize("kwargs", [{"rpm": 0}, {"max_in_flight": 0}, {"timeout": 0}])
def test_bad_limits(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        NanoBananaRenderer(**kwargs)  # type: ignore[arg-type]
