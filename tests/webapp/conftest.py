"""Fixtures for the web app: simulated backends, settings pointing at them, clients.

The app is driven two ways: in-process through httpx2's ASGI transport (with
the lifespan run by hand, since the transport does not run it), and through
a real uvicorn server on a loopback port, in this test's event loop so the
tests can read the app's service and the sims' statistics directly.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from fastapi import FastAPI

from examples.webapp._service import WebService
from examples.webapp.app import create_app
from examples.webapp.settings import WebSettings
from genevolve_async import RetryPolicy, Runtime, RuntimeConfig
from genevolve_async.sim import (
    Latency,
    SimImageHost,
    SimPolicy,
    SimQwenService,
    SimSerper,
    SimServer,
)

POLICY_KEY = "sk-policy-SECRET-0123456789"
SERPER_KEY = "serper-SECRET-9876543210"


@dataclass(kw_only=True, slots=True)
class Sims:
    """The simulated backends one test talks to, and where they listen."""

    policy: SimPolicy
    policy_url: str
    serper: SimSerper
    serper_url: str
    images: SimImageHost
    qwen: SimQwenService
    qwen_url: str


@pytest.fixture
async def sims() -> AsyncIterator[Sims]:
    """Policy, Serper, image host and a two-GPU Qwen service, all fast by default."""
    images = SimImageHost(latency=Latency(mean=0.005))
    async with SimServer(images.app) as image_server:
        serper = SimSerper(image_host=image_server.url, api_key=SERPER_KEY)
        policy = SimPolicy(latency=Latency(mean=0.01))
        qwen = SimQwenService(gpus=2, latency=Latency(mean=0.01))
        async with (
            SimServer(serper.app) as serper_server,
            SimServer(policy.app) as policy_server,
            SimServer(qwen.app) as qwen_server,
        ):
            yield Sims(
                policy=policy,
                policy_url=policy_server.url + "/v1",
                serper=serper,
                serper_url=serper_server.url,
                images=images,
                qwen=qwen,
                qwen_url=qwen_server.url,
            )


@pytest.fixture
def make_settings(sims: Sims, tmp_path: Path) -> Callable[..., WebSettings]:
    """Settings pointing at ``sims``; keyword arguments override fields."""

    def make(**overrides: Any) -> WebSettings:
        values: dict[str, Any] = {
            "policy_urls": (sims.policy_url,),
            "policy_api_key": POLICY_KEY,
            "serper_url": sims.serper_url,
            "serper_api_key": SERPER_KEY,
            "qwen_urls": (sims.qwen_url,),
            "image_dir": str(tmp_path / "images"),
            "allow_private_hosts": True,
            "max_concurrent_rollouts": 8,
            "queue_wait": 5.0,
            "default_timeout": 30.0,
        }
        values.update(overrides)
        return WebSettings(**values)

    return make


@dataclass(kw_only=True, slots=True)
class RuntimeRecorder:
    """A runtime factory with fast retries that remembers every runtime it made."""

    made: list[Runtime] = field(default_factory=list)

    def __call__(self, settings: WebSettings) -> Runtime:
        retry = RetryPolicy(
            attempts=2, initial=0.01, max_delay=0.05, jitter=0.0, max_retry_after=0.05
        )
        runtime = Runtime(RuntimeConfig(retry=retry, max_connections=settings.max_connections))
        self.made.append(runtime)
        return runtime


@pytest.fixture
def runtimes() -> RuntimeRecorder:
    return RuntimeRecorder()


@pytest.fixture
def make_app(
    make_settings: Callable[..., WebSettings], runtimes: RuntimeRecorder
) -> Callable[..., FastAPI]:
    """An app over the sims; keyword arguments override settings fields."""

    def make(**overrides: Any) -> FastAPI:
        return create_app(make_settings(**overrides), runtime_factory=runtimes)

    return make


def service_of(app: FastAPI) -> WebService:
    """The app's service (only while its lifespan runs)."""
    service: WebService = app.state.service
    return service


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx2.AsyncClient]:
    """A client calling ``app`` in-process, with its lifespan running around it."""
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


@asynccontextmanager
async def uvicorn_server(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        http="h11",
        ws="none",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        backlog=1024,
    )
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            await wait_until(lambda: server.started, timeout=10)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()


_JOB_ENDED = re.compile(r"job \S+ (?:program|image|stream) (done|cancelled) after ")


@pytest.fixture
def job_outcomes(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """How each job of the test ended so far (``done`` or ``cancelled``), read from
    the service's own log line: what a cancellation did, without timing it."""
    caplog.set_level(logging.INFO, logger="examples.webapp")

    def outcomes() -> list[str]:
        found = (_JOB_ENDED.match(r.getMessage()) for r in caplog.records)
        return [m.group(1) for m in found if m]

    return outcomes


async def wait_until(predicate: Callable[[], bool], *, timeout: float) -> None:
    """Poll ``predicate``; fail after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - uvicorn, the app and the sims expose no event
            await anyio.sleep(0.01)


def _frames(task: asyncio.Task[Any]) -> Iterator[str]:
    """``file:qualname`` of each coroutine the task is suspended in, outermost first."""
    awaitable: Any = task.get_coro()
    while awaitable is not None:
        code = getattr(awaitable, "cr_code", None) or getattr(awaitable, "ag_code", None)
        if code is not None:
            yield f"{code.co_filename}:{code.co_qualname}"
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)


def _ours(where: str) -> bool:
    where = where.replace("\\", "/")
    return (
        ("genevolve_async" in where and "sim" not in where)
        or "examples/webapp" in where
        or ("examples.webapp" in where)
    )


def lingering_tasks() -> list[str]:
    """Tasks running code of the app or the library (the sims excluded).

    After a rollout is cancelled none should be left: every task the agent,
    its tools or the renderer starts has a parent that waits for it. A task
    counts by its name (anyio names tasks after their function) or by any
    coroutine it is suspended in (anyio wraps the function's coroutine).
    """
    found = []
    for task in asyncio.all_tasks():
        frames = list(_frames(task))
        if task is asyncio.current_task() or any("LifespanOn" in f for f in frames):
            continue  # the test itself, and the app's lifespan (it lives as long as the server)
        if _ours(task.get_name()) or any(_ours(f) for f in frames):
            found.append(f"{task.get_name()}: {' > '.join(frames)}")
    return found
