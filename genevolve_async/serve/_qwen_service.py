"""The Qwen-Image-Edit service core: device pool, admission and job scheduling.

One pipeline per device. A request is admitted (or refused with 503 when
`max_queue` requests already wait), its references are decoded, and its job is
handed to the first free device: an `anyio.Semaphore` counts free devices
(FIFO and cancellation-safe, so no slot leaks when a waiter is cancelled) and a
deque holds which ones are free. Jobs run as tasks of the app's task group, so
a request that times out (504) leaves its job holding the device until the
pipeline call really returns: a pipeline never runs two jobs at once.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._runtime import Runtime
from ..renderers._sizing import resolve_size
from ..renderers.diffusers import load_pipeline, run_pipeline
from ..tools._address import AddressPolicy
from ._references import BadReference, ReferenceFetcher, load_references

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["GenerateRequest", "QwenService", "Reply", "ServiceSettings", "error_reply"]

logger = logging.getLogger("genevolve_async.serve.qwen")


@dataclass(kw_only=True, slots=True, frozen=True)
class ServiceSettings:
    """Limits and identity of one service instance."""

    model: str
    """Model id or path reported by `/health` (and loaded when no pipelines are given)."""
    max_queue: int = 16
    """Requests allowed to wait for a device beyond the free ones; more get 503."""
    job_timeout: float = 1800.0
    """Seconds from decoded references to finished image (queue wait included); then 504."""
    max_references: int = 4
    """Most references one request may send."""
    max_body_bytes: int = 64 << 20
    """Largest request body, and largest fetched reference."""
    shutdown_grace: float = 30.0
    """Seconds running jobs get to finish at shutdown."""
    fetch_timeout: float = 30.0
    """Seconds allowed per http(s) reference download."""
    fetch_http_references: bool = False
    """Fetch http(s) references (off: data URIs only, as the published clients send)."""
    allowed_reference_networks: tuple[str, ...] = ()
    """Private networks fetched references may come from (CIDRs; ``0.0.0.0/0``
    and ``::/0`` allow every address). Public addresses are always allowed."""
    retry_after: int = 5
    """Seconds suggested to clients in 503 answers."""


class GenerateRequest(BaseModel):
    """Body of `POST /generate` (unknown fields are ignored, as the published servers do)."""

    model_config = ConfigDict(extra="ignore")

    image_urls: list[str] = Field(default_factory=list)
    prompt: str
    # torch.Generator.manual_seed takes 64 bits; a larger seed is the
    # client's error (400), not a failed render.
    seed: int | None = Field(0, ge=-(2**63), le=2**64 - 1)
    true_cfg_scale: float = 4.0
    negative_prompt: str = " "
    num_inference_steps: int = Field(40, ge=1, le=1000)
    guidance_scale: float = 1.0
    num_images_per_prompt: int = Field(1, ge=1, le=1)
    width: int | None = Field(None, ge=16, le=8192)
    height: int | None = Field(None, ge=16, le=8192)


@dataclass(kw_only=True, slots=True, frozen=True)
class Reply:
    """An HTTP answer: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class _Device:
    name: str
    pipeline: Any


@dataclass(kw_only=True, slots=True)
class _Ticket:
    """One admitted request; `queued` while it does not hold a device."""

    queued: bool = True


@dataclass(kw_only=True, slots=True, eq=False)  # identity hash: jobs live in a set
class _Job:
    request: GenerateRequest
    images: list[Image.Image]
    width: int
    height: int
    ticket: _Ticket
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    started: bool = False
    reply: Reply | None = None


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """A JSON error answer in the published servers' shape."""
    return Reply(status=status, body={"success": False, "message": message}, headers=headers or {})


def _encode_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _validation_message(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
    return "invalid request: " + "; ".join(parts)


class QwenService:
    """Device pool and job scheduler behind the HTTP routes.

    Args:
        settings: Limits and identity.
        pipelines: `(device, pipeline)` pairs; `None` loads `settings.model` on
            each of `devices` when the service starts.
        devices: Devices to load on when `pipelines` is `None`.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        pipelines: Sequence[tuple[str, Any]] | None,
        devices: Sequence[str],
    ) -> None:
        if pipelines is not None and not pipelines:
            raise ValueError("pipelines must name at least one (device, pipeline) pair")
        if pipelines is None and not devices:
            raise ValueError("devices must name at least one device")
        self.settings = settings
        self._given = [_Device(name=n, pipeline=p) for n, p in pipelines] if pipelines else None
        self._device_names = [n for n, _ in pipelines] if pipelines else list(devices)
        self._free: deque[_Device] = deque()
        self._slots = anyio.Semaphore(0)
        self._tg: anyio.abc.TaskGroup | None = None
        self._fetcher: ReferenceFetcher | None = None
        self._accepting = False
        self._queued = 0
        self._jobs: set[_Job] = set()
        self._running = 0
        self._idle: anyio.Event | None = None

    # -- lifecycle ---------------------------------------------------------

    async def _load(self) -> list[_Device]:
        if self._given is not None:
            return self._given
        loaded = []
        # One at a time: each load streams gigabytes through host memory.
        for name in self._device_names:
            pipeline = await anyio.to_thread.run_sync(
                partial(load_pipeline, self.settings.model, device=name)
            )
            loaded.append(_Device(name=name, pipeline=pipeline))
        return loaded

    @asynccontextmanager
    async def _references(self) -> AsyncIterator[ReferenceFetcher | None]:
        """The reference fetcher (on a Runtime of our own), or ``None`` when fetching is off."""
        settings = self.settings
        if not settings.fetch_http_references:
            yield None
            return
        async with Runtime() as runtime:
            yield ReferenceFetcher(
                runtime=runtime,
                policy=AddressPolicy.build(
                    allow_private=False, networks=settings.allowed_reference_networks
                ),
                max_bytes=settings.max_body_bytes,
                timeout=settings.fetch_timeout,
            )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Load pipelines, serve while inside, then shut down gracefully.

        On exit the service refuses new requests (503), fails queued ones, gives
        running jobs `shutdown_grace` seconds, then abandons what is left.
        """
        devices = await self._load()
        self._free = deque(devices)
        self._slots = anyio.Semaphore(len(devices))
        async with self._references() as fetcher, anyio.create_task_group() as tg:
            self._fetcher, self._tg, self._accepting = fetcher, tg, True
            try:
                yield
            finally:
                self._accepting = False
                for job in list(self._jobs):
                    if not job.started:
                        job.scope.cancel()
                with anyio.move_on_after(self.settings.shutdown_grace, shield=True):
                    while self._running:
                        self._idle = anyio.Event()
                        await self._idle.wait()
                tg.cancel_scope.cancel()
                self._tg = self._session = None

    def health(self) -> dict[str, Any]:
        """The `/health` body."""
        busy = len(self._device_names) - len(self._free) if self._tg is not None else 0
        return {
            "status": "ok" if self._accepting else "unavailable",
            "num_gpus": len(self._device_names),
            "devices": list(self._device_names),
            "busy": busy,
            "queued": self._queued,
            "max_queue": self.settings.max_queue,
            "model": self.settings.model,
        }

    def device_states(self) -> dict[str, bool]:
        """Whether each device is running a job now (for ``/metrics``)."""
        free = {d.name for d in self._free}
        serving = self._tg is not None
        return {name: serving and name not in free for name in self._device_names}

    # -- requests ----------------------------------------------------------

    def _unavailable(self, message: str) -> Reply:
        return error_reply(503, message, {"Retry-After": str(self.settings.retry_after)})

    def _admit(self) -> _Ticket | Reply:
        if not self._accepting or self._tg is None:
            return self._unavailable(
                "service is not accepting requests (starting or shutting down)"
            )
        if self._queued - len(self._free) >= self.settings.max_queue:
            return self._unavailable(
                f"all {len(self._device_names)} devices busy and "
                f"{self.settings.max_queue} requests queued"
            )
        self._queued += 1
        return _Ticket()

    def _leave_queue(self, ticket: _Ticket) -> None:
        if ticket.queued:
            ticket.queued = False
            self._queued -= 1

    async def generate(self, body: bytes) -> Reply:
        """Handle one `/generate` body.

        Args:
            body: Raw JSON request body.

        Returns:
            The reply: 200 (success true or false), 400, 503 or 504.
        """
        try:
            request = GenerateRequest.model_validate_json(body)
        except ValidationError as exc:
            return error_reply(400, _validation_message(exc))
        count, limit = len(request.image_urls), self.settings.max_references
        if count == 0:
            return error_reply(400, "Qwen-Image-Edit needs at least one reference in image_urls")
        if count > limit:
            return error_reply(400, f"too many references: {count} sent, at most {limit} accepted")
        ticket = self._admit()
        if isinstance(ticket, Reply):
            return ticket
        try:
            return await self._decode_and_run(request, ticket)
        finally:
            self._leave_queue(ticket)

    async def _decode_and_run(self, request: GenerateRequest, ticket: _Ticket) -> Reply:
        try:
            images = await load_references(request.image_urls, fetcher=self._fetcher)
            width, height = resolve_size(images[0].size, request.width, request.height)
        except (BadReference, ValueError) as exc:
            return error_reply(400, str(exc))
        if not self._accepting or self._tg is None:
            return self._unavailable("service is shutting down")
        job = _Job(request=request, images=images, width=width, height=height, ticket=ticket)
        self._jobs.add(job)
        self._tg.start_soon(self._run, job)
        with anyio.move_on_after(self.settings.job_timeout) as timer:
            await job.done.wait()
        if timer.cancelled_caught:
            if not job.started:
                job.scope.cancel()
            # A started job keeps its device until the pipeline returns.
            return error_reply(504, f"job did not finish within {self.settings.job_timeout:g} s")
        assert job.reply is not None  # set in _run's finally before done
        return job.reply

    async def _run(self, job: _Job) -> None:
        try:
            with job.scope:
                await self._slots.acquire()
                device = self._free.popleft()
                self._leave_queue(job.ticket)
                job.started = True
                self._running += 1
                try:
                    job.reply = await self._infer(device, job)
                finally:
                    self._running -= 1
                    self._free.append(device)
                    self._slots.release()
                    if self._idle is not None and not self._running:
                        self._idle.set()
        finally:
            self._leave_queue(job.ticket)
            self._jobs.discard(job)
            if job.reply is None:
                job.reply = self._unavailable("service shut down before the job finished")
            job.done.set()

    async def _infer(self, device: _Device, job: _Job) -> Reply:
        request = job.request
        started = time.perf_counter()
        call = partial(
            run_pipeline,
            device.pipeline,
            prompt=request.prompt,
            images=job.images,
            seed=0 if request.seed is None else request.seed,
            width=job.width,
            height=job.height,
            steps=request.num_inference_steps,
            true_cfg_scale=request.true_cfg_scale,
            guidance_scale=request.guidance_scale,
            negative_prompt=request.negative_prompt,
            generator_device=device.name,
        )
        try:
            # Cancelled only at shutdown after the grace period: then the thread is
            # abandoned rather than holding shutdown hostage.
            image = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
            encoded = await anyio.to_thread.run_sync(_encode_png, image)
        except Exception as exc:
            logger.exception("generation failed on %s", device.name)
            return Reply(
                status=200, body={"success": False, "message": f"{type(exc).__name__}: {exc}"}
            )
        return Reply(
            status=200,
            body={
                "success": True,
                "image": encoded,
                "image_base64": encoded,
                "width": image.width,
                "height": image.height,
                "device": device.name,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
