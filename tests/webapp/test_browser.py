"""The page in headless Chromium: a typed request, its events streaming in, then the image.

Skipped when no Chromium is installed (``apt-get install chromium`` on
Debian). Screenshots (mid-stream and finished) are kept in ``test-artifacts/webapp/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI

from genevolve_async.sim import Latency

from ._browser import chromium_binary, headless_chromium
from .conftest import Sims, lingering_tasks, service_of, uvicorn_server, wait_until
from .test_stream import EXPECTED

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "webapp"

CHROMIUM = chromium_binary()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary (Debian: apt-get install chromium)"
)


async def test_page_streams_events_and_shows_the_image(
    make_app: Callable[..., FastAPI], sims: Sims, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    # Slow enough that the events arrive one by one, as a person would see them.
    sims.policy.latency = Latency(mean=0.25)
    sims.qwen.latency = Latency(mean=0.3)
    prompt = "A watercolour of a lighthouse on a cliff at dawn"
    app = make_app()
    async with (
        uvicorn_server(app) as url,
        headless_chromium(CHROMIUM, tmp_path / "profile") as page,
    ):
        await page.call("Page.navigate", url=url + "/")
        await page.wait_for("document.readyState === 'complete' && !!window.genevolve", timeout=20)
        await page.type_into("#prompt", prompt)
        await page.click("#submit")
        await page.wait_for("window.genevolve.state === 'running'", timeout=5)
        # While running, the stop button is live and events are already on the page.
        await page.wait_for("document.querySelectorAll('#events li').length >= 3", timeout=10)
        assert await page.evaluate("document.getElementById('stop').disabled") is False
        await page.screenshot(ARTIFACTS / "stream-page-running.png")
        await page.wait_for(
            "window.genevolve.state !== 'running' && window.genevolve.imageLoaded", timeout=30
        )
        await page.screenshot(ARTIFACTS / "stream-page.png")
        state = await page.evaluate(
            "JSON.stringify({state: window.genevolve.state,"
            " kinds: window.genevolve.events.map(e => e.kind),"
            " items: [...document.querySelectorAll('#events li .kind')].map(e => e.textContent),"
            " image: document.getElementById('image').naturalWidth,"
            " shown: !document.getElementById('figure').hidden,"
            " status: document.getElementById('status').textContent,"
            " program: document.getElementById('program').textContent,"
            " typed: document.getElementById('prompt').value})"
        )
    seen = json.loads(state)
    assert seen["state"] == "done", seen
    assert seen["kinds"] == EXPECTED
    assert seen["items"] == EXPECTED  # every event is on the page, in order
    assert seen["image"] > 0 and seen["shown"]
    assert seen["status"] == "Done."
    assert "A detailed rendering of A watercolour of a lighthouse" in seen["program"]
    assert seen["typed"] == prompt
    assert sims.policy.prompts[prompt] == 4  # the typed text is what the policy received
    assert (ARTIFACTS / "stream-page.png").stat().st_size > 10_000


async def test_stop_button_cancels_the_rollout(
    make_app: Callable[..., FastAPI],
    sims: Sims,
    tmp_path: Path,
    job_outcomes: Callable[[], list[str]],
) -> None:
    assert CHROMIUM is not None
    sims.serper.latency = Latency(mean=1.0)
    prompt = "a heron the user stops [sim:rounds=6]"
    app = make_app()
    async with (
        uvicorn_server(app) as url,
        headless_chromium(CHROMIUM, tmp_path / "profile") as page,
    ):
        service = service_of(app)
        await page.call("Page.navigate", url=url + "/")
        await page.wait_for("document.readyState === 'complete' && !!window.genevolve", timeout=20)
        await page.type_into("#prompt", prompt)
        await page.click("#submit")
        await page.wait_for(
            "window.genevolve.events.some(e => e.kind === 'tool_call_started')", timeout=10
        )
        await page.click("#stop")
        await page.wait_for("window.genevolve.state === 'stopped'", timeout=5)
        await wait_until(lambda: not service.active, timeout=10)  # a hang detector
        await anyio.sleep(1.2)  # past when the tool would have finished
        assert lingering_tasks() == []
        status = await page.evaluate("document.getElementById('status').textContent")
    assert status == "Stopped; the server cancelled the rollout."
    assert job_outcomes() == ["cancelled"]  # mid tool call, not left to finish it
    assert sims.policy.prompts[prompt] == 1


async def test_prompt_in_the_url_submits_the_form(
    make_app: Callable[..., FastAPI], sims: Sims, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    app = make_app()
    async with (
        uvicorn_server(app) as url,
        headless_chromium(CHROMIUM, tmp_path / "profile") as page,
    ):
        await page.call("Page.navigate", url=url + "/?prompt=a%20kite%20over%20dunes")
        await page.wait_for("window.genevolve && window.genevolve.imageLoaded", timeout=20)
        typed = await page.evaluate("document.getElementById('prompt').value")
    assert typed == "a kite over dunes"
    assert sims.policy.prompts["a kite over dunes"] == 4
