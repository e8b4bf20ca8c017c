"""SerperBackend against loopback servers: wire format, errors, retries, the limiter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from genevolve_async import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    GenEvolveError,
    ProviderLimits,
    RateLimitedError,
    RetryPolicy,
    Runtime,
    RuntimeConfig,
    ServiceUnavailableError,
)
from genevolve_async._limits import max_in_window
from genevolve_async._provider_call import Provider
from genevolve_async.sim import SimSerper, SimServer
from genevolve_async.tools import SerperBackend
from tests._hostile import json_values

from ._fakes import KEY


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
    """A server that records each request and answers a fixed Serper body."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(
            {
                "path": request.path,
                "key": request.headers.get("X-API-KEY"),
                "type": request.headers.get("Content-Type"),
                "body": await request.json(),
            }
        )
        return web.json_response(
            {
                "organic": [
                    {"title": " A ", "link": "https://a.example/1", "snippet": "s", "position": 1},
                    "not an object",
                    {"title": "B", "url": "https://b.example/2", "date": "Jan 1, 2024"},
                ],
                "images": [
                    {"title": "no url"},
                    {
                        "title": "Pic",
                        "imageUrl": "https://img.example/p.jpg",
                        "imageWidth": 640,
                        "imageHeight": 480.0,
                        "link": "https://page.example/p",
                        "source": "Example",
                        "position": 2,
                    },
                ],
            }
        )

    app = web.Application()
    app.router.add_post("/search", handle)
    app.router.add_post("/images", handle)
    async with SimServer(app) as server:
        yield seen, server.url


async def test_wire_format_and_parsing(
    recorder: tuple[list[dict[str, Any]], str], runtime: Runtime
) -> None:
    seen, url = recorder
    backend = SerperBackend(base_url=url + "/", api_key=KEY, gl="fr", hl="fr")
    web_results = await backend.search(runtime, "eiffel", 5)
    image_results = await backend.images(runtime, "eiffel", 3)
    assert [r.title for r in web_results] == ["A", "B"]
    assert web_results[0].url == "https://a.example/1" and web_results[0].position == 1
    assert web_results[1].url == "https://b.example/2" and web_results[1].date == "Jan 1, 2024"
    assert len(image_results) == 1
    pic = image_results[0]
    assert (pic.image_url, pic.page_url, pic.width, pic.height, pic.position) == (
        "https://img.example/p.jpg",
        "https://page.example/p",
        640,
        480,
        2,
    )
    assert [s["path"] for s in seen] == ["/search", "/images"]
    assert all(s["key"] == KEY and s["type"] == "application/json" for s in seen)
    assert seen[0]["body"] == {"q": "eiffel", "num": 5, "gl": "fr", "hl": "fr"}
    assert seen[1]["body"]["num"] == 3


async def test_results_are_cut_to_num(
    recorder: tuple[list[dict[str, Any]], str], runtime: Runtime
) -> None:
    backend = SerperBackend(base_url=recorder[1], api_key=KEY)
    assert len(await backend.search(runtime, "q", 1)) == 1


async def test_key_and_base_url_are_read_lazily(
    monkeypatch: pytest.MonkeyPatch, recorder: tuple[list[dict[str, Any]], str], runtime: Runtime
) -> None:
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    monkeypatch.delenv("SERPER_BASE_URL", raising=False)
    backend = SerperBackend()  # no key anywhere: constructing is fine
    assert backend.base_url == "https://google.serper.dev"
    with pytest.raises(ConfigurationError, match="SERPER_API_KEY"):
        await backend.search(runtime, "q", 5)
    monkeypatch.setenv("SERPER_API_KEY", KEY)
    monkeypatch.setenv("SERPER_BASE_URL", recorder[1])
    assert len(await backend.search(runtime, "q", 5)) == 2
    assert recorder[0][-1]["key"] == KEY


async def test_bad_base_url_is_a_configuration_error(runtime: Runtime) -> None:
    with pytest.raises(ConfigurationError, match="http"):
        await SerperBackend(base_url="ftp://x", api_key=KEY).search(runtime, "q", 5)
    with pytest.raises(ConfigurationError):
        SerperBackend(timeout=0)


def test_repr_never_shows_the_key() -> None:
    assert KEY not in repr(SerperBackend(base_url="http://x", api_key=KEY))


async def test_403_fails_fast_without_the_key(
    serper: tuple[SimSerper, str], fast_runtime: Runtime
) -> None:
    sim, url = serper
    backend = SerperBackend(base_url=url, api_key="sk-wrong-key-987654321")
    with pytest.raises(AuthenticationError) as info:
        await backend.search(fast_runtime, "q", 5)
    message = str(info.value)
    assert "sk-wrong-key" not in message and KEY not in message
    assert "403" in message and "API key" in message
    assert len(sim.arrivals["search"]) == 1  # not retried
    assert fast_runtime.stats.retries["serper"] == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"message": "Not enough credits", "statusCode": 400}, BadResponseError),
        ({"error": "Unauthorized."}, AuthenticationError),
        ({"message": "Unauthorized.", "statusCode": 403}, AuthenticationError),
        ({"organic": [], "error": {"message": "internal", "code": 500}}, BadResponseError),
        (["not", "an", "object"], BadResponseError),
    ],
)
async def test_200_carrying_an_error_is_an_error(
    serper: tuple[SimSerper, str],
    backend: SerperBackend,
    fast_runtime: Runtime,
    body: Any,
    error: type[Exception],
) -> None:
    sim, _ = serper
    sim.fail_next(1, 200, body=body)
    with pytest.raises(error):
        await backend.search(fast_runtime, "q", 5)
    assert len(sim.arrivals["search"]) == 1  # not retried either


async def test_a_gateway_echoing_the_key_is_scrubbed(
    serper: tuple[SimSerper, str], backend: SerperBackend, fast_runtime: Runtime
) -> None:
    sim, _ = serper
    sim.fail_next(1, 200, body={"message": f"bad request for key {KEY}", "statusCode": 400})
    with pytest.raises(BadResponseError) as info:
        await backend.search(fast_runtime, "q", 5)
    assert KEY not in str(info.value) and "[redacted]" in str(info.value)


async def test_transient_errors_are_retried_through_the_limiter(
    serper: tuple[SimSerper, str], backend: SerperBackend, fast_runtime: Runtime
) -> None:
    sim, _ = serper
    sim.fail_next(2, 500)
    results = await backend.images(fast_runtime, "a lighthouse", 3)
    assert len(results) == 3
    assert len(sim.arrivals["images"]) == 3
    assert fast_runtime.stats.retries["serper"] == 2
    assert fast_runtime.limiter("serper").stats.grants == 3  # every attempt took a slot


async def test_429s_outlasting_the_policy_raise_and_are_counted(
    serper: tuple[SimSerper, str], backend: SerperBackend
) -> None:
    sim, _ = serper
    sim.fail_next(10, 429, retry_after=0.01)
    retry = RetryPolicy(attempts=3, initial=0.01, jitter=0.0)
    async with Runtime(retry=retry) as runtime:
        with pytest.raises(RateLimitedError):
            await backend.search(runtime, "q", 5)
        assert runtime.stats.rate_limited["serper"] == 3
        assert runtime.stats.retries["serper"] == 2
        assert runtime.stats.failures["serper"] == 1


async def test_a_429_storm_is_ridden_out_within_the_limit(
    serper: tuple[SimSerper, str], backend: SerperBackend
) -> None:
    sim, _ = serper
    sim.fail_next(40, 429, retry_after=0.2)
    config = RuntimeConfig(
        retry=RetryPolicy(attempts=8, initial=0.05, jitter=0.0),
        limits={"serper": ProviderLimits(rate=50, max_in_flight=16)},
        record_grants=True,
    )
    async with Runtime(config) as runtime:
        answers: list[int] = []

        async def one(i: int) -> None:
            answers.append(len(await backend.search(runtime, f"storm {i}", 2)))

        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(one, i)
        limiter = runtime.limiter("serper")
        assert answers == [2] * 60
        assert runtime.stats.rate_limited["serper"] == 40
        assert runtime.stats.failures["serper"] == 0
        assert limiter.grant_times is not None and len(limiter.grant_times) == 100
        assert max_in_window(limiter.grant_times) <= 50
        assert limiter.stats.peak_in_flight <= 16
    # What the server saw: arrival jitter on loopback may shift a request by
    # a fraction of a millisecond, never by whole grants.
    assert max_in_window(sim.request_times()) <= 51


async def test_timeouts_are_unavailable_errors(runtime: Runtime) -> None:
    async def slow(request: web.Request) -> web.Response:
        await anyio.sleep(5)
        return web.json_response({"organic": []})

    app = web.Application()
    app.router.add_post("/search", slow)
    retry = RetryPolicy(attempts=1)
    async with SimServer(app) as server, Runtime(retry=retry) as rt:
        backend = SerperBackend(base_url=server.url, api_key=KEY, timeout=0.1)
        with pytest.raises(ServiceUnavailableError, match="timed out"):
            await backend.search(rt, "q", 5)


# -- hostile answers -----------------------------------------------------------------


_answers = json_values | st.fixed_dictionaries(
    {},
    optional={
        "organic": st.lists(
            json_values
            | st.dictionaries(
                st.sampled_from(["title", "link", "snippet", "position"]), json_values
            )
        ),
        "images": st.lists(
            json_values
            | st.dictionaries(
                st.sampled_from(["imageUrl", "title", "imageWidth", "link"]), json_values
            )
        ),
        "error": json_values,
        "message": json_values,
        "statusCode": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(_answers, st.sampled_from(["search", "images"]))
async def test_any_answer_gives_results_or_a_classified_error(answer: Any, endpoint: str) -> None:
    backend = SerperBackend(base_url="http://127.0.0.1:9", api_key=KEY)

    async def canned(runtime: Any, endpoint_: str, query: str, num: int) -> dict[str, Any]:
        from genevolve_async.tools._serper import _checked

        provider = Provider(name="serper", secrets=(KEY,))
        return _checked(answer, endpoint_, provider, "http://127.0.0.1:9/" + endpoint_)

    backend._call = canned  # type: ignore[method-assign]
    try:
        results = await getattr(backend, endpoint)(None, "q", 10)
    except GenEvolveError:
        return
    assert len(results) <= 10


def test_an_error_nested_past_orjson_depth_is_still_classified() -> None:
    from genevolve_async.tools._serper import _checked

    nested: Any = {"code": 1}
    for _ in range(300):
        nested = {"inner": nested}
    with pytest.raises(GenEvolveError, match="nested too deeply"):
        _checked({"error": nested}, "search", Provider(name="serper"), "http://127.0.0.1:9/search")
