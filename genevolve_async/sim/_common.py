"""Latency and fault knobs shared by the simulated backends.

Besides HTTP statuses, a simulated service can fail at the transport level
(:data:`TransportFault`): ``reset`` starts a response, sends part of its
body and drops the connection (what a crashing proxy or a killed worker
looks like to a client); ``slow`` sends the headers at once and trickles the
body over ``slow_seconds``, past any sensible per-call timeout but never
idle long enough to trip a timeout on single reads, so only a client with a
deadline on the whole call gives up in time.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

import anyio
from aiohttp import web

from .. import _json

__all__ = [
    "Faults",
    "Latency",
    "TransportFault",
    "draw_transport_fault",
    "json_response",
    "reset_midway",
    "trickle",
]

TransportFault = Literal["reset", "slow"]
"""A fault below HTTP: a connection dropped mid-response, or an answer held too long."""


@dataclass(kw_only=True, slots=True)
class Latency:
    """A service time: uniform in ``mean * (1 +- spread)``."""

    mean: float = 0.0
    """Mean seconds."""
    spread: float = 0.0
    """Relative half-width of the uniform spread (0.1 = +-10%)."""

    def sample(self, rng: random.Random) -> float:
        if self.mean <= 0:
            return 0.0
        if self.spread <= 0:
            return self.mean
        return max(0.0, rng.uniform(self.mean * (1 - self.spread), self.mean * (1 + self.spread)))


@dataclass(kw_only=True, slots=True)
class Faults:
    """Random faults, each drawn independently per request."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    retry_after: float | None = 1.0
    """Retry-After seconds sent with a 429 (None: no header)."""
    rate_403: float = 0.0
    """Share of requests refused as unauthorized."""
    rate_reset: float = 0.0
    """Share of requests whose connection drops after part of the answer was sent."""
    rate_slow: float = 0.0
    """Share of requests whose body trickles in over ``slow_seconds``."""
    slow_seconds: float = 30.0
    """How long a slow body takes (set it past the client's per-call timeout)."""

    def draw_transport(self, rng: random.Random) -> TransportFault | None:
        """The transport fault for this request, or None (drawn before :meth:`draw`)."""
        return draw_transport_fault(rng, reset=self.rate_reset, slow=self.rate_slow)

    def draw(self, rng: random.Random) -> int | None:
        """The fault status for this request, or None."""
        # A zero rate draws nothing, so adding a fault kind leaves the
        # random sequence of existing configurations unchanged.
        if self.rate_403 and rng.random() < self.rate_403:
            return 403
        if self.rate_429 and rng.random() < self.rate_429:
            return 429
        if self.rate_500 and rng.random() < self.rate_500:
            return 500
        return None

    def response(self, status: int) -> web.Response:
        headers = {}
        if status == 429 and self.retry_after is not None:
            headers["Retry-After"] = f"{self.retry_after:g}"
        return json_response(
            {"error": {"message": f"simulated {status}", "code": status}},
            status=status,
            headers=headers,
        )


def json_response(
    data: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_json.dumps_bytes(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def draw_transport_fault(rng: random.Random, *, reset: float, slow: float) -> TransportFault | None:
    """Draw a transport fault with the given rates.

    A zero rate draws nothing, so configurations without these faults keep
    the random sequence they had before the faults existed.
    """
    if reset and rng.random() < reset:
        return "reset"
    if slow and rng.random() < slow:
        return "slow"
    return None


async def reset_midway(
    request: web.Request, *, content_type: str = "application/json"
) -> web.StreamResponse:
    """Start a 200 answer, send part of its body, then drop the connection.

    The client sees headers and a few bytes, then the connection ends before
    the announced ``Content-Length``: a payload error, not a clean status.
    """
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    response.content_length = 4096
    try:
        await response.prepare(request)
        await response.write(b'{"partial": "the connection drops here')
    except (ConnectionError, RuntimeError):
        pass  # the client left first: nothing more to break
    transport = request.transport
    if transport is not None:
        # abort(), not close(): no orderly shutdown, like a crashed peer.
        transport.abort()
    return response


async def trickle(
    request: web.Request, response: web.StreamResponse, seconds: float
) -> web.StreamResponse:
    """Send ``response``'s headers now and its body a few bytes at a time over ``seconds``.

    The gaps between pieces stay under a quarter second, so a client whose
    only timeout is on each read (time between bytes) waits the whole
    ``seconds``; only a deadline on the whole call gives up in time. The
    trickle stops early once the client has left.
    """
    if not isinstance(response, web.Response) or response.prepared:
        return response  # already streamed by the handler
    body = response.body if isinstance(response.body, bytes) else b""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    steps = max(2, math.ceil(seconds / 0.25))
    size = max(1, -(-len(body) // steps))
    try:
        await stream.prepare(request)
        for start in range(0, len(body), size):
            transport = request.transport
            if transport is None or transport.is_closing():
                return stream  # the client gave up, as it should
            await stream.write(body[start : start + size])
            await anyio.sleep(seconds / steps)
        await stream.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client left between two pieces
    return stream
