"""Fixtures for the search tools: a simulated Serper in front of a simulated image host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from genevolve_async import RetryPolicy, Runtime, RuntimeConfig
from genevolve_async.sim import Latency, SimImageHost, SimSerper, SimServer
from genevolve_async.tools import ImageCacheSettings, SerperBackend

from ._fakes import KEY


@pytest.fixture
async def images() -> AsyncIterator[tuple[SimImageHost, str]]:
    """An image host with shuffled latency and small faults (oversized = 300 kB)."""
    host = SimImageHost(
        latency=Latency(mean=0.01), shuffle=True, oversized_bytes=300_000, slow_delay=0.05
    )
    async with SimServer(host.app) as server:
        yield host, server.url


@pytest.fixture
async def serper(images: tuple[SimImageHost, str]) -> AsyncIterator[tuple[SimSerper, str]]:
    """A simulated Serper whose image results point at ``images``."""
    sim = SimSerper(image_host=images[1], api_key=KEY)
    async with SimServer(sim.app) as server:
        yield sim, server.url


@pytest.fixture
def backend(serper: tuple[SimSerper, str]) -> SerperBackend:
    return SerperBackend(base_url=serper[1], api_key=KEY)


@pytest.fixture
def cache_settings(tmp_path: Path) -> ImageCacheSettings:
    """Loopback hosts allowed (the sims live there), 200 kB cap, 5 s per download."""
    return ImageCacheSettings(
        folder=tmp_path / "cache", allow_private=True, timeout=5.0, max_bytes=200_000
    )


@pytest.fixture
async def fast_runtime() -> AsyncIterator[Runtime]:
    """A runtime whose retries wait milliseconds (Retry-After still honoured)."""
    retry = RetryPolicy(initial=0.01, max_delay=0.05, jitter=0.0)
    async with Runtime(RuntimeConfig(retry=retry, record_grants=True)) as runtime:
        yield runtime
