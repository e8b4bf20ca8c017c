"""A simulated judge: OpenAI chat completions answering with SPEC section 5's score object.

Scores are deterministic per sample (a hash of the ``Sample id:`` line of the
request), so a test knows what every row must score whatever the order of
requests and the faults on the way. Faults, drawn per request or queued:
a fenced reply with trailing commas (parseable), a reply without any JSON
(unparseable: the client must ask again), 429, 500, connection resets and
slow bodies trickled past the client's timeout. Arrival times are
recorded so tests can check a client's rate limit from the server's side.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from aiohttp import web

from .. import _json
from ._common import Latency, draw_transport_fault, json_response, reset_midway, trickle
from ._server import Stats, counting_middleware

__all__ = ["JudgeFault", "JudgeFaults", "JudgeRequest", "SimJudge", "image_digest"]

JudgeFault = Literal["fenced", "no_json", 429, 500]
"""A fault the simulated judge can be told to produce."""

_LEVELS = (0.0, 0.5, 1.0)
_SAMPLE_ID = re.compile(r"Sample id:\s*(.*)")
_JPEG_URI = "data:image/jpeg;base64,"


@dataclass(kw_only=True, slots=True)
class JudgeFaults:
    """Random faults of the simulated judge, each drawn per request."""

    fenced: float = 0.0
    """Rate of replies in a ```json fence, with prose around and trailing commas."""
    no_json: float = 0.0
    """Rate of replies holding no scores at all."""
    rate_429: float = 0.0
    rate_500: float = 0.0
    retry_after: float | None = None
    """``Retry-After`` seconds sent with a 429 (``None``: no header)."""
    rate_reset: float = 0.0
    """Rate of connections dropped after part of the answer was sent."""
    rate_slow: float = 0.0
    """Rate of answers whose body trickles in over ``slow_seconds`` (past the client's timeout)."""
    slow_seconds: float = 30.0

    def draw(self, rng: random.Random) -> JudgeFault | None:
        """The fault for this request, or None."""
        for fault, rate in (
            (429, self.rate_429),
            (500, self.rate_500),
            ("no_json", self.no_json),
            ("fenced", self.fenced),
        ):
            if rate and rng.random() < rate:
                return fault  # type: ignore[return-value]
        return None


@dataclass(kw_only=True, slots=True, frozen=True)
class JudgeRequest:
    """One chat request the simulated judge accepted (before faults)."""

    time: float
    """``time.monotonic()`` at arrival."""
    sample_id: str
    model: str
    temperature: float | None
    max_tokens: int | None
    image_count: int
    """Image parts of the user message."""
    jpeg_images: bool
    """Every image part is a JPEG data URI."""
    image_digests: tuple[str, ...]
    """``sha256(url)[:16]`` of each image part, in order (tests check the order)."""
    text: str
    """The text part of the user message."""


class SimJudge:
    """The simulated judge; serve ``.app`` with :class:`SimServer`.

    Routes: ``POST /v1/chat/completions`` and ``POST /chat/completions``.

    Args:
        latency: Time to answer.
        faults: Random faults.
        api_key: The only key accepted (``None``: any).
        seed: Seeds the latency and fault draws.
    """

    def __init__(
        self,
        *,
        latency: Latency | None = None,
        faults: JudgeFaults | None = None,
        api_key: str | None = None,
        seed: int = 0,
    ) -> None:
        self.latency = latency or Latency()
        self.faults = faults or JudgeFaults()
        self.api_key = api_key
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.requests: list[JudgeRequest] = []
        """Requests that passed authentication and validation, in arrival order."""
        self.arrivals: list[float] = []
        """``time.monotonic()`` of every chat request, refused ones included."""
        self.faults_served: dict[str, int] = {}
        """Faults answered so far, by kind."""
        self._queued: deque[JudgeFault] = deque()
        self.app = web.Application(
            middlewares=[counting_middleware(self.stats)], client_max_size=256 * 2**20
        )
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_post("/chat/completions", self._chat)

    def fail_next(self, count: int, fault: JudgeFault = 500) -> None:
        """Make the next ``count`` requests fail with ``fault``."""
        self._queued.extend([fault] * count)

    @staticmethod
    def verdict(sample_id: str) -> dict[str, Any]:
        """The score object this judge gives ``sample_id`` (always the same).

        Returns:
            ``rationale``, the four scores (each 0, 0.5 or 1) and ``text_accuracy_na``.
        """
        digest = hashlib.sha256(sample_id.encode("utf-8", "surrogatepass")).digest()
        na = digest[4] % 4 == 0
        return {
            "rationale": f"Simulated verdict for sample {sample_id}.",
            "faithfulness": _LEVELS[digest[0] % 3],
            "visual_correctness": _LEVELS[digest[1] % 3],
            "text_accuracy": 0.5 if na else _LEVELS[digest[2] % 3],
            "aesthetics": _LEVELS[digest[3] % 3],
            "text_accuracy_na": na,
        }

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        self.arrivals.append(now)
        if (
            self.api_key is not None
            and request.headers.get("Authorization") != f"Bearer {self.api_key}"
        ):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        try:
            body = _json.loads(await request.read())
        except ValueError:
            return _error(400, "body is not JSON", "invalid_request")
        parsed = _parse_request(body, now)
        if isinstance(parsed, str):
            return _error(400, parsed, "invalid_request")
        self.requests.append(parsed)
        transport_fault = draw_transport_fault(
            self.rng, reset=self.faults.rate_reset, slow=self.faults.rate_slow
        )
        if transport_fault is not None:
            self.faults_served[transport_fault] = self.faults_served.get(transport_fault, 0) + 1
            self.stats.faults[transport_fault] += 1
            if transport_fault == "reset":
                return await reset_midway(request)
        # One fault per request: a slow body is not also a 429.
        if self._queued:
            fault: JudgeFault | None = self._queued.popleft()
        else:
            fault = self.faults.draw(self.rng) if transport_fault is None else None
        if fault is not None:
            self.faults_served[str(fault)] = self.faults_served.get(str(fault), 0) + 1
            self.stats.faults[str(fault)] += 1
        if fault == 429:
            headers = (
                {"Retry-After": f"{self.faults.retry_after:g}"}
                if self.faults.retry_after is not None
                else None
            )
            return _error(429, "simulated rate limit", "rate_limit_exceeded", headers=headers)
        if fault == 500:
            return _error(500, "simulated server error", "server_error")
        delay = self.latency.sample(self.rng)
        if delay:
            await anyio.sleep(delay)
        verdict = self.verdict(parsed.sample_id)
        if fault == "no_json":
            content = "The generated image looks plausible, but I cannot settle on a verdict."
        elif fault == "fenced":
            content = _fenced(verdict)
        else:
            content = _json.dumps(verdict)
        response = _completion(body, content)
        if transport_fault == "slow":
            return await trickle(request, response, self.faults.slow_seconds)
        return response


def _parse_request(body: Any, now: float) -> JudgeRequest | str:
    """The accepted request, or what is wrong with it."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or len(messages) < 2:
        return "messages must hold a system rubric and one user message"
    if messages[0].get("role") != "system" or not isinstance(messages[0].get("content"), str):
        return "the first message must be the system rubric"
    content = messages[-1].get("content")
    if messages[-1].get("role") != "user" or not isinstance(content, list):
        return "the last message must be a user message with text and image parts"
    text = "".join(
        p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
    )
    urls = [
        str((p.get("image_url") or {}).get("url", ""))
        for p in content
        if isinstance(p, dict) and p.get("type") == "image_url"
    ]
    match = _SAMPLE_ID.search(text)
    sample_id = match.group(1).strip() if match else hashlib.sha256(text.encode()).hexdigest()[:12]
    return JudgeRequest(
        time=now,
        sample_id=sample_id,
        model=str(body.get("model", "")),
        temperature=body.get("temperature"),
        max_tokens=body.get("max_tokens"),
        image_count=len(urls),
        jpeg_images=bool(urls) and all(u.startswith(_JPEG_URI) for u in urls),
        image_digests=tuple(image_digest(u) for u in urls),
        text=text,
    )


def image_digest(url: str) -> str:
    """The short digest :attr:`JudgeRequest.image_digests` holds for an image URL."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _fenced(verdict: dict[str, Any]) -> str:
    fields = ",\n".join(f'  "{key}": {_json.dumps(value)}' for key, value in verdict.items())
    return f"Here is my assessment.\n```json\n{{\n{fields},\n}}\n```\nThank you."


def _completion(body: dict[str, Any], content: str) -> web.Response:
    return json_response(
        {
            "id": "chatcmpl-simjudge",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "sim-judge"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": len(content) // 4 + 1,
                "total_tokens": 1000 + len(content) // 4 + 1,
            },
        }
    )


def _error(
    status: int, message: str, code: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(
        {"error": {"message": message, "type": code, "code": code}}, status=status, headers=headers
    )
