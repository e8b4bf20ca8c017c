"""Nano Banana Pro (``gemini-3-pro-image-preview``) through google-genai's async client.

The SDK does the wire work; everything around it is ours. Its own retries are
switched off (it does not honour the delay a 429 carries), so each attempt
goes through the shared retry policy and, before that, a process-wide
requests-per-minute bucket and in-flight cap. The SDK client rides on the
runtime's aiohttp session and is closed with the runtime.

Example::

    async with NanoBananaRenderer(rpm=20) as renderer:  # key from GOOGLE_API_KEY
        image = await renderer.render("a lighthouse in the style of the first reference", ["ref.jpg"])
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import anyio.to_thread
from PIL import Image, ImageOps

from .._decode import ImageDecodeError, open_image
from .._errors import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    RateLimitedError,
    ServiceUnavailableError,
)
from .._limits import ProviderLimiter, ProviderLimits
from .._provider_call import Attempt, Provider, call_provider
from .._runtime import Runtime
from .._status import parse_retry_after, redact_url, status_error
from ._base import PathLike, RendererBase

if TYPE_CHECKING:
    from google import genai

__all__ = ["DEFAULT_MODEL", "NanoBananaRenderer"]

logger = logging.getLogger("genevolve_async.renderers.nano_banana")

SERVICE = "nano_banana"
"""Provider name for the runtime's limiter, retry counters and resources."""
DEFAULT_MODEL = "gemini-3-pro-image-preview"
"""Nano Banana Pro's model id on the Generative Language API."""

_KEY_ENV = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class NanoBananaRenderer(RendererBase):
    """Render with Nano Banana Pro; references go as inline JPEG parts.

    Args:
        api_key: The key; ``None`` reads ``GOOGLE_API_KEY``, then ``GEMINI_API_KEY``
            (at first use, so constructing one never needs it).
        model: The model id.
        base_url: A gateway or test server instead of Google's endpoint.
        api_version: API version path segment (the SDK's default when ``None``).
        rpm: Requests per minute for the whole runtime (burst-free bucket).
            ``None`` uses the runtime's ``nano_banana`` limits, if any.
        max_in_flight: Requests under way at once for the whole runtime.
        runtime: The shared runtime; ``None``: the renderer opens its own when
            used as ``async with``.
        timeout: Seconds one request may take.
        max_references: References beyond this many are dropped.
        jpeg_quality: Quality of references re-encoded to JPEG.
        max_reference_side: References with a longer side are scaled down to it
            before sending (``None``: never). The API caps inline data at about
            20 MB a request and the SDK base64-encodes it on the event loop, so
            camera-sized files cost both; JPEGs within the bound go as they are.

    Raises:
        ConfigurationError: A limit is out of range.
    """

    name = "nano-banana-pro"
    needs_reference = False

    def __init__(
        self,
        *,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        api_version: str | None = None,
        rpm: float | None = None,
        max_in_flight: int | None = None,
        runtime: Runtime | None = None,
        timeout: float = 600.0,
        max_references: int = 14,
        jpeg_quality: int = 95,
        max_reference_side: int | None = 2048,
    ) -> None:
        super().__init__(runtime=runtime)
        if rpm is not None and rpm <= 0:
            raise ConfigurationError("rpm must be positive (or None)")
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigurationError("max_in_flight must be at least 1 (or None)")
        if timeout <= 0:
            raise ConfigurationError("timeout must be positive")
        self.model = model
        self.base_url = base_url
        self.api_version = api_version
        self.rpm = rpm
        self.max_in_flight = max_in_flight
        self.max_references = max_references
        self.jpeg_quality = jpeg_quality
        self.max_reference_side = max_reference_side
        self._api_key = api_key
        self._timeout = timeout
        # A burst of first renders would otherwise each build a client (in a thread
        # apiece) before the runtime keeps one and closes the rest.
        self._client_lock = anyio.Lock()

    def __repr__(self) -> str:  # never show the key
        where = f", base_url={redact_url(self.base_url)!r}" if self.base_url else ""
        return f"NanoBananaRenderer(model={self.model!r}{where})"

    def _key(self) -> str:
        key = self._api_key or next((os.environ[v] for v in _KEY_ENV if os.environ.get(v)), None)
        if not key or not key.strip():
            raise ConfigurationError(
                "Nano Banana Pro needs an API key: set GOOGLE_API_KEY or GEMINI_API_KEY, "
                "or pass api_key="
            )
        return key.strip()

    async def limiter(self) -> ProviderLimiter:
        """The limiter every Nano Banana Pro request in this runtime passes.

        Raises:
            ConfigurationError: The runtime's limiter has other limits than ours.
        """
        if self.rpm is None and self.max_in_flight is None:
            return self.runtime.limiter(SERVICE)
        if self.rpm is not None:
            limits = ProviderLimits.per_minute(self.rpm, max_in_flight=self.max_in_flight)
        else:
            limits = ProviderLimits(max_in_flight=self.max_in_flight)
        return self.runtime.limiter(SERVICE, limits)

    async def _client(self) -> genai.Client:
        runtime = self.runtime
        key = self._key()
        # One SDK client per (endpoint, key) and runtime; the key only as a digest.
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        resource = f"google-genai:{self.base_url}:{self.api_version}:{self._timeout}:{digest}"
        session = runtime.http

        async def make() -> genai.Client:
            # Building it loads CA bundles from disk: a worker thread's job.
            return await anyio.to_thread.run_sync(self._build_client, key, session)

        async def close(client: genai.Client) -> None:
            await client.aio.aclose()  # leaves our aiohttp session alone
            client.close()  # the sync transport the SDK built eagerly

        async with self._client_lock:
            return await runtime.resource(resource, make, close)

    def _build_client(self, key: str, session: aiohttp.ClientSession) -> genai.Client:
        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            base_url=self.base_url,
            api_version=self.api_version,
            timeout=int(self._timeout * 1000),
            # attempts=1 also stops the SDK's own hidden retry of connection errors.
            retry_options=types.HttpRetryOptions(attempts=1),
            aiohttp_client=session,
        )
        return genai.Client(api_key=key, vertexai=False, http_options=options)

    async def render(
        self,
        prompt: str,
        reference_paths: Sequence[PathLike],
        *,
        seed: int | None = None,
    ) -> Image.Image:
        """Render ``prompt`` with the references as inline JPEG parts.

        Args:
            prompt: The generation prompt (references named by ordinal phrases).
            reference_paths: Reference image files, first one first; may be empty.
            seed: Sent as the generation seed when given.

        Returns:
            The image of the first inline-data part of the answer.

        Raises:
            ConfigurationError: No API key, or a reference that cannot be read.
            AuthenticationError: The key was refused.
            RateLimitedError: 429s outlasted the retries.
            ServiceUnavailableError: 5xx answers, timeouts or connection errors.
            BadResponseError: Another 4xx, or an answer without an image (a
                safety block, for one).
        """
        from google.genai import types

        runtime = self.runtime
        client = await self._client()
        limiter = await self.limiter()
        paths = [os.fspath(p) for p in reference_paths][: self.max_references]
        jpegs = await anyio.to_thread.run_sync(
            _load_jpegs, paths, self.jpeg_quality, self.max_reference_side
        )
        parts = [types.Part.from_text(text=prompt)]
        parts += [types.Part.from_bytes(data=j, mime_type="image/jpeg") for j in jpegs]
        contents = [types.Content(role="user", parts=parts)]
        config = types.GenerateContentConfig(seed=seed) if seed is not None else None

        async def send(attempt: Attempt) -> Any:
            try:
                return await client.aio.models.generate_content(
                    model=self.model, contents=contents, config=config
                )
            except Exception as exc:
                mapped = _classify(exc, self.base_url)
                if mapped is exc:
                    raise
                raise mapped from exc

        provider = Provider(name=SERVICE, secrets=(self._key(),), safe_to_repeat=False)
        response = await call_provider(runtime, provider, send, limiter=limiter)
        data = _inline_image(response)
        return await anyio.to_thread.run_sync(_decode_image, data)


def _load_jpegs(paths: list[str], quality: int, max_side: int | None) -> list[bytes]:
    return [_as_jpeg(p, quality, max_side) for p in paths]


def _as_jpeg(path: str, quality: int, max_side: int | None = None) -> bytes:
    """The file as it is if it is a small enough JPEG, else an RGB JPEG of it (blocking)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        with open_image(data) as raw:
            if raw.format == "JPEG" and (max_side is None or max(raw.size) <= max_side):
                return data
            # Re-encoding drops EXIF, so bake the orientation into the pixels first.
            image = ImageOps.exif_transpose(raw)
            if max_side is not None and max(image.size) > max_side:
                image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            if image.mode in ("RGBA", "LA", "P", "PA"):
                # JPEG has no alpha: flatten onto white, as the judge's images are.
                rgba = image.convert("RGBA")
                rgb = Image.new("RGB", rgba.size, (255, 255, 255))
                rgb.paste(rgba, mask=rgba.getchannel("A"))
            else:
                rgb = image.convert("RGB")
            out = io.BytesIO()
            rgb.save(out, format="JPEG", quality=quality)
            return out.getvalue()
    except (OSError, ImageDecodeError) as exc:
        raise ConfigurationError(f"reference image {path!r} cannot be read: {exc}") from exc


def _decode_image(data: bytes) -> Image.Image:
    try:
        with open_image(data) as opened:
            opened.load()
            image = opened.copy()
            image.format = opened.format  # a copy forgets it
    except ImageDecodeError as exc:
        raise BadResponseError(
            f"{SERVICE} answered image bytes that do not decode: {exc}", service=SERVICE
        ) from exc
    return image


def _inline_image(response: Any) -> bytes:
    """The first inline image of a ``GenerateContentResponse``, or why there is none."""
    texts: list[str] = []
    reasons: list[str] = []
    for candidate in getattr(response, "candidates", None) or []:
        if candidate.finish_reason is not None:
            reasons.append(str(getattr(candidate.finish_reason, "value", candidate.finish_reason)))
        parts = candidate.content.parts if candidate.content is not None else None
        for part in parts or []:
            blob = part.inline_data
            if blob is not None and blob.data and (blob.mime_type or "image/").startswith("image/"):
                return bytes(blob.data)
            if part.text:
                texts.append(part.text)
    feedback = getattr(response, "prompt_feedback", None)
    block = getattr(feedback, "block_reason", None) if feedback is not None else None
    detail = []
    if block is not None:
        detail.append(f"prompt blocked: {getattr(block, 'value', block)}")
    if reasons:
        detail.append(f"finish reason {', '.join(reasons)}")
    if texts:
        detail.append(f"text: {' '.join(texts)[:300]!r}")
    raise BadResponseError(
        f"{SERVICE} answered without an image ({'; '.join(detail) or 'no candidates'})",
        service=SERVICE,
    )


def _retry_delay(details: Any, headers: Mapping[str, str] | None = None) -> float | None:
    """Seconds a Google 429 asks to wait: its RetryInfo ``retryDelay``, else ``Retry-After``.

    Args:
        details: The decoded error body (``{"error": {"details": [...]}}``).
        headers: The response headers, if any.

    Returns:
        The delay, or None when the answer names none.
    """
    error = details.get("error", details) if isinstance(details, dict) else None
    items = error.get("details") if isinstance(error, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = item.get("retryDelay")
            if isinstance(delay, dict):  # the protobuf-JSON object form
                return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
            match = _DURATION.match(str(delay or ""))
            if match:
                return float(match.group(1))
    if headers is not None:
        return parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
    return None


def _classify(exc: Exception, base_url: str | None) -> Exception:
    """Map an SDK or transport failure onto our error tree (messages carry no key).

    An HTTP answer goes through the one status table; Google's own twists
    come first: a 429's delay sits in its RetryInfo, and a bad key is a 400.
    """
    from google.genai import errors

    where = f"{SERVICE} {redact_url(base_url)}" if base_url else SERVICE
    if isinstance(exc, errors.APIError):
        code = int(exc.code or 0)
        message = str(exc.message or exc.status or "")
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if code == 429:
            return RateLimitedError(
                f"{where} answered 429 {message[:300]}",
                service=SERVICE,
                retry_after=_retry_delay(exc.details, headers),
            )
        if code == 400 and "API key" in message:
            # Google reports a bad key as 400 INVALID_ARGUMENT (API_KEY_INVALID).
            code = 401
        error = status_error(code, headers, service=SERVICE, where=where, body=message)
        if isinstance(error, AuthenticationError):
            error.args = (
                f"{where} refused the API key (HTTP {exc.code}); "
                "check GOOGLE_API_KEY / GEMINI_API_KEY",
            )
            error.status = int(exc.code or 0)
        return error
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ServiceUnavailableError(f"{where}: cannot connect", service=SERVICE)
    if isinstance(exc, TimeoutError | aiohttp.ClientError):
        # The request may have reached Google, which bills a generation that ran.
        what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return ServiceUnavailableError(f"{where}: {what}", service=SERVICE, retryable=False)
    return exc
