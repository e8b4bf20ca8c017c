"""Whole rollouts with the real search tools over the simulated policy, Serper and image host."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from genevolve_async import GenEvolveAgent, ProviderLimits, Runtime, RuntimeConfig
from genevolve_async._limits import max_in_window
from genevolve_async.bench import LoopLagProbe
from genevolve_async.sim import Latency, PolicyScript, SimImageHost, SimPolicy, SimSerper, SimServer
from genevolve_async.tools import (
    ImageCache,
    ImageCacheSettings,
    ImageSearch,
    QueryKnowledge,
    SerperBackend,
    Tool,
    WebSearch,
)

from ._fakes import KEY


def search_tools(serper_url: str, settings: ImageCacheSettings, key: str = KEY) -> list[Tool]:
    backend = SerperBackend(base_url=serper_url, api_key=key)
    return [
        WebSearch(backend=backend),
        ImageSearch(backend=backend, cache=settings),
        QueryKnowledge(),
    ]


def is_file(path: str) -> bool:
    return Path(path).is_file()


async def test_default_script_rollout_answers_with_two_downloaded_references(
    sim_policy: tuple[SimPolicy, str],
    serper: tuple[SimSerper, str],
    runtime: Runtime,
    cache_settings: ImageCacheSettings,
) -> None:
    serper[0].latency = Latency(mean=0.05)  # so the call's two queries overlap
    agent = GenEvolveAgent(
        runtime=runtime,
        base_url=sim_policy[1],
        tools=search_tools(serper[1], cache_settings),
    )
    result = await agent.arun("a lighthouse on a cliff at dawn")
    assert result.termination == "answer", result.error
    assert [r.img_id for r in result.reference_images] == ["IMG_001", "IMG_002"]
    assert all(is_file(r.local_path) for r in result.reference_images)
    assert result.tool_calls == {"search": 1, "image_search": 1, "query_knowledge": 1}
    observations = "\n".join(str(m["content"]) for m in result.messages if m["role"] == "user")
    assert "--- search result for [a lighthouse on a cliff at fact 1.0.0] ---" in observations
    assert (
        "--- image search result for [a lighthouse on a cliff at reference 2.0] ---" in observations
    )
    assert serper[0].stats.route("POST /search").peak_in_flight == 2  # the call's two queries


async def test_default_tools_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    sim_policy: tuple[SimPolicy, str],
    serper: tuple[SimSerper, str],
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("SERPER_API_KEY", KEY)
    monkeypatch.setenv("SERPER_BASE_URL", serper[1])
    monkeypatch.setenv("IMAGE_DOWNLOAD_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("GENEVOLVE_ALLOW_PRIVATE_HOSTS", "1")
    agent = GenEvolveAgent(runtime=runtime, base_url=sim_policy[1])
    assert [type(t).__name__ for t in agent.tools.values()] == [
        "WebSearch",
        "ImageSearch",
        "QueryKnowledge",
    ]
    result = await agent.arun("a red fox in fresh snow")
    assert result.termination == "answer", result.error
    assert len(result.reference_images) == 2
    assert all(r.local_path.startswith(str(tmp_path / "from-env")) for r in result.reference_images)


async def test_a_refused_key_ends_the_rollout_clearly(
    sim_policy: tuple[SimPolicy, str],
    serper: tuple[SimSerper, str],
    runtime: Runtime,
    cache_settings: ImageCacheSettings,
) -> None:
    agent = GenEvolveAgent(
        runtime=runtime,
        base_url=sim_policy[1],
        tools=search_tools(serper[1], cache_settings, key="sk-leaked-if-shown-42"),
    )
    result = await agent.arun("a castle in fog")
    assert result.termination == "error"
    assert result.error is not None and result.error.kind == "authentication"
    assert "sk-leaked" not in str(result.to_dict())
    assert len(serper[0].arrivals["search"]) == 2  # the call's two queries, no retries


@pytest.mark.slow
async def test_500_rollouts_stay_within_the_serper_limit(tmp_path: Path) -> None:
    rate = 200
    policy = SimPolicy(script=PolicyScript(image_top_k=2))
    host = SimImageHost()
    config = RuntimeConfig(
        limits={"serper": ProviderLimits(rate=rate, max_in_flight=64)}, record_grants=True
    )
    settings = ImageCacheSettings(folder=tmp_path / "cache", allow_private=True)
    async with SimServer(policy.app) as policy_server, SimServer(host.app) as host_server:
        serper = SimSerper(image_host=host_server.url, api_key=KEY)
        async with SimServer(serper.app) as serper_server, Runtime(config) as runtime:
            agent = GenEvolveAgent(
                runtime=runtime,
                base_url=policy_server.url + "/v1",
                tools=search_tools(serper_server.url, settings),
            )
            answered = 0

            async def one(i: int) -> None:
                nonlocal answered
                result = await agent.arun(f"rollout {i} a harbour at night")
                answered += result.termination == "answer" and len(result.reference_images) == 2

            started = anyio.current_time()
            async with anyio.create_task_group() as tg:
                for i in range(500):
                    tg.start_soon(one, i)
            elapsed = anyio.current_time() - started
            limiter = runtime.limiter("serper")
            cache = await ImageCache.for_runtime(runtime)
    assert answered == 500
    grants = limiter.grant_times
    assert grants is not None and len(grants) == 1500  # 2 queries + 1 image search each
    assert max_in_window(grants) <= rate  # on the limiter's own clock: load cannot bunch it
    # Every request the server saw went through a grant. (Its arrival times carry
    # loopback jitter, which grows with the machine's load: printed, not asserted.)
    assert len(serper.request_times()) == len(grants)
    assert elapsed >= (1500 - rate) / rate  # the limit held (a lower bound, cannot flake)
    assert cache.stats.downloads == 1000 and not cache.stats.dropped
    print(
        f"\n500 rollouts: {elapsed:.2f}s, client max/1s window {max_in_window(grants)}, "
        f"server max/1s window {max_in_window(serper.request_times())}, "
        f"limiter waits {limiter.stats.waits}, peak in flight {limiter.stats.peak_in_flight}"
    )


async def test_search_rollouts_do_not_stall_the_loop(
    sim_policy: tuple[SimPolicy, str],
    serper: tuple[SimSerper, str],
    runtime: Runtime,
    cache_settings: ImageCacheSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = GenEvolveAgent(
        runtime=runtime, base_url=sim_policy[1], tools=search_tools(serper[1], cache_settings)
    )
    probe = LoopLagProbe(interval=0.005)
    results = []

    async def one(i: int) -> None:
        results.append(await agent.arun(f"loop check {i} a glass bridge"))

    with caplog.at_level(logging.DEBUG, logger="genevolve_async"):
        async with anyio.create_task_group() as outer:
            outer.start_soon(probe.run)
            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(one, i)
            outer.cancel_scope.cancel()
    assert [len(r.reference_images) for r in results] == [2] * 100
    # Pillow or a sync file write on the loop is CPU the loop's thread spends
    # between wake-ups, however busy the machine is; generous bounds.
    assert probe.worst_cpu < 0.5, f"the loop's thread ran {probe.worst_cpu:.3f}s without a break"
    assert probe.worst < 5.0, f"event loop stalled for {probe.worst:.3f}s"  # a hang detector
    assert KEY not in caplog.text
