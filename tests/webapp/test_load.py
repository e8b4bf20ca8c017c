"""Many requests at once share one runtime: one connection pool, one agent, one cap."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from fastapi import FastAPI

from .conftest import RuntimeRecorder, Sims, asgi_client, service_of, uvicorn_server

REQUESTS = 200
POOL = 16


@asynccontextmanager
async def client_for(app: FastAPI, transport: str) -> AsyncIterator[httpx2.AsyncClient]:
    if transport == "asgi":
        async with asgi_client(app) as client:
            yield client
        return
    # Enough client connections that all 200 requests are in flight at once.
    limits = httpx2.Limits(max_connections=REQUESTS + 10, max_keepalive_connections=REQUESTS)
    async with (
        uvicorn_server(app) as url,
        httpx2.AsyncClient(base_url=url, limits=limits, timeout=60) as client,
    ):
        yield client


@pytest.mark.parametrize("transport", ["asgi", "uvicorn"])
async def test_200_concurrent_programs_share_one_runtime_and_pool(
    make_app: Callable[..., FastAPI], runtimes: RuntimeRecorder, sims: Sims, transport: str
) -> None:
    app = make_app(
        max_connections=POOL, max_concurrent_rollouts=64, queue_wait=60.0, max_queued=REQUESTS
    )
    statuses: list[int] = []
    terminations: list[str] = []
    peak_running = peak_inside = 0
    started = time.monotonic()
    async with client_for(app, transport) as client:
        service = service_of(app)

        async def one(i: int) -> None:
            response = await client.post("/v1/programs", json={"prompt": f"scene number {i}"})
            statuses.append(response.status_code)
            terminations.append(response.json().get("termination", "?"))

        async def watch() -> None:
            nonlocal peak_running, peak_inside
            while True:
                stats = service.admission.statistics()
                peak_running = max(peak_running, stats.running)
                peak_inside = max(peak_inside, stats.running + stats.waiting)
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            async with anyio.create_task_group() as requests:
                for i in range(REQUESTS):
                    requests.start_soon(one, i)
            tg.cancel_scope.cancel()
        runtime = service.runtime
    elapsed = time.monotonic() - started
    assert statuses == [200] * REQUESTS
    assert terminations == ["answer"] * REQUESTS
    assert runtimes.made == [runtime]  # one runtime for every request
    assert peak_running == 64  # the cap was reached, and held
    assert peak_inside == REQUESTS  # all 200 were in the app at once (64 running, the rest queued)
    # One pool: the policy saw every rollout's four rounds over at most POOL connections.
    assert sims.policy.stats.route("POST /v1/chat/completions").requests == 4 * REQUESTS
    assert 1 <= len(sims.policy.stats.connections) <= POOL
    assert len(sims.serper.stats.connections) <= POOL
    assert elapsed < 60
