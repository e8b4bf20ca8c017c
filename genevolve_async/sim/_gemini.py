"""A simulated Generative Language API (``generateContent``) for Nano Banana Pro.

Speaks enough of Google's wire for the real ``google-genai`` client: the
``x-goog-api-key`` header, ``POST /{version}/models/{model}:generateContent``
with text and inline-data parts, an inline-data PNG in the reply, and errors
in Google's shape, a 429 carrying a ``google.rpc.RetryInfo`` delay included.
Arrival times are recorded so tests can check a client's rate limiting.
"""

from __future__ import annotations

import base64
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from aiohttp import web

from .. import _json
from ._common import Faults, Latency, json_response
from ._images import make_png
from ._server import Stats, counting_middleware

__all__ = ["GeminiRequest", "SimGemini"]

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(kw_only=True, slots=True, frozen=True)
class GeminiRequest:
    """One ``generateContent`` request the fake accepted (before faults)."""

    time: float
    """``time.monotonic()`` at arrival."""
    model: str
    api_version: str
    text: str
    """The text parts, joined."""
    image_mime_types: tuple[str, ...] = field(default=())
    """MIME types of the inline-data parts, in order."""
    generation_config: dict[str, Any] = field(default_factory=dict)


def google_error(status: int, message: str, *, details: list[Any] | None = None) -> web.Response:
    """An error answer in the shape Google's APIs use."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return json_response({"error": error}, status=status)


class SimGemini:
    """The fake service; serve ``.app`` with :class:`SimServer`.

    Args:
        latency: Time to produce an image.
        faults: Random 429/500 answers; a 429 carries ``faults.retry_after``
            as its RetryInfo delay.
        api_key: The key to require in ``x-goog-api-key`` (``None``: any key).
        image_size: ``(width, height)`` of the PNG it answers.
        rpm_limit: Answer 429 when more than this many requests arrived in the
            last 60 seconds, as a quota would (``None``: no quota).
        seed: Seeds the latency and fault draws.
    """

    def __init__(
        self,
        *,
        latency: Latency | None = None,
        faults: Faults | None = None,
        api_key: str | None = "sim-key",
        image_size: tuple[int, int] = (256, 256),
        rpm_limit: int | None = None,
        seed: int = 0,
    ) -> None:
        self.latency = latency or Latency()
        self.faults = faults or Faults()
        self.api_key = api_key
        self.image_size = image_size
        self.rpm_limit = rpm_limit
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.requests: list[GeminiRequest] = []
        """Requests that passed authentication and validation, in arrival order."""
        self.arrivals: list[float] = []
        """``time.monotonic()`` of every ``generateContent`` arrival, failures included."""
        self._window: deque[float] = deque()
        self._queued: deque[tuple[int, float | None]] = deque()
        self._png: str | None = None
        self._blocked = 0
        self.app = web.Application(
            middlewares=[counting_middleware(self.stats)], client_max_size=128 * 2**20
        )
        self.app.router.add_post("/{version}/models/{model}:generateContent", self._generate)

    def fail_next(self, count: int, status: int = 429, *, retry_delay: float | None = 1.0) -> None:
        """Make the next ``count`` requests fail with ``status`` (a 429 carries ``retry_delay``)."""
        self._queued.extend([(status, retry_delay)] * count)

    def block_next(self, count: int) -> None:
        """Make the next ``count`` requests answer 200 without an image (a safety block)."""
        self._blocked += count

    def _too_many(self, retry_delay: float | None) -> web.Response:
        details: list[Any] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
            }
        ]
        if retry_delay is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_delay:g}s",
                }
            )
        return google_error(429, "Resource has been exhausted (e.g. check quota).", details=details)

    def _over_quota(self, now: float) -> bool:
        if self.rpm_limit is None:
            return False
        while self._window and self._window[0] <= now - 60.0:
            self._window.popleft()
        if len(self._window) >= self.rpm_limit:
            return True
        self._window.append(now)
        return False

    async def _generate(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        self.arrivals.append(now)
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return google_error(
                403, "Method doesn't allow unregistered callers. Please use an API key."
            )
        if self.api_key is not None and key != self.api_key:
            return google_error(
                400,
                "API key not valid. Please pass a valid API key.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                    }
                ],
            )
        try:
            body = _json.loads(await request.read())
        except ValueError:
            return google_error(400, "Invalid JSON payload received.")
        parsed = _parse_contents(body)
        if isinstance(parsed, str):
            return google_error(400, parsed)
        text, mimes = parsed
        self.requests.append(
            GeminiRequest(
                time=now,
                model=request.match_info["model"],
                api_version=request.match_info["version"],
                text=text,
                image_mime_types=mimes,
                generation_config=dict(body.get("generationConfig") or {}),
            )
        )
        if self._queued:
            status, delay = self._queued.popleft()
            return self._too_many(delay) if status == 429 else google_error(status, "simulated")
        fault = self.faults.draw(self.rng)
        if fault == 429 or self._over_quota(now):
            return self._too_many(self.faults.retry_after)
        if fault is not None:
            message = (
                "Internal error encountered."
                if fault >= 500
                else "The caller does not have permission"
            )
            return google_error(fault, message)
        delay = self.latency.sample(self.rng)
        if delay:
            await anyio.sleep(delay)
        if self._blocked:
            self._blocked -= 1
            return json_response(
                {
                    "candidates": [
                        {
                            "content": {"parts": [{"text": "I can't draw that."}], "role": "model"},
                            "finishReason": "IMAGE_SAFETY",
                            "index": 0,
                        }
                    ],
                    "modelVersion": request.match_info["model"],
                }
            )
        return json_response(
            {
                "candidates": [
                    {
                        "content": {
                            "parts": [
                                {
                                    "inlineData": {
                                        "mimeType": "image/png",
                                        "data": await self._image(),
                                    }
                                }
                            ],
                            "role": "model",
                        },
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": len(text) // 4,
                    "totalTokenCount": len(text) // 4,
                },
                "modelVersion": request.match_info["model"],
            }
        )

    async def _image(self) -> str:
        if self._png is None:
            # Encoding is milliseconds at most, but never on the loop that serves everyone.
            self._png = await anyio.to_thread.run_sync(_encode_png, self.image_size)
        return self._png


def _encode_png(size: tuple[int, int]) -> str:
    return base64.b64encode(make_png((210, 120, 60), size)).decode("ascii")


def _parse_contents(body: Any) -> tuple[str, tuple[str, ...]] | str:
    """The joined text and inline-data MIME types of a request, or what is wrong with it."""
    contents = body.get("contents") if isinstance(body, dict) else None
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    texts: list[str] = []
    mimes: list[str] = []
    for content in contents:
        for part in (content.get("parts") or []) if isinstance(content, dict) else []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            blob = part.get("inlineData") or part.get("inline_data")
            if isinstance(blob, dict):
                mime = blob.get("mimeType") or blob.get("mime_type") or ""
                if not mime.startswith("image/") or not isinstance(blob.get("data"), str):
                    return "* inline_data: an image MIME type and base64 data are required"
                mimes.append(mime)
    if not texts:
        return "* GenerateContentRequest.contents: a text part is required"
    return "\n".join(texts), tuple(mimes)
