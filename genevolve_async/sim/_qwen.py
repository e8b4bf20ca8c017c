"""A simulated Qwen-Image-Edit service: SPEC's ``/generate`` and ``/health`` wire, no torch.

It behaves like one deployment of the real service: ``gpus`` render slots,
each render holding one slot for a sampled latency; a request that finds
every slot taken is refused at once with 503 (what a busy service answers),
so a client that respects the per-URL cap never sees one. Faults are drawn
per request or queued with :meth:`SimQwenService.fail_next`; connection
resets and slow bodies trickled past the client's timeout are drawn per request.
"""

from __future__ import annotations

import base64
import random
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.to_thread
from aiohttp import web

from .. import _json
from ._common import Latency, draw_transport_fault, json_response, reset_midway, trickle
from ._images import make_png
from ._server import Stats, counting_middleware

__all__ = ["QwenFault", "QwenFaults", "SimQwenService"]

QwenFault = Literal["success_false", "slow", 400, 429, 500, 503, 504]
"""A fault the simulated service can be told to produce."""


@dataclass(kw_only=True, slots=True)
class QwenFaults:
    """Random faults of the simulated Qwen service, each drawn per request."""

    success_false: float = 0.0
    """Rate of HTTP 200 ``{"success": false}`` answers (a failure inside the model)."""
    rate_429: float = 0.0
    """Rate of HTTP 429 answers (with the service's ``Retry-After``)."""
    rate_500: float = 0.0
    """Rate of HTTP 500 answers."""
    rate_503: float = 0.0
    """Rate of HTTP 503 answers (on top of the ones a full service gives)."""
    slow: float = 0.0
    """Rate of renders that take ``slow_factor`` times their latency."""
    slow_factor: float = 10.0
    rate_reset: float = 0.0
    """Rate of connections dropped after part of the answer was sent."""
    rate_slow: float = 0.0
    """Rate of answers whose body trickles in over ``slow_seconds`` (past the client's
    timeout) after the render; unlike ``slow``, which stretches the render itself."""
    slow_seconds: float = 30.0

    def draw(self, rng: random.Random) -> QwenFault | None:
        """The fault for this request, or None."""
        for fault, rate in (
            (429, self.rate_429),
            (500, self.rate_500),
            (503, self.rate_503),
            ("success_false", self.success_false),
            ("slow", self.slow),
        ):
            if rate and rng.random() < rate:
                return fault  # type: ignore[return-value]
        return None


class SimQwenService:
    """The simulated service; serve ``.app`` with :class:`SimServer`.

    Args:
        gpus: Render slots (and what ``/health`` reports as ``num_gpus``).
        latency: Time one render holds its slot.
        faults: Random faults.
        seed: Seeds the latency and fault draws.
        image_key: Field carrying the PNG: ``image`` (SPEC) or ``image_base64``
            (what some servers send).
        health_gpus: Override what ``/health`` reports (``None``: ``gpus``);
            ``0`` omits the GPU fields entirely, like a service that reports none.
        retry_after: ``Retry-After`` seconds sent with a 429 or 503, as our real
            service does (``None``: no header).
        health: Serve ``GET /health`` (``False``: a 404, like a service without one).
    """

    def __init__(
        self,
        *,
        gpus: int = 1,
        latency: Latency | None = None,
        faults: QwenFaults | None = None,
        seed: int = 0,
        image_key: Literal["image", "image_base64"] = "image",
        health_gpus: int | None = None,
        retry_after: float | None = 1.0,
        health: bool = True,
    ) -> None:
        if gpus < 1:
            raise ValueError("a simulated Qwen service needs at least one GPU slot")
        self.gpus = gpus
        self.latency = latency or Latency()
        self.faults = faults or QwenFaults()
        self.image_key = image_key
        self.health_gpus = gpus if health_gpus is None else health_gpus
        self.retry_after = retry_after
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.down = False
        """When true every request (``/health`` included) fails with 503."""
        self.in_flight = 0
        """Renders holding a slot now."""
        self.peak_in_flight = 0
        """Most renders that held slots at once."""
        self.rejected_busy = 0
        """Requests refused with 503 because every slot was taken."""
        self.renders = 0
        """Renders answered with an image."""
        self.model_failures = 0
        """Renders answered with ``{"success": false}``."""
        self.received: list[dict[str, Any]] = []
        """Accepted request bodies, with ``image_urls`` replaced by ``image_count``."""
        self._queued: deque[QwenFault] = deque()
        self._png_cache: dict[tuple[int, int], str] = {}
        self.app = web.Application(
            middlewares=[counting_middleware(self.stats)], client_max_size=128 * 2**20
        )
        self.app.router.add_post("/generate", self._generate)
        if health:
            self.app.router.add_get("/health", self._health)

    def fail_next(self, count: int, fault: QwenFault = 500) -> None:
        """Make the next ``count`` ``/generate`` requests fail with ``fault``."""
        self._queued.extend([fault] * count)

    async def _health(self, request: web.Request) -> web.Response:
        if self.down:
            return json_response({"status": "down"}, status=503)
        body: dict[str, Any] = {"status": "ok", "busy": self.in_flight, "queued": 0}
        if self.health_gpus:
            body["num_gpus"] = self.health_gpus
            body["devices"] = [f"sim:{i}" for i in range(self.health_gpus)]
        return json_response(body)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return self._failure(503, "service down")
        try:
            body = _json.loads(await request.read())
        except ValueError:
            return self._failure(400, "body is not JSON")
        problem = _validate(body)
        if problem:
            return self._failure(400, problem)
        transport_fault = draw_transport_fault(
            self.rng, reset=self.faults.rate_reset, slow=self.faults.rate_slow
        )
        if transport_fault is not None:
            self.stats.faults[transport_fault] += 1
            if transport_fault == "reset":
                return await reset_midway(request)
        # One fault per request: a slow body is not also a 429.
        if self._queued:
            fault: QwenFault | None = self._queued.popleft()
        else:
            fault = self.faults.draw(self.rng) if transport_fault is None else None
        if fault is not None:
            self.stats.faults[str(fault)] += 1
        if isinstance(fault, int):
            return self._failure(fault, f"simulated {fault}")
        if self.in_flight >= self.gpus:
            self.rejected_busy += 1
            return self._failure(503, f"all {self.gpus} GPUs are busy")
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            record = {k: v for k, v in body.items() if k != "image_urls"}
            record["image_count"] = len(body["image_urls"])
            self.received.append(record)
            delay = self.latency.sample(self.rng)
            if fault == "slow":
                delay = max(delay, 0.01) * self.faults.slow_factor
            if delay:
                await anyio.sleep(delay)
            if fault == "success_false":
                self.model_failures += 1
                return json_response({"success": False, "message": "simulated model failure"})
            width, height = int(body.get("width") or 1024), int(body.get("height") or 1024)
            image = await self._png_base64(width, height)
            self.renders += 1
        finally:
            self.in_flight -= 1
        response = json_response(
            {"success": True, self.image_key: image, "seed": body.get("seed", 0)}
        )
        if transport_fault == "slow":
            return await trickle(request, response, self.faults.slow_seconds)
        return response

    def _failure(self, status: int, message: str) -> web.Response:
        headers = None
        if status in (429, 503) and self.retry_after is not None:
            headers = {"Retry-After": f"{self.retry_after:g}"}
        return json_response({"success": False, "message": message}, status=status, headers=headers)

    async def _png_base64(self, width: int, height: int) -> str:
        cached = self._png_cache.get((width, height))
        if cached is None:
            # A 1024x1024 PNG takes milliseconds to encode: keep it off the sim's loop.
            cached = await anyio.to_thread.run_sync(_encode_png, width, height)
            self._png_cache[(width, height)] = cached
        return cached


def _encode_png(width: int, height: int) -> str:
    return base64.b64encode(make_png((90, 140, 200), (width, height))).decode("ascii")


def _validate(body: Any) -> str | None:
    """What is wrong with a ``/generate`` body (the service's 400 cases), or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("prompt"), str):
        return "prompt must be a string"
    urls = body.get("image_urls")
    if not isinstance(urls, list) or not urls:
        return "image_urls must be a non-empty list (Qwen-Image-Edit needs a reference)"
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("data:image/", "http://", "https://")):
            return "each image_urls entry must be an image data URI or an http(s) URL"
        if url.startswith("data:") and ";base64," not in url[:64]:
            return "data URIs must be base64-encoded"
    for key in ("width", "height"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or not 16 <= value <= 4096):
            return f"{key} must be an integer in [16, 4096]"
    return None
