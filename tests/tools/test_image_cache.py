"""ImageCache against a loopback image host: storage, single flight, drops, address guard."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.abc
import anyio
import pytest

from genevolve_async import ConfigurationError, ProviderLimits, Runtime
from genevolve_async.sim import Latency, SimImageHost
from genevolve_async.tools import ImageCache, ImageCacheSettings
from genevolve_async.tools._address import AddressPolicy, is_public_address
from genevolve_async.tools._image_settings import default_image_dir

Host = tuple[SimImageHost, str]


async def cancel_once(began: Callable[[], bool], scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` as soon as ``began()`` holds: mid-download, whatever the load."""
    with anyio.fail_after(10):  # a hang detector
        while not began():  # noqa: ASYNC110 - the sim host exposes counts, no event
            await anyio.sleep(0.005)
    scope.cancel()


def files_under(folder: Path) -> list[Path]:
    """Every file in the cache folder, partial downloads included; not the index log."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".index.log")


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


async def test_download_is_content_addressed_and_verified(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    host, url = images
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    path = await cache.fetch(f"{url}/img/fox.png")
    assert path is not None and path.parent == cache.folder
    data = path.read_bytes()
    assert data == host.image_bytes("fox.png")
    assert path.name == hashlib.sha256(data).hexdigest()[:32] + ".png"
    assert (cache.stats.downloads, cache.stats.requests, cache.stats.bytes) == (1, 1, len(data))
    # Only the image and its index entry remain; no partial file.
    assert files_under(cache.folder) == [path]
    assert (cache.folder / ".index.log").read_text().splitlines() == [
        f"{hashlib.sha256(f'{url}/img/fox.png'.encode()).hexdigest()[:40]}\t{path.name}"
    ]


async def test_same_bytes_at_two_urls_are_one_file(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    _, url = images
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    direct = await cache.fetch(f"{url}/img/owl.png")
    redirected = await cache.fetch(f"{url}/redirect/2/owl.png")
    assert direct is not None and direct == redirected
    assert cache.stats.requests == 4  # 1 + two redirect hops + the image
    assert len(images_in(cache.folder)) == 1


async def test_hits_in_memory_and_on_disk_after_a_rerun(
    images: Host, cache_settings: ImageCacheSettings
) -> None:
    host, url = images
    async with Runtime() as first:
        cache = await ImageCache.for_runtime(first, cache_settings)
        path = await cache.fetch(f"{url}/img/elk.png")
        assert await cache.fetch(f"{url}/img/elk.png") == path
        assert (cache.stats.downloads, cache.stats.hits) == (1, 1)
    async with Runtime() as second:  # a rerun: new process state, same folder
        cache = await ImageCache.for_runtime(second, cache_settings)
        assert await cache.fetch(f"{url}/img/elk.png") == path
        assert (cache.stats.downloads, cache.stats.hits) == (0, 1)
    assert host.downloads["elk.png"] == 1


async def test_concurrent_requests_share_one_download(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    host, url = images
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    paths: list[Path | None] = []

    async def one() -> None:
        paths.append(await cache.fetch(f"{url}/img/f-slow-bear.png"))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(one)
    assert host.downloads["f-slow-bear.png"] == 1
    assert len(set(paths)) == 1 and paths[0] is not None
    assert cache.stats.downloads == 1 and cache.stats.joins == 49


async def test_waiters_take_over_when_the_downloader_is_cancelled(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    host, url = images
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    image = f"{url}/img/f-slow-lynx.png"
    result: list[Path | None] = []

    async def waiter() -> None:
        result.append(await cache.fetch(image))

    def waiter_joined_the_download() -> bool:
        return host.downloads["f-slow-lynx.png"] == 1 and cache.stats.joins == 1

    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as first:  # the first caller gives up mid-body
            tg.start_soon(waiter)
            tg.start_soon(cancel_once, waiter_joined_the_download, first)
            await cache.fetch(image)
    assert result and result[0] is not None and result[0].is_file()
    assert host.downloads["f-slow-lynx.png"] == 2
    assert not list((cache.folder / ".partial").iterdir())


async def test_a_cancelled_download_leaves_no_partial_file(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    host, url = images
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    partial = cache.folder / ".partial"
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            tg.start_soon(cancel_once, lambda: host.downloads["f-stall-wolf.png"] == 1, scope)
            await cache.fetch(f"{url}/img/f-stall-wolf.png")
    assert scope.cancelled_caught
    assert host.downloads["f-stall-wolf.png"] == 1
    assert files_under(cache.folder) == []
    assert not list(partial.iterdir())


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("f-corrupt-a.png", "not_image"),
        ("f-truncated-a.png", "not_image"),
        ("f-html-a.png", "content_type"),
        ("f-wrongtype-a.png", "content_type"),
        ("f-huge-a.png", "too_large"),
        ("f-hugestream-a.png", "too_large"),
        ("f-bomb-a.png", "too_many_pixels"),
        ("f-status404-a.png", "http_status"),
        ("f-status500-a.png", "http_status"),
        ("f-stall-a.png", "timeout"),
        ("f-slow-a.png", "timeout"),
    ],
)
async def test_bad_downloads_are_dropped_and_leave_no_files(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings, name: str, reason: str
) -> None:
    settings = dataclasses.replace(cache_settings, timeout=0.3)
    cache = await ImageCache.for_runtime(runtime, settings)
    assert await cache.fetch(f"{images[1]}/img/{name}") is None
    assert dict(cache.stats.dropped) == {reason: 1}
    assert files_under(cache.folder) == []


async def test_pixel_limit_applies_before_decoding(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    settings = dataclasses.replace(cache_settings, max_pixels=96 * 64 - 1)
    cache = await ImageCache.for_runtime(runtime, settings)
    assert await cache.fetch(f"{images[1]}/img/ok.png") is None
    assert cache.stats.dropped["too_many_pixels"] == 1


async def test_unreachable_hosts_are_dropped(
    runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    assert await cache.fetch("http://127.0.0.1:1/nothing-listens-here.png") is None
    assert cache.stats.dropped == {"network": 1}
    assert files_under(cache.folder) == []


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/a.png", "file:///etc/passwd", "data:image/png;base64,AAAA", "http://"],
)
async def test_only_http_urls_with_a_host(
    runtime: Runtime, cache_settings: ImageCacheSettings, url: str
) -> None:
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    assert await cache.fetch(url) is None
    assert cache.stats.dropped["bad_url"] == 1 and cache.stats.requests == 0


async def test_redirects_are_bounded(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    settings = dataclasses.replace(cache_settings, max_redirects=3)
    cache = await ImageCache.for_runtime(runtime, settings)
    assert await cache.fetch(f"{images[1]}/redirect/3/ok.png") is not None
    assert await cache.fetch(f"{images[1]}/redirect/4/other.png") is None
    assert cache.stats.dropped["too_many_redirects"] == 1
    assert images[0].downloads["other.png"] == 0


# -- the address guard -----------------------------------------------------------


def guarded(settings: ImageCacheSettings, *networks: str) -> ImageCacheSettings:
    return dataclasses.replace(settings, allow_private=False, allowed_networks=networks)


@pytest.mark.parametrize("host_name", ["127.0.0.1", "localhost"])
async def test_private_hosts_are_refused_by_default(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings, host_name: str
) -> None:
    host, url = images
    port = url.rsplit(":", 1)[1]
    cache = await ImageCache.for_runtime(runtime, guarded(cache_settings))
    assert await cache.fetch(f"http://{host_name}:{port}/img/secret.png") is None
    assert cache.stats.dropped == {"private_address": 1}
    assert host.downloads["secret.png"] == 0  # refused before any connection
    assert files_under(cache.folder) == []


async def test_every_redirect_hop_is_checked(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    host, url = images  # url is http://127.0.0.1:PORT
    port = url.rsplit(":", 1)[1]
    cache = await ImageCache.for_runtime(runtime, guarded(cache_settings, "127.0.0.1/32"))
    # The first hop is allowed (an explicitly allowed network), the target is not.
    target = f"http://127.0.0.2:{port}/img/internal.png"
    assert await cache.fetch(f"{url}/redirect-to?url={target}") is None
    assert cache.stats.dropped == {"private_address": 1}
    assert host.downloads["internal.png"] == 0
    assert files_under(cache.folder) == []
    # The guarded client still downloads from allowed addresses, hops included.
    assert await cache.fetch(f"{url}/redirect/2/allowed.png") is not None


async def test_a_pooled_connection_is_checked_again(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    host, url = images
    # An unguarded request (a policy call, say) leaves a keep-alive connection
    # to the host; a guarded download must not ride it.
    async with runtime.http.get(f"{url}/img/warm.png") as resp:
        await resp.read()
    cache = await ImageCache.for_runtime(runtime, guarded(cache_settings))
    assert await cache.fetch(f"{url}/img/pooled.png") is None
    assert cache.stats.dropped == {"private_address": 1}
    assert host.downloads["pooled.png"] == 0


async def test_a_name_with_any_refused_address_is_refused(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    host, url = images
    port = int(url.rsplit(":", 1)[1])

    class Rebinding(aiohttp.abc.AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[Any]:
            return [
                {"hostname": host, "host": a, "port": port, "family": 2, "proto": 0, "flags": 0}
                for a in ("93.184.216.34", "127.0.0.1")
            ]

        async def close(self) -> None:
            pass

    connector = runtime.http.connector
    connector._resolver = Rebinding()  # type: ignore[union-attr]
    cache = await ImageCache.for_runtime(runtime, guarded(cache_settings))
    assert await cache.fetch(f"http://images.example:{port}/img/rebind.png") is None
    assert cache.stats.dropped == {"private_address": 1}
    assert host.downloads["rebind.png"] == 0


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::a00:1", False),
    ],
)
def test_public_address_table(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_address_policy_networks_and_override() -> None:
    policy = AddressPolicy.build(allow_private=False, networks=["10.2.0.0/16"])
    assert policy.allows(ipaddress.ip_address("10.2.3.4"))
    assert not policy.allows(ipaddress.ip_address("10.3.0.1"))
    assert AddressPolicy.build(allow_private=True, networks=[]).allows(
        ipaddress.ip_address("127.0.0.1")
    )


# -- settings ----------------------------------------------------------------------


def test_settings_read_the_environment_when_resolved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GENEVOLVE_ALLOW_PRIVATE_HOSTS", raising=False)
    monkeypatch.setenv("IMAGE_DOWNLOAD_DIR", str(tmp_path / "env-dir"))
    settings = ImageCacheSettings()
    assert settings.resolve().allow_private is False
    assert settings.resolve().folder == str(tmp_path / "env-dir")
    monkeypatch.setenv("GENEVOLVE_ALLOW_PRIVATE_HOSTS", "1")
    assert settings.resolve().allow_private is True
    assert ImageCacheSettings(allow_private=False).resolve().allow_private is False


def test_default_folder_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("IMAGE_DOWNLOAD_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = default_image_dir()
    if os.name == "posix" and "darwin" not in os.uname().sysname.lower():
        assert folder == tmp_path / "genevolve-async" / "images"
    assert "genevolve-async" in str(folder)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_bytes": 0},
        {"timeout": 0},
        {"max_redirects": -1},
        {"max_pixels": 0},
        {"allowed_networks": ("not a network",)},
        {"allowed_networks": "10.0.0.0/8"},
    ],
)
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ImageCacheSettings(**bad)  # type: ignore[arg-type]


async def test_one_cache_per_runtime(runtime: Runtime, cache_settings: ImageCacheSettings) -> None:
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    assert await ImageCache.for_runtime(runtime, cache_settings) is cache
    assert await ImageCache.for_runtime(runtime) is cache
    with pytest.raises(ConfigurationError, match="different settings"):
        await ImageCache.for_runtime(runtime, dataclasses.replace(cache_settings, timeout=1.0))


def test_index_log_skips_torn_and_unsafe_lines(tmp_path: Path) -> None:
    from genevolve_async.tools._image_files import read_index_log

    log = tmp_path / ".index.log"
    log.write_bytes(b"k1\ta.png\nk2\t../escape.png\nk3\t.hidden\nno-tab-here\nk4\tb.jpg\nk5\tc.pn")
    # The last line is a torn append: it may parse to a name that does not exist,
    # which is harmless because a hit is only taken when that file is there.
    entries = read_index_log(log)
    assert entries["k1"] == "a.png" and entries["k4"] == "b.jpg"
    assert "k2" not in entries and "k3" not in entries
    assert read_index_log(tmp_path / "missing.log") == {}


# -- downloads fan out ------------------------------------------------------------


def _connections_in_use(runtime: Runtime) -> int:
    # aiohttp has no public counter of checked-out connections.
    connector = runtime.http.connector
    assert connector is not None
    return len(connector._acquired)  # type: ignore[attr-defined]


async def test_small_images_download_concurrently(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    host, url = images
    # Answers slow enough that all five requests are out before the first comes
    # back, however busy the machine (0-20 ms shuffled ones could finish first).
    host.shuffle, host.latency = False, Latency(mean=0.5)
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    paths = await cache.fetch_many([f"{url}/img/fan-{i}.png" for i in range(5)])
    assert all(p is not None and p.is_file() for p in paths)
    assert host.stats.route("GET /img/{name}").peak_in_flight == 5  # all five at once
    assert _connections_in_use(runtime) == 0


async def test_a_stalled_answer_does_not_hold_up_the_others(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    _, url = images
    cache = await ImageCache.for_runtime(runtime, dataclasses.replace(cache_settings, timeout=0.3))
    urls = [f"{url}/img/f-stall-first.png"] + [f"{url}/img/after-{i}.png" for i in range(4)]
    paths = await cache.fetch_many(urls)
    assert paths[0] is None and dict(cache.stats.dropped) == {"timeout": 1}
    assert all(p is not None and p.is_file() for p in paths[1:])


async def test_a_cancelled_fan_out_gives_back_its_admissions_and_connections(
    images: Host, runtime: Runtime, cache_settings: ImageCacheSettings
) -> None:
    host, url = images
    cache = await ImageCache.for_runtime(runtime, cache_settings)
    urls = [f"{url}/img/f-stall-{i}.png" for i in range(3)]
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            tg.start_soon(cancel_once, lambda: sum(host.downloads.values()) == 3, scope)
            await cache.fetch_many(urls)
    assert scope.cancelled_caught
    assert runtime.limiter(cache.provider).in_flight == 0
    assert _connections_in_use(runtime) == 0
    assert files_under(cache.folder) == []


@pytest.mark.parametrize("cap", ["connections", "admissions"])
async def test_fan_outs_under_tight_caps_never_wait_on_each_other(
    images: Host, cache_settings: ImageCacheSettings, cap: str
) -> None:
    _, url = images
    # Eight fan-outs of five downloads share two connections (or two
    # admissions): beginning a fan-out must never wait holding what others need.
    if cap == "connections":
        runtime = Runtime(max_connections=2)
    else:
        runtime = Runtime(limits={"images": ProviderLimits(max_in_flight=2)})
    async with runtime:
        cache = await ImageCache.for_runtime(runtime, cache_settings)
        results: list[list[Path | None]] = []

        async def fan_out(n: int) -> None:
            results.append(
                await cache.fetch_many([f"{url}/img/tight-{n}-{i}.png" for i in range(5)])
            )

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for n in range(8):
                    tg.start_soon(fan_out, n)
        assert len(results) == 8
        assert all(p is not None and p.is_file() for paths in results for p in paths)
        assert runtime.limiter(cache.provider).in_flight == 0
        assert _connections_in_use(runtime) == 0


async def test_a_refused_host_is_named_once_with_the_setting_that_allows_it(
    images: Host,
    runtime: Runtime,
    cache_settings: ImageCacheSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, url = images
    port = url.rsplit(":", 1)[1]
    cache = await ImageCache.for_runtime(runtime, guarded(cache_settings))
    with caplog.at_level("WARNING", logger="genevolve_async.tools.images"):
        for name in ("a.png", "b.png", "c.png"):
            assert await cache.fetch(f"{url}/img/{name}") is None
        assert await cache.fetch(f"http://localhost:{port}/img/d.png") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # once for 127.0.0.1, once for localhost
    assert "address 127.0.0.1 is not public" in warnings[0]
    assert "localhost" in warnings[1]
    for text in warnings:
        assert "GENEVOLVE_ALLOW_PRIVATE_HOSTS=1" in text and "allow_private=True" in text
