"""A simulated image host: ``GET /img/{name}`` answers a small PNG, or a fault.

Each name gets its own bytes (a PNG text chunk carries the name), so a
content-addressed cache sees distinct images. A name starting with
``f-<fault>-`` answers that fault instead, which lets a simulated search
result point at a broken image:

- ``corrupt``: bytes that are no image, labelled ``image/png``;
- ``truncated``: the first half of a PNG;
- ``html``: an HTML page (``text/html``); ``wrongtype``: a PNG labelled ``text/html``;
- ``huge``: ``oversized_bytes`` with a Content-Length; ``hugestream``: the same, chunked;
- ``bomb``: a PNG whose header claims 30000 x 30000 pixels;
- ``slow``: the PNG trickled ``slow_chunk`` bytes every ``slow_delay`` seconds;
- ``stall``: a few bytes, then silence until the client leaves (or ``stall_seconds``);
- ``status404`` (any code): that HTTP status.

``GET /redirect/{hops}/{name}`` redirects ``hops`` times (relative
Locations) to ``/img/{name}``; ``GET /redirect-to?url=U`` redirects to ``U``.
"""

from __future__ import annotations

import io
import random
import struct
import time
import zlib
from collections import Counter
from collections.abc import Iterable

import anyio
from aiohttp import web
from PIL import Image

from ._common import Faults, Latency, json_response, reset_midway, trickle
from ._server import Stats, counting_middleware

__all__ = ["SimImageHost", "make_bomb_png", "make_png"]

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


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _with_text(png: bytes, text: str) -> bytes:
    """``png`` with a tEXt chunk before IEND (same pixels, different bytes)."""
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + _chunk(b"tEXt", b"name\0" + text.encode("utf-8", "replace")) + png[iend:]


def make_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` 1-bit pixels."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
    rows = zlib.compress(b"\0" * ((width + 7) // 8 + 1) * 4)  # a few rows; the rest is missing
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


class SimImageHost:
    """Serves PNGs with a configurable latency, and faulty images by name.

    ``shuffle=True`` draws each response's delay uniformly from
    ``[0, 2 * latency.mean]`` so that concurrent downloads finish in an order
    unrelated to the order they started in. ``faults`` adds random 403, 429
    and 500 answers, connection resets and slow bodies trickled past the client's
    timeout to ``/img``. ``downloads`` counts requests per image name.
    """

    def __init__(
        self,
        *,
        latency: Latency | None = None,
        shuffle: bool = False,
        seed: int = 0,
        faults: Faults | None = None,
        oversized_bytes: int = 21 * 2**20,
        slow_chunk: int = 16,
        slow_delay: float = 0.2,
        stall_seconds: float = 30.0,
    ) -> None:
        self.latency = latency or Latency()
        self.shuffle = shuffle
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.oversized_bytes = oversized_bytes
        self.slow_chunk = slow_chunk
        self.slow_delay = slow_delay
        self.stall_seconds = stall_seconds
        self.stats = Stats()
        self.downloads: Counter[str] = Counter()
        """Requests per image name."""
        self._variants = [make_png(c) for c in _PALETTE]
        self.app = web.Application(middlewares=[counting_middleware(self.stats)])
        self.app.router.add_get("/img/{name}", self._image)
        self.app.router.add_get("/redirect/{hops}/{name}", self._redirect)
        self.app.router.add_get("/redirect-to", self._redirect_to)

    def image_bytes(self, name: str) -> bytes:
        """The PNG served for ``name``: one of a few pictures, bytes unique to the name."""
        return _with_text(self._variants[zlib.crc32(name.encode()) % len(self._variants)], name)

    async def _image(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.downloads[name] += 1
        transport_fault = self.faults.draw_transport(self.rng)
        if transport_fault is not None:
            self.stats.faults[transport_fault] += 1
        if transport_fault == "reset":
            return await reset_midway(request, content_type="image/png")
        # One fault per request: a slow body is not also a 429.
        fault = self.faults.draw(self.rng) if transport_fault is None else None
        if fault is not None:
            self.stats.faults[str(fault)] += 1
            return self.faults.response(fault)
        if self.shuffle and self.latency.mean > 0:
            delay = self.rng.uniform(0.0, 2 * self.latency.mean)
        else:
            delay = self.latency.sample(self.rng)
        if delay:
            await anyio.sleep(delay)
        tag = name[2:].split("-", 1)[0] if name.startswith("f-") else ""
        if tag:
            self.stats.faults[tag] += 1
        response = await self._answer(request, tag, self.image_bytes(name))
        if transport_fault == "slow":
            return await trickle(request, response, self.faults.slow_seconds)
        return response

    async def _answer(self, request: web.Request, tag: str, png: bytes) -> web.StreamResponse:
        if tag == "corrupt":
            return web.Response(body=b"definitely not an image " * 40, content_type="image/png")
        if tag == "truncated":
            return web.Response(body=png[: len(png) // 2], content_type="image/png")
        if tag == "html":
            return web.Response(
                body=b"<html><body>Not an image</body></html>", content_type="text/html"
            )
        if tag == "wrongtype":
            return web.Response(body=png, content_type="text/html")
        if tag == "bomb":
            return web.Response(body=make_bomb_png(), content_type="image/png")
        if tag in ("huge", "hugestream"):
            size = self.oversized_bytes
            chunks = (png + bytes(64 * 1024 - len(png)) for _ in range(size // (64 * 1024) + 1))
            return await self._stream(request, chunks, length=size if tag == "huge" else None)
        if tag == "slow":
            step = max(1, self.slow_chunk)
            parts = (png[i : i + step] for i in range(0, len(png), step))
            return await self._stream(request, parts, pause=self.slow_delay)
        if tag == "stall":
            return await self._stall(request, png)
        if tag.startswith("status") and tag[6:].isdigit():
            status = int(tag[6:])
            return json_response({"error": f"simulated {status}"}, status=status)
        return web.Response(body=png, content_type="image/png")

    async def _stream(
        self,
        request: web.Request,
        chunks: Iterable[bytes],
        *,
        length: int | None = None,
        pause: float = 0.0,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        sent = 0
        try:
            for chunk in chunks:
                if length is not None:
                    chunk = chunk[: length - sent]
                await response.write(chunk)
                sent += len(chunk)
                if pause:
                    await anyio.sleep(pause)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client gave up on us: that is the point of these faults
        return response

    async def _stall(self, request: web.Request, png: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        try:
            await response.write(png[:32])
        except (ConnectionError, RuntimeError):
            return response
        deadline = time.monotonic() + self.stall_seconds
        # Poll rather than sleep it out: the handler should end soon after the client leaves.
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            await anyio.sleep(0.02)
        return response

    async def _redirect(self, request: web.Request) -> web.Response:
        hops = request.match_info["hops"]
        name = request.match_info["name"]
        left = int(hops) - 1 if hops.isdigit() else 0
        location = f"/redirect/{left}/{name}" if left > 0 else f"/img/{name}"
        return web.Response(status=302, headers={"Location": location})

    async def _redirect_to(self, request: web.Request) -> web.Response:
        target = request.query.get("url", "")
        if not target:
            return json_response({"error": "url is required"}, status=400)
        return web.Response(status=302, headers={"Location": target})
