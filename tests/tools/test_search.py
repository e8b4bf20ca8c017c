"""The ``search`` and ``image_search`` tools: SPEC formats, concurrency, ids, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import pytest

from genevolve_async import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    Runtime,
)
from genevolve_async.sim import Latency, SimImageHost, SimSerper
from genevolve_async.tools import (
    ImageCache,
    ImageCacheSettings,
    ImageRegistry,
    ImageResult,
    ImageSearch,
    SerperBackend,
    Tool,
    WebResult,
    WebSearch,
)
from genevolve_async.tools.search import clamp_top_k

from ._fakes import KEY, ScriptedBackend, make_context

Host = tuple[SimImageHost, str]
Serper = tuple[SimSerper, str]

WEB = {
    "eiffel tower": [
        WebResult(
            title="Eiffel Tower",
            url="https://en.wikipedia.org/wiki/Eiffel_Tower",
            snippet="Wrought-iron lattice tower in Paris.",
        ),
        WebResult(title="Visit", url="https://www.toureiffel.paris/en", snippet=""),
        WebResult(title="No link", url="", snippet="Only a snippet."),
    ],
    "louvre": [WebResult(title="Louvre", url="https://www.louvre.fr", snippet="Museum.")],
}


async def test_search_observation_is_byte_for_byte(runtime: Runtime) -> None:
    tool = WebSearch(backend=ScriptedBackend(web=dict(WEB)))
    text = await tool({"queries": ["eiffel tower", "louvre"], "top_k": 5}, make_context(runtime))
    assert text == (
        "--- search result for [eiffel tower] ---\n"
        "1. title: Eiffel Tower\n"
        "  url: https://en.wikipedia.org/wiki/Eiffel_Tower\n"
        "  snippet: Wrought-iron lattice tower in Paris.\n"
        "2. title: Visit\n"
        "  url: https://www.toureiffel.paris/en\n"
        "3. title: No link\n"
        "  snippet: Only a snippet.\n"
        "--- end of search result ---\n"
        "--- search result for [louvre] ---\n"
        "1. title: Louvre\n"
        "  url: https://www.louvre.fr\n"
        "  snippet: Museum.\n"
        "--- end of search result ---"
    )


async def test_search_over_sim_serper_matches_its_answers(
    serper: Serper, backend: SerperBackend, runtime: Runtime
) -> None:
    sim, _ = serper
    text = await WebSearch(backend=backend)(
        {"queries": "gothic cathedral", "top_k": 3}, make_context(runtime)
    )
    organic = sim._search_payload("gothic cathedral", 3)["organic"]
    expected = ["--- search result for [gothic cathedral] ---"]
    for n, item in enumerate(organic, 1):
        expected += [
            f"{n}. title: {item['title']}",
            f"  url: {item['link']}",
            f"  snippet: {item['snippet']}",
        ]
    expected.append("--- end of search result ---")
    assert text == "\n".join(expected)


async def test_queries_of_one_call_run_concurrently(
    serper: Serper, backend: SerperBackend, runtime: Runtime
) -> None:
    sim, _ = serper
    sim.latency = Latency(mean=0.2)
    queries = [f"query number {i}" for i in range(4)]
    started = anyio.current_time()
    text = await WebSearch(backend=backend)({"queries": queries}, make_context(runtime))
    assert sim.stats.route("POST /search").peak_in_flight == 4
    assert anyio.current_time() - started >= 0.2  # lower bound only
    headers = [line for line in text.splitlines() if line.startswith("--- search result for")]
    assert headers == [f"--- search result for [{q}] ---" for q in queries]


async def test_one_failed_query_becomes_its_error_block(
    serper: Serper, backend: SerperBackend, runtime: Runtime
) -> None:
    sim, _ = serper
    sim.fail_next(1, 400, body={"message": "Query not allowed.", "statusCode": 400})
    text = await WebSearch(backend=backend)({"queries": ["first", "second"]}, make_context(runtime))
    blocks = text.splitlines()
    errors = [line for line in blocks if line.startswith("--- search error for [")]
    assert len(errors) == 1 and "HTTP 400" in errors[0] and errors[0].endswith(" ---")
    assert text.count("--- end of search result ---") == 1
    # Query order is kept whichever one failed.
    first = next(i for i, line in enumerate(blocks) if "[first]" in line)
    second = next(i for i, line in enumerate(blocks) if "[second]" in line)
    assert first < second


async def test_errors_of_a_plugged_backend_stay_in_their_block(runtime: Runtime) -> None:
    backend = ScriptedBackend(
        web={"ok": WEB["louvre"], "bad": BadResponseError("gateway\nsaid no"), "bug": KeyError("x")}
    )
    text = await WebSearch(backend=backend)(
        {"queries": ["ok", "bad", "bug"]}, make_context(runtime)
    )
    lines = text.splitlines()
    assert lines[0] == "--- search result for [ok] ---"
    assert lines[-2] == "--- search error for [bad]: gateway said no ---"
    assert lines[-1] == "--- search error for [bug]: KeyError: 'x' ---"


async def test_a_refused_key_ends_the_call(serper: Serper, runtime: Runtime) -> None:
    tool = WebSearch(backend=SerperBackend(base_url=serper[1], api_key="sk-bad-00000000"))
    with pytest.raises(AuthenticationError) as info:
        await tool({"queries": ["a", "b"]}, make_context(runtime))
    assert "sk-bad" not in str(info.value)


@pytest.mark.parametrize(
    ("arguments", "queries"),
    [
        ({"queries": "bare string"}, ["bare string"]),
        ({"query": "singular key"}, ["singular key"]),
        ({"queries": ["  spaced   out  ", "", 7, "x"]}, ["spaced out", "x"]),
    ],
)
async def test_search_arguments_are_tolerated(
    runtime: Runtime, arguments: dict[str, object], queries: list[str]
) -> None:
    backend = ScriptedBackend()
    await WebSearch(backend=backend)(arguments, make_context(runtime))
    assert [q for _, q, _ in backend.calls] == queries


@pytest.mark.parametrize("arguments", [{}, {"queries": []}, {"queries": ""}, {"queries": ["  "]}])
async def test_empty_queries_get_a_clear_observation(
    runtime: Runtime, arguments: dict[str, object]
) -> None:
    backend = ScriptedBackend()
    text = await WebSearch(backend=backend)(arguments, make_context(runtime))
    assert text.startswith("Error: search needs at least one non-empty query")
    assert backend.calls == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 5),
        (3, 3),
        (0, 1),
        (-4, 1),
        (1000, 10),
        ("7", 7),
        ("2.9", 2),
        ("x", 5),
        (True, 5),
        (4.6, 4),
        ([3], 5),
        (float("inf"), 5),
    ],
)
def test_top_k_is_clamped(value: object, expected: int) -> None:
    assert clamp_top_k(value, default=5, maximum=10) == expected


async def test_top_k_reaches_the_backend_clamped(runtime: Runtime) -> None:
    backend = ScriptedBackend()
    await WebSearch(backend=backend)({"queries": ["a"], "top_k": 99}, make_context(runtime))
    await ImageSearch(backend=backend)({"query": "b", "top_k": 0}, make_context(runtime))
    assert backend.calls == [("search", "a", 10), ("images", "b", 1)]


async def test_extra_queries_are_refused_in_their_own_blocks(runtime: Runtime) -> None:
    backend = ScriptedBackend()
    text = await WebSearch(backend=backend, max_queries=2)(
        {"queries": ["a", "b", "c"]}, make_context(runtime)
    )
    assert len(backend.calls) == 2
    assert (
        text.splitlines()[-1] == "--- search error for [c]: not run: at most 2 queries per call ---"
    )


def test_tools_satisfy_the_protocol_and_construct_without_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    for tool in (WebSearch(), ImageSearch()):
        assert isinstance(tool, Tool)
    assert WebSearch().name == "search" and ImageSearch().name == "image_search"
    assert ImageSearch().parameters["required"] == ["query"]
    with pytest.raises(ConfigurationError):
        WebSearch(default_top_k=0)


# -- image_search ------------------------------------------------------------------


def is_file(path: str) -> bool:
    return Path(path).is_file()


def picture(host_url: str, name: str, title: str = "", page: str = "") -> ImageResult:
    return ImageResult(title=title, image_url=f"{host_url}/img/{name}", page_url=page)


async def test_image_observation_is_byte_for_byte(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    _, url = images
    results = [
        picture(url, "a.png", "Tower at dusk", "https://example.org/a"),
        picture(url, "f-corrupt-b.png", "Broken"),
        picture(url, "c.png", "", ""),
    ]
    tool = ImageSearch(backend=ScriptedBackend(images={"tower": results}), cache=cache_settings)
    context = make_context(runtime)
    text = await tool({"query": "tower"}, context)
    a, c = context.images.get("IMG_001"), context.images.get("IMG_002")
    assert a is not None and c is not None and len(context.images) == 2
    assert text == (
        "--- image search result for [tower] ---\n"
        "IMG_001: title: Tower at dusk\n"
        f"  url: {url}/img/a.png\n"
        f"  local_path: {a.local_path}\n"
        "  page_url: https://example.org/a\n"
        "IMG_002: title: image\n"
        f"  url: {url}/img/c.png\n"
        f"  local_path: {c.local_path}\n"
        "--- end of image search result ---"
    )
    assert is_file(a.local_path) and is_file(c.local_path)
    assert (a.url, a.title, a.page_url) == (
        f"{url}/img/a.png",
        "Tower at dusk",
        "https://example.org/a",
    )


async def test_image_search_over_sim_serper_registers_in_result_order(
    serper: Serper, backend: SerperBackend, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    sim, _ = serper
    tool = ImageSearch(backend=backend, cache=cache_settings)
    context = make_context(runtime)
    for _ in range(3):  # shuffled download latency: completion order varies
        await tool({"query": "a red fox in snow", "top_k": 5}, context)
    expected = [item["imageUrl"] for item in sim._images_payload("a red fox in snow", 5)["images"]]
    records = context.images.records()
    assert [r.url for r in records] == expected  # the same image keeps its id on repeats
    assert [r.img_id for r in records] == [f"IMG_00{i}" for i in range(1, 6)]
    assert all(is_file(r.local_path) for r in records)


async def test_failed_downloads_are_dropped(
    images: Host,
    serper: Serper,
    backend: SerperBackend,
    runtime: Runtime,
    cache_settings: ImageCacheSettings,
) -> None:
    sim, _ = serper
    sim.image_faults = {"corrupt": 0.3, "html": 0.2, "status404": 0.2}
    tool = ImageSearch(backend=backend, cache=cache_settings)
    context = make_context(runtime)
    text = await tool({"query": "volcano eruption at night", "top_k": 10}, context)
    listed = sim._images_payload("volcano eruption at night", 10)["images"]
    good = [i["imageUrl"] for i in listed if "/img/f-" not in i["imageUrl"]]
    assert 0 < len(good) < 10  # the draw above has both kinds
    assert [r.url for r in context.images.records()] == good
    assert text.count("local_path: ") == len(good)
    assert "/img/f-" not in text


async def test_parallel_calls_get_ids_in_call_order(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    _, url = images
    backend = ScriptedBackend(
        images={
            "slow": [picture(url, "f-slow-s1.png"), picture(url, "f-slow-s2.png")],
            "fast": [picture(url, "q1.png"), picture(url, "q2.png")],
        }
    )
    settings = dataclasses.replace(cache_settings, timeout=10.0)
    tool = ImageSearch(backend=backend, cache=settings)
    registry = ImageRegistry()
    first_done = anyio.Event()
    observations: dict[str, str] = {}

    async def call(query: str, context_previous: anyio.Event | None, done: anyio.Event) -> None:
        context = make_context(runtime, registry, previous=context_previous)
        observations[query] = await tool({"query": query}, context)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "slow", None, first_done)
        tg.start_soon(call, "fast", first_done, anyio.Event())
    assert [r.url.rsplit("/", 1)[1] for r in registry.records()] == [
        "f-slow-s1.png",
        "f-slow-s2.png",
        "q1.png",
        "q2.png",
    ]
    assert "IMG_003: " in observations["fast"] and "IMG_001: " in observations["slow"]


async def test_results_sharing_bytes_get_one_id_each_in_result_order(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    # A direct URL and a redirecting mirror serve identical bytes, which the
    # content-addressed cache stores once; the listing still numbers each result.
    _, url = images
    backend = ScriptedBackend(
        images={
            "owl": [
                picture(url, "owl.png"),
                ImageResult(
                    title="mirror", image_url=f"{url}/redirect/1/owl.png", page_url="https://m"
                ),
                picture(url, "hare.png"),
            ]
        }
    )
    context = make_context(runtime)
    text = await ImageSearch(backend=backend, cache=cache_settings)({"query": "owl"}, context)
    ids = [line.split(":", 1)[0] for line in text.splitlines() if line.startswith("IMG_")]
    assert ids == ["IMG_001", "IMG_002", "IMG_003"]
    records = context.images.records()
    assert records[0].local_path == records[1].local_path != records[2].local_path
    assert [r.url for r in records][1].endswith("/redirect/1/owl.png")


async def test_fifty_rollouts_asking_for_one_image_download_it_once(
    images: Host,
    serper: Serper,
    backend: SerperBackend,
    runtime: Runtime,
    cache_settings: ImageCacheSettings,
) -> None:
    host, _ = images
    host.latency = Latency(mean=0.1)
    tool = ImageSearch(backend=backend, cache=cache_settings)
    contexts = [make_context(runtime) for _ in range(50)]
    async with anyio.create_task_group() as tg:
        for context in contexts:
            tg.start_soon(tool, {"query": "the same picture", "top_k": 3}, context)
    assert sum(host.downloads.values()) == 3
    assert set(host.downloads.values()) == {1}
    paths = {tuple(r.local_path for r in c.images.records()) for c in contexts}
    assert len(paths) == 1 and len(next(iter(paths))) == 3
    cache = await ImageCache.for_runtime(runtime)
    assert cache.stats.downloads == 3 and cache.stats.joins + cache.stats.hits == 147


@pytest.mark.parametrize("arguments", [{}, {"query": ""}, {"query": "   "}, {"query": 5}])
async def test_empty_image_query_gets_a_clear_observation(
    runtime: Runtime, arguments: dict[str, object]
) -> None:
    backend = ScriptedBackend()
    text = await ImageSearch(backend=backend)(arguments, make_context(runtime))
    assert text.startswith("Error: image_search needs a non-empty 'query'")
    assert backend.calls == []


async def test_image_query_given_as_an_array_uses_its_first_string(runtime: Runtime) -> None:
    backend = ScriptedBackend()
    text = await ImageSearch(backend=backend)({"query": ["", "owl", "bat"]}, make_context(runtime))
    assert backend.calls == [("images", "owl", 5)]
    assert text == "--- image search result for [owl] ---\n--- end of image search result ---"


async def test_image_search_errors(
    serper: Serper, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    sim, url = serper
    sim.fail_next(1, 400, body={"message": "Bad query.", "statusCode": 400})
    tool = ImageSearch(backend=SerperBackend(base_url=url, api_key=KEY), cache=cache_settings)
    text = await tool({"query": "x"}, make_context(runtime))
    assert text.startswith("--- image search error for [x]: ") and "Bad query." in text
    refused = ImageSearch(backend=SerperBackend(base_url=url, api_key="nope-nope"))
    with pytest.raises(AuthenticationError):
        await refused({"query": "x"}, make_context(runtime))
