"""The Serper client: ``POST {base}/search`` and ``POST {base}/images`` (SPEC section 3).

Every attempt takes a slot of the runtime's ``serper`` limiter, so the
whole process (every rollout, both endpoints, every retry) stays within the
plan's queries per second. Retries are the runtime's policy: 429s and 5xx
are retried (honouring ``Retry-After``), a refused key is not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import _json
from .._errors import BadResponseError, ConfigurationError
from .._provider_call import Attempt, Provider, call_provider
from .._status import redact_url, status_error
from ._search_backend import ImageResult, WebResult

if TYPE_CHECKING:
    from .._runtime import Runtime

__all__ = ["DEFAULT_SERPER_BASE_URL", "SerperBackend"]

DEFAULT_SERPER_BASE_URL = "https://google.serper.dev"
"""Serper's own endpoint, used when neither an argument nor ``SERPER_BASE_URL`` names one."""


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class SerperBackend:
    """Serper (or a Serper-compatible gateway) as a :class:`SearchBackend`.

    Settings left as ``None`` are read from the environment when first
    needed, never at construction: ``SERPER_API_KEY`` and
    ``SERPER_BASE_URL`` (default ``https://google.serper.dev``).

    Args:
        base_url: the service root, without ``/search``.
        api_key: the key sent as ``X-API-KEY``.
        provider: the limiter and statistics name (configure its rate with
            ``RuntimeConfig.limits["serper"] = ProviderLimits(rate=...)``).
        timeout: seconds for one attempt.
        gl: country code sent with every query (Serper's ``gl``).
        hl: language code sent with every query (Serper's ``hl``).
        location: location sent with every query.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        provider: str = "serper",
        timeout: float = 30.0,
        gl: str | None = None,
        hl: str | None = None,
        location: str | None = None,
    ) -> None:
        if timeout <= 0:
            raise ConfigurationError("SerperBackend: timeout must be positive")
        self._base_url = base_url
        self._api_key = api_key
        self.provider = provider
        self.timeout = timeout
        self._extra: dict[str, str] = {
            k: v for k, v in (("gl", gl), ("hl", hl), ("location", location)) if v
        }

    def __repr__(self) -> str:
        # Never the key, not even part of it.
        return f"SerperBackend(base_url={self._base_url!r}, provider={self.provider!r})"

    @property
    def base_url(self) -> str:
        """The service root in use (argument, then ``SERPER_BASE_URL``, then Serper's)."""
        url = (
            self._base_url or os.environ.get("SERPER_BASE_URL") or DEFAULT_SERPER_BASE_URL
        ).strip()
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"the Serper base URL must start with http:// or https://, got {redact_url(url)!r}"
            )
        return url.rstrip("/")

    def _key(self) -> str:
        key = (self._api_key or os.environ.get("SERPER_API_KEY") or "").strip()
        if not key:
            raise ConfigurationError(
                "search needs a Serper API key: set SERPER_API_KEY (or pass "
                "SerperBackend(api_key=...)); get one at https://serper.dev"
            )
        return key

    async def search(self, runtime: Runtime, query: str, num: int) -> list[WebResult]:
        """Organic web results for ``query`` (``POST /search``).

        Raises:
            ConfigurationError: no API key is configured.
            AuthenticationError: Serper refused the key (never retried).
            ServiceError: the query failed after the retry policy gave up.
        """
        data = await self._call(runtime, "search", query, num)
        organic = data.get("organic")
        items = organic if isinstance(organic, list) else []
        results = [
            WebResult(
                title=_text(item.get("title")),
                url=_text(item.get("link")) or _text(item.get("url")),
                snippet=_text(item.get("snippet")),
                position=_int(item.get("position")),
                date=_text(item.get("date")),
            )
            for item in items
            if isinstance(item, Mapping)
        ]
        return results[:num]

    async def images(self, runtime: Runtime, query: str, num: int) -> list[ImageResult]:
        """Image results for ``query`` (``POST /images``); items without a URL are skipped.

        Raises:
            ConfigurationError: no API key is configured.
            AuthenticationError: Serper refused the key (never retried).
            ServiceError: the query failed after the retry policy gave up.
        """
        data = await self._call(runtime, "images", query, num)
        raw = data.get("images")
        items = raw if isinstance(raw, list) else []
        results: list[ImageResult] = []
        for item in items:
            if not isinstance(item, Mapping):
                continue
            image_url = _text(item.get("imageUrl")) or _text(item.get("image_url"))
            if not image_url:
                continue
            results.append(
                ImageResult(
                    title=_text(item.get("title")),
                    image_url=image_url,
                    page_url=_text(item.get("link")) or _text(item.get("source")),
                    thumbnail_url=_text(item.get("thumbnailUrl")),
                    width=_int(item.get("imageWidth")),
                    height=_int(item.get("imageHeight")),
                    source=_text(item.get("source")),
                    domain=_text(item.get("domain")),
                    position=_int(item.get("position")),
                )
            )
        return results[:num]

    # -- the call --------------------------------------------------------------

    async def _call(self, runtime: Runtime, endpoint: str, query: str, num: int) -> dict[str, Any]:
        key = self._key()
        url = f"{self.base_url}/{endpoint}"
        body = _json.dumps_bytes({"q": query, "num": num, **self._extra})
        headers = {"X-API-KEY": key}
        # A search reads and changes nothing: safe to send again.
        provider = Provider(name=self.provider, secrets=(key,), safe_to_repeat=True)

        async def send(attempt: Attempt) -> dict[str, Any]:
            data = await attempt.post_json(url, body, headers=headers, timeout=self.timeout)
            return _checked(data, endpoint, provider, url)

        return await call_provider(runtime, provider, send)


def _checked(data: Any, endpoint: str, provider: Provider, url: str) -> dict[str, Any]:
    """The answer if it is a usable object; gateways may say 200 and mean an error.

    Such an error is classified by the status it names (or, lacking one, by
    what its text says) through the one status table.
    """
    service = provider.name
    if not isinstance(data, dict):
        where = f"{service} {redact_url(url)}"
        raise BadResponseError(f"{where} answered JSON that is not an object", service=service)
    expected = "organic" if endpoint == "search" else "images"
    error = data.get("error")
    message = data.get("message")
    status = _int(data.get("statusCode"))
    if not error and not (message and expected not in data) and not (status and status >= 400):
        return data  # the common case: no URL to redact
    detail = error if error else message
    if isinstance(detail, Mapping):
        try:
            detail = detail.get("message") or _json.dumps(detail)
        except TypeError:  # orjson writes 255 levels; the answer may nest deeper
            detail = "an error object nested too deeply to show"
    text = str(detail or f"status {status}")
    if status is None or status < 400:
        lowered = text.lower()
        if "unauthorized" in lowered or "api key" in lowered:
            status = 401
        elif "rate limit" in lowered or "too many requests" in lowered:
            status = 429
        else:
            status = 400
    raise status_error(
        status,
        None,
        service=service,
        where=f"{service} {redact_url(url)}",
        body=text,
        secrets=provider.secrets,
    )
