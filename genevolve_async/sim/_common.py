"""Latency and fault knobs shared by the simulated backends."""

from __future__ import annotations

import random
from dataclasses import dataclass

from aiohttp import web

from .. import _json

__all__ = ["Faults", "Latency", "json_response"]


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
