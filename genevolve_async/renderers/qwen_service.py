"""Client of Qwen-Image-Edit HTTP services (SPEC section 4), over an endpoint pool.

Several service URLs share the work through the runtime's endpoint pool:
least-loaded choice with round-robin ties, a per-URL cap on requests in
flight equal to the GPU count the service's ``GET /health`` reports (so a
slow endpoint is not piled on while others are free; a service without
``/health`` is not capped, so the caller's parallelism spreads round-robin),
a failed request moved to another endpoint by the retry policy (an answer
of ``success: false`` is tried up to three times, as the original client
did), and an endpoint that fails
``quarantine_after`` times in a row taken out and probed with ``/health``
before it serves again.

Example::

    async with QwenServiceRenderer(["http://gpu1:8001", "http://gpu2:8001"]) as renderer:
        image = await renderer.render("the first reference image, at dusk", ["ref.jpg"])
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Sequence
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
from PIL import Image

from .. import _json
from .._decode import ImageDecodeError, open_image
from .._endpoints import Endpoint, EndpointPool
from .._errors import BadResponseError, ConfigurationError
from .._provider_call import Attempt, Provider, RetryElsewhere, call_provider
from .._runtime import Runtime
from .._session import read_body
from .._status import redact_url
from ._base import PathLike, ReferenceRequiredError, RendererBase
from ._sizing import resolve_size

__all__ = ["QwenServiceRenderer"]

logger = logging.getLogger("genevolve_async.renderers.qwen_service")

SERVICE = "qwen_service"
"""Provider name for the runtime's pool, limiter and statistics."""

_PROVIDER = Provider(
    name=SERVICE,
    # SPEC: a 503 means every GPU is busy; try another service, no quarantine step.
    busy_statuses=frozenset({429, 503}),
    # A render takes a GPU for minutes: one that may have run is not sent again.
    safe_to_repeat=False,
)
_UNSUCCESSFUL_TRIES = 3
"""Tries of a render the service answered ``success: false`` (the original's count)."""

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


class QwenServiceRenderer(RendererBase):
    """Render through one or more Qwen-Image-Edit services (``POST /generate``).

    Args:
        urls: Service base URLs (a trailing ``/generate`` is accepted and dropped).
        runtime: The shared runtime; ``None``: the renderer opens its own
            when used as ``async with``.
        max_in_flight_per_url: Cap on requests in flight per URL. ``None``
            reads the GPU count from each service's ``/health`` on first use
            (1 when it reports none); a service without ``/health``, or one
            that cannot be reached, gets no cap: the caller's parallelism is
            spread round-robin over the URLs.
        timeout: Seconds one request may take; renders are slow.
        quarantine_after: Consecutive failures that quarantine an endpoint.
        cooldown: Seconds a quarantined endpoint waits before its health probe.
        seed: Seed sent when ``render`` gets none.
        true_cfg_scale: Sent as is (SPEC default 4.0).
        negative_prompt: Sent as is (SPEC default ``" "``).
        num_inference_steps: Sent as is (SPEC default 40).
        guidance_scale: Sent as is (SPEC default 1.0).
        num_images_per_prompt: Sent as is (SPEC default 1).
        max_references: References beyond this many are dropped (SPEC: 4).
        long_side: Long side of the output when no size is given.
        health_timeout: Seconds a ``/health`` request may take.

    Raises:
        ConfigurationError: No URL, a URL that is not http(s), or a bad limit.
    """

    name = "qwen-image-edit-service"
    needs_reference = True

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        runtime: Runtime | None = None,
        max_in_flight_per_url: int | None = None,
        timeout: float = 1800.0,
        quarantine_after: int = 3,
        cooldown: float = 30.0,
        seed: int = 0,
        true_cfg_scale: float = 4.0,
        negative_prompt: str = " ",
        num_inference_steps: int = 40,
        guidance_scale: float = 1.0,
        num_images_per_prompt: int = 1,
        max_references: int = 4,
        long_side: int = 1024,
        health_timeout: float = 10.0,
    ) -> None:
        super().__init__(runtime=runtime)
        self.urls = _normalize_urls(urls)
        if max_in_flight_per_url is not None and max_in_flight_per_url < 1:
            raise ConfigurationError("max_in_flight_per_url must be at least 1 (or None)")
        if max_references < 1:
            raise ConfigurationError("max_references must be at least 1")
        if timeout <= 0:
            raise ConfigurationError("timeout must be positive")
        self.max_in_flight_per_url = max_in_flight_per_url
        self.quarantine_after = quarantine_after
        self.cooldown = cooldown
        self.max_references = max_references
        self.long_side = long_side
        self.defaults: dict[str, Any] = {
            "seed": seed,
            "true_cfg_scale": true_cfg_scale,
            "negative_prompt": negative_prompt,
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "num_images_per_prompt": num_images_per_prompt,
        }
        """Request fields sent with every render (SPEC's defaults unless overridden)."""
        self._timeout = timeout
        self._health_timeout = aiohttp.ClientTimeout(total=health_timeout)
        self._sized: EndpointPool | None = None
        self._size_lock = anyio.Lock()

    def __repr__(self) -> str:
        urls = ", ".join(redact_url(u) for u in self.urls)
        return f"QwenServiceRenderer(urls=[{urls}])"

    @property
    def pool(self) -> EndpointPool:
        """The runtime's endpoint pool for these URLs (capacities set after first use)."""
        return self.runtime.endpoint_pool(
            SERVICE,
            self.urls,
            capacity=self.max_in_flight_per_url or 1,
            quarantine_after=self.quarantine_after,
            cooldown=self.cooldown,
            probe=self._probe,
        )

    async def render(
        self,
        prompt: str,
        reference_paths: Sequence[PathLike],
        *,
        seed: int | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> Image.Image:
        """Render ``prompt`` from the references on the least-loaded service.

        Args:
            prompt: The edit instruction (references named by ordinal phrases).
            reference_paths: Reference image files, first one first; at least
                one, at most ``max_references`` are sent.
            seed: Overrides the default seed.
            width: Output width; unset, it follows SPEC's rule from the first reference.
            height: Output height; likewise.

        Returns:
            The decoded PNG the service answered.

        Raises:
            ReferenceRequiredError: No reference path was given.
            ConfigurationError: A reference file cannot be read as an image.
            BadResponseError: A 4xx, ``success: false``, or an unusable answer.
            ServiceUnavailableError: Every try failed (5xx, timeouts, all quarantined).
            RateLimitedError: The services kept answering 429.
        """
        runtime = self.runtime
        paths = [os.fspath(p) for p in reference_paths]
        if not paths:
            raise ReferenceRequiredError(
                "Qwen-Image-Edit needs at least one reference image; got none "
                "(render reference-free requests with a backend such as 'nano-banana-pro')"
            )
        if len(paths) > self.max_references:
            logger.debug("sending the first %d of %d references", self.max_references, len(paths))
            paths = paths[: self.max_references]
        # Reading files and base64-encoding megabytes must not stall other agents.
        data_uris, first_size = await anyio.to_thread.run_sync(_load_references, paths)
        out_w, out_h = resolve_size(first_size, width, height, long_side=self.long_side)
        body: dict[str, Any] = {"image_urls": data_uris, "prompt": prompt, **self.defaults}
        if seed is not None:
            body["seed"] = seed
        body["width"], body["height"] = out_w, out_h
        encoded = await anyio.to_thread.run_sync(_json.dumps_bytes, body)
        del body, data_uris
        pool = await self._sized_pool()
        unsuccessful = 0

        async def send(attempt: Attempt) -> tuple[str, str]:
            nonlocal unsuccessful
            assert attempt.endpoint is not None
            url = attempt.endpoint.url
            data = await attempt.post_json(url + "/generate", encoded, timeout=self._timeout)
            try:
                return _image_field(data, url), url
            except _Unsuccessful as exc:
                # The original client tried a failed render up to three times,
                # round-robin: a render a GPU fumbled may work on another one.
                unsuccessful += 1
                if unsuccessful >= _UNSUCCESSFUL_TRIES:
                    raise BadResponseError(str(exc), service=SERVICE) from exc
                raise

        answer = await call_provider(runtime, _PROVIDER, send, pool=pool)
        return await anyio.to_thread.run_sync(_decode_png, answer)

    # -- endpoint sizing and health ------------------------------------------

    async def _sized_pool(self) -> EndpointPool:
        pool = self.pool
        if self._sized is pool:
            return pool
        async with self._size_lock:
            if self._sized is not pool:
                if self.max_in_flight_per_url is None:
                    # One round of /health calls, all URLs at once, before the first lease.
                    async with anyio.create_task_group() as tg:
                        for endpoint in pool.endpoints:
                            tg.start_soon(self._size_endpoint, pool, endpoint)
                self._sized = pool
        return pool

    async def _size_endpoint(self, pool: EndpointPool, endpoint: Endpoint) -> None:
        gpus = await self._health(endpoint)
        if gpus is _NO_HEALTH:
            # A service without /health (the published ones may lack it): no cap,
            # so the caller's parallelism spreads round-robin over the URLs.
            pool.set_capacity(endpoint, None)
            return
        if gpus is None:
            logger.warning(
                "%s: /health of %s failed; leaving it uncapped, one step from quarantine",
                SERVICE,
                redact_url(endpoint.url),
            )
            pool.set_capacity(endpoint, None)
            pool.report(endpoint, ok=False)  # probably down: one step toward quarantine
            return
        pool.set_capacity(endpoint, gpus)

    async def _health(self, endpoint: Endpoint) -> int | None:
        """The GPU count ``/health`` reports (1 if none); ``_NO_HEALTH`` when the
        service has no ``/health``; ``None`` when it is unhealthy or unreachable."""
        try:
            async with self.runtime.http.get(
                endpoint.url + "/health", timeout=self._health_timeout
            ) as resp:
                raw = await read_body(resp, _MAX_HEALTH)
                if resp.status in (404, 405, 501):
                    return _NO_HEALTH
                if resp.status != 200:
                    return None
            payload = _json.loads(raw)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return None
        if not isinstance(payload, dict):
            return 1
        status = payload.get("status")
        if isinstance(status, str) and status.lower() not in _HEALTHY:
            return None
        return _gpu_count(payload)

    async def _probe(self, endpoint: Endpoint) -> bool:
        """The pool's probe: healthy again? Also refreshes an automatic cap."""
        gpus = await self._health(endpoint)
        if gpus is None:
            return False
        if self.max_in_flight_per_url is None:
            self.pool.set_capacity(endpoint, None if gpus is _NO_HEALTH else gpus)
        return True


_HEALTHY = frozenset({"ok", "healthy", "ready", "up", "serving"})
_NO_HEALTH = 0
"""What :meth:`QwenServiceRenderer._health` says of a service without ``/health``."""
_MAX_HEALTH = 64 * 1024


class _Unsuccessful(RetryElsewhere):
    """``success: false``: tried again on another service, a few times."""


def _gpu_count(health: dict[str, Any]) -> int:
    """The GPU count in a ``/health`` payload; 1 when it reports none.

    Accepts ``num_gpus``, ``gpu_count`` or ``gpus`` as a number or list, and
    a ``devices`` list.

    Args:
        health: The decoded ``/health`` answer.

    Returns:
        The number of GPUs, at least 1.
    """
    for key in ("num_gpus", "gpu_count", "gpus", "devices"):
        value = health.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) and value >= 1:
            return int(value)
        if isinstance(value, list) and value:
            return len(value)
    return 1


def _normalize_urls(urls: str | Sequence[str]) -> list[str]:
    given = [urls] if isinstance(urls, str) else list(urls)
    out: list[str] = []
    for raw in given:
        url = raw.strip().rstrip("/")
        if not url:
            continue
        if url.endswith("/generate"):
            url = url[: -len("/generate")]
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"Qwen service URL must be http(s): {redact_url(url)}")
        out.append(url)
    if not out:
        raise ConfigurationError("the Qwen-Image-Edit service renderer needs at least one URL")
    return out


def _load_reference(path: str) -> tuple[str, tuple[int, int]]:
    """A data URI of the file as is, and its upright size (blocking)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        with open_image(data) as image:
            mime = Image.MIME.get(image.format or "", "image/png")
            width, height = image.size
            if image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED:
                # The service applies EXIF orientation; size the output like it sees it.
                width, height = height, width
    except (OSError, ImageDecodeError) as exc:
        raise ConfigurationError(f"reference image {path!r} cannot be read: {exc}") from exc
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", (width, height)


def _load_references(paths: list[str]) -> tuple[list[str], tuple[int, int]]:
    loaded = [_load_reference(p) for p in paths]
    return [uri for uri, _ in loaded], loaded[0][1]


def _image_field(data: Any, url: str) -> str:
    """The base64 image of a ``/generate`` answer, or the classified error."""
    where = f"{SERVICE} {redact_url(url)}"
    if not isinstance(data, dict):
        raise BadResponseError(f"{where} answered a JSON {type(data).__name__}", service=SERVICE)
    if data.get("success") is False:
        message = str(data.get("message") or data.get("error") or "no message")[:500]
        raise _Unsuccessful(f"{where} failed to render: {message}", service=SERVICE)
    image = data.get("image") or data.get("image_base64")
    if not isinstance(image, str) or not image:
        raise BadResponseError(f"{where} answered without an image", service=SERVICE)
    return image


def _decode_png(answer: tuple[str, str]) -> Image.Image:
    encoded, url = answer
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]
    try:
        with open_image(base64.b64decode(encoded, validate=False)) as opened:
            opened.load()
            image = opened.copy()
            image.format = opened.format  # a copy forgets it
    except (binascii.Error, ImageDecodeError) as exc:
        raise BadResponseError(
            f"{SERVICE} {redact_url(url)} answered an image that does not decode: {exc}",
            service=SERVICE,
        ) from exc
    return image
