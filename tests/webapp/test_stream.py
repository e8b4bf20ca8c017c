"""Server-sent events and client disconnects, against a real uvicorn on loopback."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import anyio
import httpx2
import pytest
from fastapi import FastAPI

from examples.webapp._service import WebService
from genevolve_async.sim import Latency

from .conftest import (
    Sims,
    asgi_client,
    lingering_tasks,
    service_of,
    uvicorn_server,
    wait_until,
)

MakeApp = Callable[..., FastAPI]

TOOL_ROUND = ["round_started", "model_replied", "tool_call_started", "tool_call_finished"]
EXPECTED = [
    *TOOL_ROUND * 3,
    "round_started",
    "model_replied",
    "answered",
    "finished",
    "render_started",
    "image",
    "result",
]


async def read_stream(
    client: httpx2.AsyncClient, payload: dict[str, object]
) -> list[httpx2.ServerSentEvent]:
    async with client.sse("/v1/stream", method="POST", json=payload) as source:
        assert source.response.status_code == 200
        assert source.response.headers["cache-control"] == "no-store"
        return [event async for event in source]


SETTLE_WITHIN = 10.0
"""A hang detector, not a speed check: what follows each wait asserts what it stands for."""


async def settled(service: WebService, *, within: float = SETTLE_WITHIN) -> None:
    """Wait until no job runs and no slot is held; fail after ``within`` seconds."""
    await wait_until(
        lambda: not service.active and not service.admission.statistics().running, timeout=within
    )


async def test_stream_delivers_the_events_in_order_and_ends_with_the_result(
    make_app: MakeApp, sims: Sims
) -> None:
    app = make_app()
    async with uvicorn_server(app) as url, httpx2.AsyncClient(base_url=url) as client:
        events = await read_stream(client, {"prompt": "a heron in the reeds", "seed": 5})
        image = json.loads(events[-2].data)
        fetched = await client.get(image["url"])
    assert [e.event for e in events] == EXPECTED
    assert [int(e.id) for e in events] == list(range(1, len(EXPECTED) + 1))
    data = [json.loads(e.data) for e in events]
    assert [d["round"] for d in data if "round" in d and "final" in d] == [1, 2, 3, 4]
    assert [d["name"] for d in data if d.get("call_id") and "ok" not in d] == [
        "search", "image_search", "query_knowledge"
    ]  # fmt: skip
    finished, result = data[-4], data[-1]
    assert finished["summary"]["termination"] == "answer"
    assert result["status"] == 200
    assert result["termination"] == "answer"
    assert result["program"] == finished["program"]
    assert result["image"] == image
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"


async def test_stream_without_render_ends_at_the_rollout(make_app: MakeApp, sims: Sims) -> None:
    app = make_app()
    async with asgi_client(app) as client:
        events = await read_stream(client, {"prompt": "a heron", "render": False})
    assert [e.event for e in events] == [*EXPECTED[:-3], "result"]
    assert sims.qwen.renders == 0


async def test_stream_deadline_ends_with_a_timeout_result(make_app: MakeApp, sims: Sims) -> None:
    sims.policy.latency = Latency(mean=0.2)
    app = make_app()
    async with uvicorn_server(app) as url, httpx2.AsyncClient(base_url=url) as client:
        events = await read_stream(client, {"prompt": "a slow heron", "timeout": 0.5})
    kinds = [e.event for e in events]
    assert kinds[-3:] == ["finished", "error", "result"]
    assert "answered" not in kinds
    assert json.loads(events[-3].data)["summary"]["termination"] == "timeout"
    assert json.loads(events[-2].data) == {
        "type": "timeout",
        "message": "the request's 0.5s deadline passed before the rollout finished",
    }
    assert json.loads(events[-1].data)["status"] == 504


async def test_keepalive_pings_fill_quiet_stretches(make_app: MakeApp, sims: Sims) -> None:
    sims.qwen.latency = Latency(mean=0.5)
    app = make_app(ping_interval=0.02)  # ~25 quiet stretches in the render: 3 is a wide margin
    async with (
        uvicorn_server(app) as url,
        httpx2.AsyncClient(base_url=url) as client,
        client.stream("POST", "/v1/stream", json={"prompt": "a heron"}) as response,
    ):
        raw = "".join([chunk async for chunk in response.aiter_text()])
    assert raw.count(": ping\n\n") >= 3  # during the half-second render
    assert raw.rstrip().splitlines()[-2] == "event: result"


async def test_disconnect_mid_stream_stops_the_rollout(
    make_app: MakeApp, sims: Sims, job_outcomes: Callable[[], list[str]]
) -> None:
    sims.serper.latency = Latency(mean=1.0)  # the first tool call takes a second
    prompt = "a heron that will be abandoned [sim:rounds=6]"
    app = make_app()
    async with uvicorn_server(app) as url, httpx2.AsyncClient(base_url=url) as client:
        service = service_of(app)
        seen: list[str] = []
        async with client.sse("/v1/stream", method="POST", json={"prompt": prompt}) as source:
            async for event in source:
                seen.append(event.event)
                if event.event == "tool_call_started":
                    assert lingering_tasks()  # the rollout's tasks, seen while it runs
                    break  # leaving the block closes the connection
        await settled(service)
        await anyio.sleep(1.5)  # past when the tool would have finished and round 2 begun
        assert lingering_tasks() == []
        health = (await client.get("/healthz")).json()
    assert seen == ["round_started", "model_replied", "tool_call_started"]
    assert sims.policy.prompts[prompt] == 1  # no further round for this rollout
    assert job_outcomes() == ["cancelled"]  # mid tool call, not left to finish it
    assert health["running"] == 0 and health["active_jobs"] == 0


async def test_disconnect_during_the_render_cancels_it(make_app: MakeApp, sims: Sims) -> None:
    sims.qwen.latency = Latency(mean=3.0)
    app = make_app()
    async with uvicorn_server(app) as url, httpx2.AsyncClient(base_url=url) as client:
        service = service_of(app)
        async with client.sse("/v1/stream", method="POST", json={"prompt": "a kite"}) as source:
            async for event in source:
                if event.event == "render_started":
                    # Leave only once the service is rendering.
                    await wait_until(lambda: sims.qwen.in_flight > 0, timeout=SETTLE_WITHIN)
                    break
        await settled(service)
        assert lingering_tasks() == []
    assert sims.qwen.renders == 0


@pytest.mark.parametrize("path", ["/v1/programs", "/v1/images"])
async def test_disconnect_cancels_json_requests_too(
    make_app: MakeApp, sims: Sims, path: str, job_outcomes: Callable[[], list[str]]
) -> None:
    sims.policy.latency = Latency(mean=0.3)
    prompt = f"an abandoned request to {path}"
    app = make_app()
    async with uvicorn_server(app) as url, httpx2.AsyncClient(base_url=url) as client:
        service = service_of(app)
        with pytest.raises(httpx2.ReadTimeout):
            await client.post(path, json={"prompt": prompt}, timeout=0.45)  # mid round 2
        await settled(service)
        rounds_seen = sims.policy.prompts[prompt]
        await anyio.sleep(0.8)  # two more rounds' worth
        assert lingering_tasks() == []
    assert rounds_seen >= 1
    assert sims.policy.prompts[prompt] == rounds_seen  # no round after the client left
    assert job_outcomes() == ["cancelled"]  # not run to its answer


async def test_a_client_that_gives_up_while_queued_leaves_the_line(
    make_app: MakeApp, sims: Sims
) -> None:
    sims.policy.latency = Latency(mean=60.0)  # the first rollout holds the one slot all along
    app = make_app(max_concurrent_rollouts=1, queue_wait=30.0)
    async with uvicorn_server(app) as url, httpx2.AsyncClient(base_url=url) as client:
        service = service_of(app)
        async with anyio.create_task_group() as tg:
            first = functools.partial(client.post, json={"prompt": "the one that runs"})
            tg.start_soon(first, "/v1/programs")
            await wait_until(lambda: service.admission.statistics().running == 1, timeout=10)
            async with anyio.create_task_group() as queued:
                queued.start_soon(
                    functools.partial(client.post, "/v1/stream", json={"prompt": "queued"})
                )
                await wait_until(lambda: service.admission.statistics().waiting == 1, timeout=10)
                queued.cancel_scope.cancel()  # the queued client gives up
            # Only leaving the line can empty it: the slot stays taken, and the
            # queue wait (30 s) is longer than this hang detector.
            await wait_until(lambda: service.admission.statistics().waiting == 0, timeout=10)
            assert service.admission.statistics().running == 1
            tg.cancel_scope.cancel()
    assert sims.policy.prompts["queued"] == 0
