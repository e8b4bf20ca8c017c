"""``GET /metrics`` of the Qwen-Image-Edit service: parseable, and moving when jobs run."""

from __future__ import annotations

import threading

import anyio
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("diffusers")

from genevolve_async.serve.qwen import create_app
from tests._support import prometheus_samples

from .test_qwen import GatedPipeline, body, serving


async def test_metrics_parse_and_move() -> None:
    gate = threading.Event()
    gate.set()
    app = create_app([("cpu", GatedPipeline(gate))], max_body_bytes=4000)
    async with serving(app) as client:
        before = prometheus_samples((await client.get("/metrics")).text)
        for _ in range(2):
            assert (await client.post("/generate", json=body())).status_code == 200
        assert (await client.post("/generate", json=body(image_urls=[]))).status_code == 400
        assert (await client.post("/generate", json=body(prompt="x" * 5000))).status_code == 413
        response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = prometheus_samples(response.text)
    assert before[("genevolve_qwen_queue_depth", ())] == 0
    assert before[("genevolve_qwen_device_busy", (("device", "cpu"),))] == 0
    assert ("genevolve_qwen_jobs_total", (("device", "cpu"),)) not in before
    assert after[("genevolve_qwen_jobs_total", (("device", "cpu"),))] == 2
    assert after[("genevolve_qwen_job_seconds_count", (("device", "cpu"),))] == 2
    assert after[("genevolve_qwen_rejections_total", (("status", "400"),))] == 1
    assert after[("genevolve_qwen_rejections_total", (("status", "413"),))] == 1
    assert after[("genevolve_qwen_responses_total", (("status", "200"),))] == 2


async def test_busy_device_and_pipeline_errors_show() -> None:
    gate = threading.Event()
    app = create_app([("cpu", GatedPipeline(gate, fail=True))])
    async with serving(app) as client:

        async def post() -> None:
            await client.post("/generate", json=body())

        async with anyio.create_task_group() as tg:
            tg.start_soon(post)
            with anyio.fail_after(5):
                while not app.state.service.device_states()["cpu"]:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            during = prometheus_samples((await client.get("/metrics")).text)
            gate.set()
        after = prometheus_samples((await client.get("/metrics")).text)
    assert during[("genevolve_qwen_device_busy", (("device", "cpu"),))] == 1
    assert after[("genevolve_qwen_device_busy", (("device", "cpu"),))] == 0
    assert after[("genevolve_qwen_errors_total", (("kind", "pipeline"),))] == 1


def test_two_apps_have_their_own_registries() -> None:
    first = create_app([("cpu", GatedPipeline(threading.Event()))])
    second = create_app([("cpu", GatedPipeline(threading.Event()))])
    assert first.state.metrics.registry is not second.state.metrics.registry
