"""Deferred image writes: the observation comes first, the files before the answer.

Small images are verified on the loop and written off the rollout's path; the
rollout settles the writes before it resolves its answer, and nothing a
cancelled or failed writer left behind is lost or waited for for ever.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from genevolve_async import GenEvolveAgent, Runtime
from genevolve_async.agent import ToolCallFinished
from genevolve_async.sim import SimImageHost, SimPolicy, SimSerper
from genevolve_async.tools import ImageCache, ImageCacheSettings, SideWork
from genevolve_async.tools import _image_cache as image_cache_module
from genevolve_async.tools._image_files import read_index_log

from .test_agent_with_search import is_file, search_tools

Host = tuple[SimImageHost, str]


def exists(path: str) -> bool:
    return Path(path).exists()


def slow_disk(monkeypatch: pytest.MonkeyPatch, delay: float) -> None:
    """Every deferred write hop sleeps ``delay`` first."""
    real = image_cache_module.place_images

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(delay)
        return real(*args, **kwargs)

    monkeypatch.setattr(image_cache_module, "place_images", slow)


def gated_disk(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[str]]:
    """Every deferred write hop waits for the returned gate; the list says which hops ended.

    The wait gives up after 30 s, so a rollout that waits for the disk before
    it may open the gate finishes late with a write ended, rather than hanging.
    """
    real = image_cache_module.place_images
    gate = threading.Event()
    ended: list[str] = []

    def gated(*args: Any, **kwargs: Any) -> Any:
        gate.wait(timeout=30)
        try:
            return real(*args, **kwargs)
        finally:
            ended.append("write")

    monkeypatch.setattr(image_cache_module, "place_images", gated)
    return gate, ended


def broken_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every deferred write is refused, as a full disk would."""

    def refuse(jobs: list[Any], **_: Any) -> dict[Path, OSError]:
        return {job.final: OSError(28, "No space left on device") for job in jobs}

    monkeypatch.setattr(image_cache_module, "place_images", refuse)


@pytest.fixture
async def cache(runtime: Runtime, cache_settings: ImageCacheSettings) -> ImageCache:
    return await ImageCache.for_runtime(runtime, cache_settings)


async def test_the_observation_does_not_wait_for_the_disk_but_the_answer_does(
    monkeypatch: pytest.MonkeyPatch,
    sim_policy: tuple[SimPolicy, str],
    serper: tuple[SimSerper, str],
    runtime: Runtime,
    cache_settings: ImageCacheSettings,
) -> None:
    gate, ended = gated_disk(monkeypatch)
    agent = GenEvolveAgent(
        runtime=runtime, base_url=sim_policy[1], tools=search_tools(serper[1], cache_settings)
    )
    writes_ended_at_observation: list[int] = []
    async with agent.stream("a lighthouse on a cliff at dawn") as events:
        async for event in events:
            if isinstance(event, ToolCallFinished) and event.name == "image_search":
                # The policy has its observation; no write has been let through yet.
                writes_ended_at_observation.append(len(ended))
                paths = [
                    line.split("local_path: ", 1)[1]
                    for line in event.observation.splitlines()
                    if "local_path: " in line
                ]
                assert paths and not any(exists(p) for p in paths)
                gate.set()  # now the disk may go on
            if event.kind == "finished":
                result = event.result
    assert writes_ended_at_observation == [0]
    assert result.termination == "answer", result.error
    assert ended, "the deferred write never ran"
    # Every image the policy saw is a file by the time the result exists.
    assert result.registered_images
    assert all(is_file(r.local_path) for r in result.registered_images)
    assert [r.img_id for r in result.reference_images] == ["IMG_001", "IMG_002"]


async def test_a_refused_write_drops_the_reference_and_the_rollout_still_answers(
    monkeypatch: pytest.MonkeyPatch,
    sim_policy: tuple[SimPolicy, str],
    serper: tuple[SimSerper, str],
    runtime: Runtime,
    cache_settings: ImageCacheSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken_disk(monkeypatch)
    agent = GenEvolveAgent(
        runtime=runtime, base_url=sim_policy[1], tools=search_tools(serper[1], cache_settings)
    )
    result = await agent.arun("a lighthouse on a cliff at dawn")
    assert result.termination == "answer", result.error
    assert result.reference_images == []  # both references were lost with their files
    assert result.registered_images == []
    cache = await ImageCache.for_runtime(runtime)
    assert cache.stats.dropped["io_error"] >= 2
    assert "could not store image" in caplog.text
    assert not any(p.suffix == ".png" for p in cache.folder.iterdir())


async def test_fetch_many_waits_for_the_files(
    monkeypatch: pytest.MonkeyPatch,
    images: Host,
    cache: ImageCache,
) -> None:
    slow_disk(monkeypatch, delay=0.05)
    _, url = images
    paths = await cache.fetch_many([f"{url}/img/a.png", f"{url}/img/b.png"])
    assert all(p is not None and p.is_file() for p in paths)


async def test_fetch_many_reports_a_refused_write_as_dropped(
    monkeypatch: pytest.MonkeyPatch,
    images: Host,
    cache: ImageCache,
) -> None:
    broken_disk(monkeypatch)
    _, url = images
    assert await cache.fetch_many([f"{url}/img/a.png"]) == [None]
    monkeypatch.undo()  # the disk recovers: the image is fetched and written again
    path = await cache.fetch(f"{url}/img/a.png")
    assert path is not None and path.is_file()


async def test_a_write_nobody_ensured_is_done_by_the_next_caller(
    images: Host, cache: ImageCache
) -> None:
    host, url = images
    [path] = await cache.download_many([f"{url}/img/owl.png"])  # its owner never stores it
    assert path is not None and not path.exists()
    assert await cache.fetch(f"{url}/img/owl.png") == path  # a memo hit, and the write
    assert path.is_file() and host.downloads["owl.png"] == 1


async def test_closing_the_cache_writes_what_is_still_unwritten(
    images: Host, cache_settings: ImageCacheSettings
) -> None:
    _, url = images
    async with Runtime() as runtime:
        cache = await ImageCache.for_runtime(runtime, cache_settings)
        [path] = await cache.download_many([f"{url}/img/elk.png"])
        assert path is not None and not path.exists()
    assert path.is_file()
    index = (cache.folder / ".index.log").read_text()
    assert path.name in index


async def test_cancelling_the_writer_neither_loses_the_file_nor_strands_its_waiters(
    monkeypatch: pytest.MonkeyPatch,
    images: Host,
    cache: ImageCache,
) -> None:
    slow_disk(monkeypatch, delay=0.3)
    _, url = images
    [path] = await cache.download_many([f"{url}/img/lynx.png"])
    assert path is not None
    waited: list[set[Path]] = []

    async def waiter() -> None:
        await anyio.sleep(0.05)  # the writer has started
        waited.append(await cache.ensure_stored([path]))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            with anyio.move_on_after(0.1):  # the writer's caller gives up mid-write
                await cache.ensure_stored([path])
    assert waited == [set()]
    assert path.is_file()


async def test_side_work_settles_and_logs_failures_instead_of_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[str] = []

    async def slow() -> None:
        await anyio.sleep(0.05)
        done.append("slow")

    async def broken() -> None:
        raise OSError("disk on fire")

    async with anyio.create_task_group() as tg:
        side = SideWork(tg)
        await side.settle()  # nothing started: returns at once
        side.start(slow, name="slow work")
        side.start(broken, name="broken work")
        await side.settle()
        assert done == ["slow"]
        side.start(slow)  # settle again after more work
        await side.settle()
    assert done == ["slow", "slow"]
    assert "broken work failed" in caplog.text


async def test_an_orphaned_write_rides_along_with_the_next_one(
    images: Host, cache: ImageCache
) -> None:
    _, url = images
    [orphan] = await cache.download_many([f"{url}/img/orphan.png"])  # its rollout was cancelled
    assert orphan is not None and not orphan.exists()
    # Another image's write takes the orphan along: its bytes do not wait for the cache to close.
    [other] = await cache.fetch_many([f"{url}/img/other.png"])
    assert other is not None and other.is_file()
    assert orphan.is_file()


async def test_a_hop_takes_along_the_oldest_orphans_up_to_its_size(
    monkeypatch: pytest.MonkeyPatch, images: Host, cache: ImageCache
) -> None:
    monkeypatch.setattr(image_cache_module, "_WRITES_PER_HOP", 3)
    _, url = images
    orphans = await cache.download_many([f"{url}/img/orphan{i}.png" for i in range(5)])
    assert all(p is not None and not p.exists() for p in orphans)
    oldest_first = list(cache._unstarted)  # in the order their downloads ended
    assert sorted(oldest_first) == sorted(p for p in orphans if p is not None)
    # One image of its own plus the two oldest orphans make a hop of three.
    [first] = await cache.fetch_many([f"{url}/img/first.png"])
    assert first is not None and first.is_file()
    assert [p.exists() for p in oldest_first] == [True, True, False, False, False]
    [second] = await cache.fetch_many([f"{url}/img/second.png"])
    assert second is not None and second.is_file()
    assert [p.exists() for p in oldest_first] == [True, True, True, True, False]
    await cache.aclose()  # the last orphan is written at close, nothing is left waiting
    assert all(p is not None and p.is_file() for p in orphans)
    assert cache._writes == {} and cache._unstarted == {}


async def test_a_failure_is_reported_to_whoever_asks_for_that_file(
    monkeypatch: pytest.MonkeyPatch,
    images: Host,
    cache: ImageCache,
) -> None:
    broken_disk(monkeypatch)
    _, url = images
    paths = await cache.download_many([f"{url}/img/lost{i}.png" for i in range(4)])
    # The first call writes (and fails) all four, but answers only for its own...
    assert await cache.ensure_stored(paths[:1]) == {paths[0]}
    # ...and the others learn of their failure when they ask.
    assert await cache.ensure_stored(paths[1:]) == set(paths[1:])


async def test_failed_writes_are_remembered_without_their_bytes_and_not_for_ever(
    monkeypatch: pytest.MonkeyPatch,
    images: Host,
    cache: ImageCache,
) -> None:
    broken_disk(monkeypatch)
    monkeypatch.setattr(image_cache_module, "_FAILED_WRITES_KEPT", 2)
    _, url = images
    paths = await cache.download_many([f"{url}/img/lost{i}.png" for i in range(4)])
    assert await cache.ensure_stored(paths) == set(paths)
    # The last two failures are remembered; no write, and so no bytes, is kept.
    assert len(cache._failed) == 2 and cache._failed.keys() <= set(paths)
    assert cache._writes == {}


async def test_closing_the_cache_waits_for_a_write_under_way(
    monkeypatch: pytest.MonkeyPatch, images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    gate, ended = gated_disk(monkeypatch)
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    _, url = images
    paths = await cache.download_many([f"{url}/img/late{i}.png" for i in range(3)])
    failed: list[set[Path]] = []

    async def writer() -> None:
        failed.append(await cache.ensure_stored(paths))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            await anyio.sleep(0.05)  # the hop has started and waits at the gate
            tg.start_soon(cache.aclose)
            await anyio.sleep(0.05)  # aclose is waiting for the hop, not closing under it
            assert not ended
            gate.set()
    assert failed == [set()]
    # Every line reached the index log: the descriptor was still open.
    logged = read_index_log(cache.folder / ".index.log").values()
    assert {cache.folder / name for name in logged} == set(paths)
