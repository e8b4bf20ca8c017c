"""Turning `/generate`'s `image_urls` into upright RGB images.

Data URIs are accepted by default (the published clients send them). http(s)
references are fetched only when the service is started with fetching on,
and then through the same guarded download as the agent's image cache
(`tools._download`: public addresses only unless allowed, every redirect
hop checked, bounded hops, size and decompression limits), on a Runtime of
the service's own. Base64 and PIL decoding run in a worker thread, never on
the loop. Every failure is a `BadReference` naming the reference, answered
with HTTP 400.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import anyio.to_thread

from .._runtime import Runtime
from .._session import BodyTooLargeError, read_body
from .._status import redact_url
from ..tools._address import AddressPolicy
from ..tools._download import DownloadRefused, open_download

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["BadReference", "ReferenceFetcher", "load_references"]


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


@dataclass(kw_only=True, slots=True, frozen=True)
class ReferenceFetcher:
    """Fetches http(s) references on a runtime's session, through the download guard."""

    runtime: Runtime
    policy: AddressPolicy
    max_bytes: int
    timeout: float
    max_redirects: int = 5

    async def fetch(self, url: str, index: int) -> bytes:
        try:
            async with open_download(
                self.runtime.http,
                url,
                policy=self.policy,
                timeout=self.timeout,
                max_redirects=self.max_redirects,
                max_bytes=self.max_bytes,
            ) as response:
                return await read_body(response, self.max_bytes)
        except DownloadRefused as exc:
            raise BadReference(
                f"reference {index}: fetching {_short(redact_url(url))} failed ({exc.reason}: {exc})"
            ) from exc
        except BodyTooLargeError as exc:
            raise BadReference(f"reference {index} is larger than {self.max_bytes} bytes") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise BadReference(
                f"reference {index}: fetching {_short(redact_url(url))} failed ({type(exc).__name__})"
            ) from exc


async def load_references(
    urls: Sequence[str],
    *,
    fetcher: ReferenceFetcher | None,
) -> list[Image.Image]:
    """Fetch and decode reference images.

    Args:
        urls: Data URIs or http(s) URLs, first reference first.
        fetcher: Fetches http(s) references; `None` refuses them.

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
            if fetcher is None:
                raise BadReference(
                    f"reference {index}: http(s) references are not enabled on this service "
                    "(send a data URI, or start it with --fetch-http-references)"
                )
            items.append(await fetcher.fetch(url, index))
        else:
            raise BadReference(
                f"reference {index}: expected a data URI or an http(s) URL, got {_short(url)}"
            )
    return await anyio.to_thread.run_sync(_decode_all, items)
