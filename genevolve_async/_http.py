"""One HTTP attempt on the runtime's wire client, with errors classified.

The hot paths (policy, Serper, Qwen services, image hosts) use our own
HTTP/1.1 client (:mod:`._wire`): on this kind of machine it costs a third of
aiohttp's CPU per request, and a tenth of the httpx2 transport's (see
PERF.md). This module turns every failure into our exception tree so the
retry policy can decide what to do.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import _json
from ._errors import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    RateLimitedError,
    ServiceError,
    ServiceUnavailableError,
)
from ._wire import WireClient

__all__ = [
    "parse_retry_after",
    "post_json",
    "raise_for_status",
    "redact_url",
    "scrub_secret",
    "sdk_status_error",
    "status_error",
]


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


def scrub_secret(exc: BaseException, secret: str | None) -> None:
    """Cut ``secret`` out of an error's message, in place.

    Error messages carry a snippet of the answer's body, and a server or
    proxy may echo the key it was sent ("key sk-... is over its quota").
    Short placeholders such as ``EMPTY`` are left alone.
    """
    if secret and len(secret) >= 8 and any(secret in str(arg) for arg in exc.args):
        exc.args = tuple(str(arg).replace(secret, "[redacted]") for arg in exc.args)


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


def _snippet(body: bytes) -> str:
    text = body[:300].decode("utf-8", "replace").strip()
    return f": {text}" if text else ""


def status_error(
    status: int, headers: Any, *, service: str, where: str, body: bytes = b""
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
            f"{where} answered HTTP {status}{_snippet(body)}",
            service=service,
            status=status,
            retry_after=retry_after,
        )
    return BadResponseError(
        f"{where} answered HTTP {status}{_snippet(body)}", service=service, status=status
    )


def sdk_status_error(exc: Any, *, service: str, where: str) -> ServiceError:
    """The classified error for an SDK's HTTP status exception (openai's ``APIStatusError``).

    Built from the status and headers alone: an SDK's message may quote the
    response body, and a body can echo what we sent.
    """
    status = int(getattr(exc, "status_code", 0) or 0)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return status_error(status, headers, service=service, where=where)


def raise_for_status(status: int, headers: Any, body: bytes, *, service: str, url: str) -> None:
    """Raise the classified error for a non-2xx answer."""
    if status >= 400:
        raise status_error(
            status, headers, service=service, where=f"{service} {redact_url(url)}", body=body
        )


_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


async def post_json(
    client: WireClient,
    url: str,
    body: bytes,
    *,
    service: str,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Any:
    """POST a JSON body and decode the JSON answer; raise classified errors.

    ``timeout`` bounds the whole exchange, connecting included.
    """
    hdrs = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
    try:
        resp = await client.request("POST", url, headers=hdrs, body=body, timeout=timeout)
    except TimeoutError as exc:
        raise ServiceUnavailableError(
            f"{service} {redact_url(url)} timed out", service=service
        ) from exc
    except OSError as exc:
        raise ServiceUnavailableError(
            f"{service} {redact_url(url)}: {type(exc).__name__}: {exc}", service=service
        ) from exc
    except ValueError as exc:  # a URL or header HTTP cannot carry; the message names no value
        raise ConfigurationError(f"{service} {redact_url(url)}: {exc}") from exc
    raw = resp.body
    if resp.status >= 400:
        raise_for_status(resp.status, resp.headers, raw, service=service, url=url)
    try:
        return _json.loads(raw)
    except ValueError as exc:
        raise BadResponseError(
            f"{service} {redact_url(url)} answered a body that is not JSON{_snippet(raw)}",
            service=service,
        ) from exc
