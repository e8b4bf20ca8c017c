"""The one table from an HTTP answer to our error tree, and URL redaction.

Every client (ours over aiohttp, and the SDK routes by their status codes)
turns a failed answer into the same classified error, so the retry policy
and the endpoint pools decide the same way for every provider:

=============  ===========================  ==========
status         error                        retried
=============  ===========================  ==========
401, 403       AuthenticationError          never
429            RateLimitedError             yes
408, 5xx       ServiceUnavailableError      yes
other 4xx      BadResponseError             no
=============  ===========================  ==========
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._errors import (
    AuthenticationError,
    BadResponseError,
    RateLimitedError,
    ServiceError,
    ServiceUnavailableError,
)
from ._secrets import scrubbed_snippet

__all__ = ["parse_retry_after", "redact_url", "sdk_status_error", "snippet", "status_error"]

_SNIPPET = 300
"""Characters of an error body quoted in a message."""


def redact_url(url: str) -> str:
    """The URL without credentials or query string, safe for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def snippet(body: bytes | str, secrets: Iterable[str | None] = ()) -> str:
    """``": <start of the body>"`` for a message, keys scrubbed before the cut; ``""`` if empty."""
    raw = (
        body[: 4 * _SNIPPET]
        if isinstance(body, str)
        else body[: 4 * _SNIPPET].decode("utf-8", "replace")
    )
    text = scrubbed_snippet(" ".join(raw.split()), secrets, _SNIPPET)
    return f": {text}" if text else ""


def status_error(
    status: int,
    headers: Any,
    *,
    service: str,
    where: str,
    body: bytes | str = b"",
    secrets: Iterable[str | None] = (),
) -> ServiceError:
    """The classified error for a non-2xx answer (``where`` names the endpoint)."""
    retry_after = parse_retry_after(headers.get("Retry-After")) if headers is not None else None
    if status in (401, 403):
        # The body of an auth failure can echo what we sent; keep it out.
        return AuthenticationError(
            f"{where} refused the credentials (HTTP {status}); check the API key",
            service=service,
            status=status,
        )
    if status == 429:
        return RateLimitedError(
            f"{where} answered 429 Too Many Requests", service=service, retry_after=retry_after
        )
    if status >= 500 or status == 408:
        return ServiceUnavailableError(
            f"{where} answered HTTP {status}{snippet(body, secrets)}",
            service=service,
            status=status,
            retry_after=retry_after,
        )
    return BadResponseError(
        f"{where} answered HTTP {status}{snippet(body, secrets)}", service=service, status=status
    )


def sdk_status_error(exc: Any, *, service: str, where: str) -> ServiceError:
    """The classified error for an SDK's HTTP status exception (openai's ``APIStatusError``).

    Built from the status and headers alone: an SDK's message may quote the
    response body, and a body can echo what we sent.
    """
    status = int(getattr(exc, "status_code", 0) or 0)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return status_error(status, headers, service=service, where=where)
