"""A simulated image host: ``GET /img/{name}`` answers a small PNG."""

from __future__ import annotations

import io
import random
import zlib

import anyio
from aiohttp import web
from PIL import Image

from ._common import Latency
from ._server import Stats, counting_middleware

__all__ = ["SimImageHost", "make_png"]

_PALETTE = [
    (200, 60, 50),
    (60, 160, 80),
    (50, 90, 200),
    (220, 180, 40),
    (140, 70, 170),
    (40, 170, 170),
    (230, 120, 30),
    (120, 120, 120),
]


def make_png(color: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    """A small solid PNG with a lighter square, so it is a real, decodable image."""
    image = Image.new("RGB", size, color)
    inner = tuple(min(255, c + 60) for c in color)
    image.paste(inner, (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class SimImageHost:
    """Serves PNGs with a configurable latency.

    ``shuffle=True`` draws each response's delay uniformly from
    ``[0, 2 * latency.mean]`` so that concurrent downloads finish in an order
    unrelated to the order they started in.
    """

    def __init__(
        self, *, latency: Latency | None = None, shuffle: bool = False, seed: int = 0
    ) -> None:
        self.latency = latency or Latency()
        self.shuffle = shuffle
        self.rng = random.Random(seed)
        self.stats = Stats()
        self._variants = [make_png(c) for c in _PALETTE]
        self.app = web.Application(middlewares=[counting_middleware(self.stats)])
        self.app.router.add_get("/img/{name}", self._image)

    def image_bytes(self, name: str) -> bytes:
        return self._variants[zlib.crc32(name.encode()) % len(self._variants)]

    async def _image(self, request: web.Request) -> web.Response:
        if self.shuffle and self.latency.mean > 0:
            delay = self.rng.uniform(0.0, 2 * self.latency.mean)
        else:
            delay = self.latency.sample(self.rng)
        if delay:
            await anyio.sleep(delay)
        return web.Response(
            body=self.image_bytes(request.match_info["name"]), content_type="image/png"
        )
