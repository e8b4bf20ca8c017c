"""Headless Chromium driven over the DevTools protocol: just enough to type, click and look.

A person's path through the page, not a shortcut: the test focuses the
textarea, inserts text as a keyboard would, clicks the button at its on-screen
position, and reads what the page shows.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from websockets.asyncio.client import ClientConnection, connect

__all__ = ["BrowserPage", "chromium_binary", "headless_chromium"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_binary() -> str | None:
    """``GENEVOLVE_CHROMIUM``, else the first Chromium on ``PATH``, else ``None``."""
    override = os.environ.get("GENEVOLVE_CHROMIUM")
    if override:
        return override
    return next((path for name in _CANDIDATES if (path := shutil.which(name))), None)


class BrowserPage:
    """One page target over a DevTools websocket (calls are sequential)."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result; events arriving meanwhile are dropped."""
        call_id = next(self._ids)
        await self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self._ws.recv())
            if message.get("id") != call_id:
                continue
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        with anyio.fail_after(timeout):
            while not (value := await self.evaluate(expression)):  # noqa: ASYNC110 - a page poll
                await anyio.sleep(0.05)
        return value

    async def type_into(self, selector: str, text: str) -> None:
        """Focus an element and insert text as keyboard input would."""
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.call("Input.insertText", text=text)

    async def click(self, selector: str) -> None:
        """A left click at the middle of the element's box."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"],
                            button="left", clickCount=1)  # fmt: skip

    async def screenshot(self, path: Path) -> None:
        """Save the whole page (beyond the viewport) as PNG."""
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        target = anyio.Path(path)
        await target.parent.mkdir(parents=True, exist_ok=True)
        await target.write_bytes(base64.b64decode(shot["data"]))


async def _devtools_port(profile: Path) -> int:
    # Chromium writes the port it picked here once DevTools listens.
    marker = anyio.Path(profile / "DevToolsActivePort")
    with anyio.fail_after(30):
        while not (await marker.is_file() and (text := await marker.read_text()).strip()):  # noqa: ASYNC110
            await anyio.sleep(0.05)
    return int(text.splitlines()[0])


@asynccontextmanager
async def headless_chromium(
    binary: str, profile: Path, *, width: int = 1280, height: int = 1400
) -> AsyncIterator[BrowserPage]:
    """Start Chromium headless with a throwaway profile; yield its first page."""
    args = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--remote-debugging-port=0",
        f"--window-size={width},{height}", "about:blank",
    ]  # fmt: skip
    log = (profile.parent / "chromium.log").open("wb")
    process = await anyio.open_process(args, stdout=log, stderr=log)
    try:
        port = await _devtools_port(profile)
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            targets = (await client.get("/json/list")).json()
        page = next(t for t in targets if t.get("type") == "page")
        async with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            yield BrowserPage(ws)
    finally:
        process.terminate()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
