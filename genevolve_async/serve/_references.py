"""Turning `/generate`'s `image_urls` into upright RGB images.

Data URIs are decoded and http(s) URLs fetched with aiohttp (size cap and
timeout); base64 and PIL decoding run in a worker thread, never on the loop.
Every failure is a `BadReference` naming the reference, answered with HTTP 400.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp
import anyio.to_thread

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["BadReference", "load_references"]


class BadReference(ValueError):
    """A reference that cannot be fetched or decoded as an image (HTTP 400)."""


def _short(url: str, limit: int = 80) -> str:
    # Data URIs run to megabytes; error messages only need their start.
    return url if len(url) <= limit else url[:limit] + "..."


def _data_uri_bytes(uri: str, index: int) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise BadReference(f"reference {index}: malformed data URI (no comma): {_short(uri)}")
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BadReference(f"reference {index}: data URI is not valid base64 ({exc})") from exc
    return urllib.parse.unquote_to_bytes(payload)


def _decode(item: str | bytes, index: int) -> Image.Image:
    from PIL import ImageOps

    from .._decode import open_image

    data = _data_uri_bytes(item, index) if isinstance(item, str) else item
    try:
        with open_image(data) as raw:
            return ImageOps.exif_transpose(raw).convert("RGB")
    # Broken files surface as many exception types (OSError, SyntaxError,
    # struct.error, DecompressionBombError...); all mean "not a usable image".
    except Exception as exc:
        raise BadReference(f"reference {index} is not a decodable image ({exc})") from exc


def _decode_all(items: list[str | bytes]) -> list[Image.Image]:
    return [_decode(item, index) for index, item in enumerate(items, start=1)]


async def _fetch(
    session: aiohttp.ClientSession, url: str, index: int, *, max_bytes: int, timeout: float
) -> bytes:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 200:
                raise BadReference(
                    f"reference {index}: GET {_short(url)} answered HTTP {response.status}"
                )
            if response.content_length is not None and response.content_length > max_bytes:
                raise BadReference(f"reference {index} is larger than {max_bytes} bytes")
            buffer = bytearray()
            async for chunk in response.content.iter_chunked(1 << 16):
                buffer += chunk
                # Content-Length can be absent or wrong; count what actually arrives.
                if len(buffer) > max_bytes:
                    raise BadReference(f"reference {index} is larger than {max_bytes} bytes")
            return bytes(buffer)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BadReference(f"reference {index}: fetching {_short(url)} failed ({exc!r})") from exc


async def load_references(
    urls: Sequence[str],
    *,
    session: aiohttp.ClientSession | None,
    max_bytes: int,
    fetch_timeout: float,
) -> list[Image.Image]:
    """Fetch and decode reference images.

    Args:
        urls: Data URIs or http(s) URLs, first reference first.
        session: Session for http(s) fetches; `None` refuses http(s) references.
        max_bytes: Largest accepted download.
        fetch_timeout: Seconds allowed per download.

    Returns:
        Upright RGB images in `urls` order.

    Raises:
        BadReference: If a reference cannot be fetched or decoded.
    """
    items: list[str | bytes] = []
    for index, url in enumerate(urls, start=1):
        scheme = url[:8].lower()
        if scheme.startswith("data:"):
            items.append(url)
        elif scheme.startswith(("http://", "https://")):
            if session is None:
                raise BadReference(f"reference {index}: http(s) references are not enabled")
            items.append(
                await _fetch(session, url, index, max_bytes=max_bytes, timeout=fetch_timeout)
            )
        else:
            raise BadReference(
                f"reference {index}: expected a data URI or an http(s) URL, got {_short(url)}"
            )
    return await anyio.to_thread.run_sync(_decode_all, items)
