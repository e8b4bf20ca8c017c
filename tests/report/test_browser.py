"""The report in headless Chromium: no console error, filters change what shows, no injected script runs.

Skipped when no Chromium is installed (``apt-get install chromium`` on
Debian). The screenshot is kept in ``test-artifacts/report/``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import anyio
import pytest

from genevolve_async.report import build_report

from ..webapp._browser import chromium_binary, headless_chromium
from .conftest import PROMPTS, SAMPLES

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "report"
CHROMIUM = chromium_binary()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary (Debian: apt-get install chromium)"
)

# Installed before any of the page's own code runs: records what the console would show.
_WATCH = """
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message)); });
var __error = console.error;
console.error = function () { window.__errors.push(Array.from(arguments).join(' ')); __error.apply(console, arguments); };
"""


def _select(selector: str, value: str) -> str:
    return (
        f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
        f" el.value = {json.dumps(value)}; el.dispatchEvent(new Event(el.tagName === 'INPUT'"
        " ? 'input' : 'change')); return window.genevolveReport.visible; })()"
    )


async def test_the_page_loads_filters_and_runs_no_injected_script(
    sim_run: Path, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    dest = tmp_path / "report.html"
    build_report(sim_run / "out", dest, gt_root=sim_run / "bench")
    async with headless_chromium(CHROMIUM, tmp_path / "profile", width=1280, height=1000) as page:
        await page.call("Page.enable")
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=_WATCH)
        await page.call("Page.navigate", url=dest.as_uri())
        await page.wait_for(
            "document.readyState === 'complete' && window.genevolveReport"
            " && window.genevolveReport.ready",
            timeout=30,
        )
        total = PROMPTS * SAMPLES
        assert await page.evaluate("window.genevolveReport.visible") == total
        assert await page.evaluate("document.querySelectorAll('article.card').length") == total
        # Each filter narrows the cards; clearing it brings them back.
        half = await page.evaluate(_select("#f-eval-type", "Knowledge-Anchored"))
        assert 0 < half < total
        assert await page.evaluate(_select("#f-min", "0.6")) < half
        assert await page.evaluate(_select("#f-min", "")) == half
        assert await page.evaluate(_select("#f-eval-type", "")) == total
        assert await page.evaluate(_select("#f-difficulty", "easy")) < total
        assert await page.evaluate(_select("#f-difficulty", "")) == total
        shown = await page.evaluate("document.getElementById('shown').textContent")
        assert shown == f"{total} of {total} items"
        # Sorting by score puts the best card first.
        await page.evaluate(_select("#f-sort", "score-desc"))
        scores = await page.evaluate(
            "[...document.querySelectorAll('article.card')].map(c => parseFloat(c.dataset.score))"
        )
        assert scores == sorted(scores, reverse=True)
        await page.evaluate(_select("#f-sort", "index"))
        # The hostile request and category are on the page as text, and never ran.
        assert await page.evaluate("typeof window.__pwned") == "undefined"
        assert await page.evaluate("document.body.innerText.includes('<script>window.__pwned')")
        assert await page.evaluate("window.__errors") == []
        # A thumbnail embedded once shows wherever it is used.
        assert await page.evaluate(
            "[...document.querySelectorAll('img[data-thumb]')].every(i =>"
            " i.src === document.querySelector('img[data-thumb-id=\"' + i.dataset.thumb + '\"]').src)"
            " && document.querySelectorAll('img[data-thumb]').length > 0"
        )
        # Every thumbnail decoded (they are data: URIs; none is fetched).
        await page.evaluate(
            "(() => { document.querySelector('details.traj').open = true;"
            " document.querySelectorAll('article.card')[0].scrollIntoView(); return 1; })()"
        )
        # Opening a trajectory brings its steps in from their template.
        await page.wait_for(
            "document.querySelectorAll('article.card')[0].querySelectorAll('li.step').length > 0",
            timeout=10,
        )
        await anyio.sleep(0.3)
        await page.evaluate("window.scrollTo(0, 0)")
        await anyio.sleep(0.3)
        shot = await page.call("Page.captureScreenshot", format="png")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "report-top.png").write_bytes(base64.b64decode(shot["data"]))
        await page.evaluate("document.querySelectorAll('article.card')[0].scrollIntoView()")
        await anyio.sleep(0.3)
        shot = await page.call("Page.captureScreenshot", format="png")
        (ARTIFACTS / "report-card.png").write_bytes(base64.b64decode(shot["data"]))
        broken = await page.evaluate(
            "[...document.querySelectorAll('article.card')[0].querySelectorAll('img')]"
            ".filter(i => i.complete && i.naturalWidth === 0).length"
        )
        assert broken == 0
        assert await page.evaluate("window.__errors") == []
