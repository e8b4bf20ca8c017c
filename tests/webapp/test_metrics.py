"""``GET /metrics`` of the web app, and one trace from a request to its rollout."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import httpx2
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.types import Receive, Scope, Send

from genevolve_async.sim import Latency
from genevolve_async.telemetry import use_providers
from tests._support import prometheus_samples

from .conftest import POLICY_KEY, SERPER_KEY, Sims, asgi_client

MakeApp = Callable[..., FastAPI]


async def test_metrics_parse_and_move(make_app: MakeApp, sims: Sims) -> None:
    sims.policy.latency = Latency(mean=0.15)
    app = make_app(max_concurrent_rollouts=1, queue_wait=0.0)
    async with asgi_client(app) as client:
        before = prometheus_samples((await client.get("/metrics")).text)
        statuses: list[int] = []

        async def post(prompt: str) -> None:
            statuses.append(
                (await client.post("/v1/programs", json={"prompt": prompt})).status_code
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(post, "a fox")
            await anyio.sleep(0.05)  # the one slot is taken now
            tg.start_soon(post, "a second fox")
        assert (await client.post("/v1/programs", json={"prompt": " "})).status_code == 422
        response = await client.get("/metrics")
    assert sorted(statuses) == [200, 429]
    after = prometheus_samples(response.text)
    assert before[("genevolve_web_rollout_slots", ())] == 1
    assert before[("genevolve_web_queue_depth", ())] == 0
    assert ("genevolve_web_jobs_total", (("endpoint", "programs"), ("status", "200"))) not in before
    jobs = "genevolve_web_jobs_total"
    assert after[(jobs, (("endpoint", "programs"), ("status", "200")))] == 1
    assert after[(jobs, (("endpoint", "programs"), ("status", "429")))] == 1
    assert after[(jobs, (("endpoint", "programs"), ("status", "422")))] == 1
    assert after[("genevolve_web_rejections_total", (("endpoint", "programs"),))] == 1
    assert after[("genevolve_web_job_seconds_count", (("endpoint", "programs"),))] == 3
    assert after[("genevolve_web_rollouts_running", ())] == 0
    assert POLICY_KEY not in response.text and SERPER_KEY not in response.text


async def test_two_apps_have_their_own_registries(make_app: MakeApp) -> None:
    assert make_app().state.metrics.registry is not make_app().state.metrics.registry


async def test_request_span_parents_the_rollout(make_app: MakeApp, sims: Sims) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test-server")
    app = make_app()

    async def instrumented(scope: Scope, receive: Receive, send: Send) -> None:
        # What an OpenTelemetry ASGI/FastAPI instrumentation does: a server
        # span, current while the app handles the request.
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        with tracer.start_as_current_span(f"POST {scope['path']}", kind=SpanKind.SERVER):
            await app(scope, receive, send)

    with use_providers(provider, None):
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=instrumented)
            async with httpx2.AsyncClient(transport=transport, base_url="http://app") as client:
                response = await client.post("/v1/images", json={"prompt": "a kite"})
    assert response.status_code == 200
    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.name == "POST /v1/images"]
    (rollout,) = [s for s in finished if s.name == "invoke_agent genevolve"]
    assert rollout.parent is not None and rollout.parent.span_id == request.context.span_id
    assert {s.context.trace_id for s in finished} == {request.context.trace_id}
    renders = [
        s for s in finished if (s.attributes or {}).get("genevolve.provider") == "qwen_service"
    ]
    assert len(renders) == 1 and renders[0].parent.span_id == request.context.span_id  # type: ignore[union-attr]
