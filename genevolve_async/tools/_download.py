"""One guarded image download, shared by the image cache and our Qwen service.

:func:`open_download` checks the URL, sends the GET on the runtime's session
inside the address guard (every resolved address and every redirect hop
checked, see :mod:`.._session`), follows a bounded number of redirects,
and hands back a response that is a 200 with an image type and an announced
size within the limit. The caller reads the body, counting what arrives
(after decompression) against the same limit. Every failure is a
:class:`DownloadRefused` with a short reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp

from .._session import guarded
from ._address import AddressPolicy, RefusedAddressError

__all__ = ["DownloadRefused", "check_url", "open_download"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ACCEPTED_TYPES = ("application/octet-stream", "binary/octet-stream")
_HEADERS = {
    "Accept": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8",
    "User-Agent": "Mozilla/5.0 (compatible; genevolve-async image fetcher)",
}


class DownloadRefused(Exception):
    """A download that was refused or failed; ``reason`` is a short drop reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


def check_url(url: str, policy: AddressPolicy) -> None:
    """Refuse what is not an http(s) URL with a host, or names a refused IP literal."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise DownloadRefused("bad_url", str(exc)) from exc
    if parts.scheme not in ("http", "https") or not host:
        raise DownloadRefused("bad_url", f"only http(s) URLs with a host: {parts.scheme!r}")
    try:
        policy.check_host(host)
    except RefusedAddressError as exc:
        raise DownloadRefused("private_address", str(exc)) from exc


def _check_type(content_type: str) -> None:
    # Pillow has the last word; this only turns away pages and JSON early.
    if content_type.startswith("image/") and content_type != "image/svg+xml":
        return
    if content_type in _ACCEPTED_TYPES:
        return
    raise DownloadRefused("content_type", content_type)


@asynccontextmanager
async def open_download(
    session: aiohttp.ClientSession,
    url: str,
    *,
    policy: AddressPolicy,
    timeout: float,
    max_redirects: int,
    max_bytes: int,
    hops: list[int] | None = None,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The checked answer for ``url`` (see the module docstring).

    Args:
        hops: if given, the redirect hops taken are appended to it.

    Raises:
        DownloadRefused: the URL, an address, a redirect, the status, the
            type or the announced size was refused, or the request failed.
    """
    check_url(url, policy)
    follow = max_redirects > 0
    try:
        with guarded(policy):
            async with session.get(
                url,
                headers=_HEADERS,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=follow,
                # aiohttp counts the answer that would need one hop more.
                max_redirects=max_redirects + 1,
            ) as resp:
                if hops is not None:
                    hops.append(len(resp.history))
                if resp.status in _REDIRECTS:  # one aiohttp did not follow
                    if "Location" not in resp.headers:
                        raise DownloadRefused("http_status", "a redirect without a Location")
                    raise DownloadRefused("too_many_redirects", f"more than {max_redirects}")
                if resp.status != 200:
                    raise DownloadRefused("http_status", f"HTTP {resp.status}")
                _check_type(resp.content_type)
                length = resp.content_length
                if length is not None and length > max_bytes:
                    raise DownloadRefused("too_large", f"{length} bytes announced")
                yield resp
    except DownloadRefused:
        raise
    except Exception as exc:
        raise refusal_for(exc, timeout=timeout, max_redirects=max_redirects) from exc


def refusal_for(exc: Exception, *, timeout: float, max_redirects: int) -> DownloadRefused:
    """Why a download failed, as a refusal (re-raises what is not a download error)."""
    if isinstance(exc, DownloadRefused):
        return exc
    cause: BaseException | None = exc
    while cause is not None:  # aiohttp wraps a refusal of the guard
        if isinstance(cause, RefusedAddressError):
            return DownloadRefused("private_address", str(cause))
        cause = getattr(cause, "os_error", None) or cause.__cause__
    if isinstance(exc, aiohttp.TooManyRedirects):
        return DownloadRefused("too_many_redirects", f"more than {max_redirects}")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return DownloadRefused("bad_url", "a URL (or redirect Location) that is not usable http(s)")
    if isinstance(exc, TimeoutError):
        return DownloadRefused("timeout", f"no complete answer in {timeout:g}s")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return DownloadRefused("network", f"{type(exc).__name__}: {exc}"[:300])
    if isinstance(exc, ValueError):  # a URL the client cannot send
        return DownloadRefused("bad_url", str(exc)[:300])
    raise exc
