"""The process-wide service behind the routes: one runtime, one agent, one renderer.

:meth:`WebService.open` builds everything once, in the app's lifespan; each
request then only makes a :class:`Job` (its prompt and per-request options)
and runs it. Nothing here is per request except the rollout itself, so
connection pools, limiters and the image cache are shared by every request.
"""

from __future__ import annotations

import base64
import functools
import io
import itertools
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from PIL import Image

from genevolve_async import (
    AgentResult,
    Finished,
    GenEvolveAgent,
    GenEvolveError,
    Program,
    Runtime,
)
from genevolve_async.renderers import ClosableRenderer, make_renderer, render_program
from genevolve_async.tools import (
    ImageCacheSettings,
    ImageSearch,
    QueryKnowledge,
    SerperBackend,
    Tool,
    WebSearch,
)

from ._admission import Admission, error_body
from ._asgi import PING, Write, sse_frame
from ._payloads import Redactor, event_payload, program_payload, summary_payload
from ._sim import simulated_backends
from .settings import WebSettings

__all__ = ["ImageStore", "Job", "Outcome", "RuntimeFactory", "StoredImage", "WebService"]

logger = logging.getLogger("examples.webapp")

RuntimeFactory = Callable[[WebSettings], Runtime]
"""Builds the app's one runtime from its settings (tests pass their own)."""

Outcome = tuple[int, dict[str, Any]]
"""An HTTP status and the JSON body that goes with it."""


def default_runtime(settings: WebSettings) -> Runtime:
    """The runtime a deployment gets: one pool of ``max_connections`` connections."""
    return Runtime(max_connections=settings.max_connections)


@dataclass(kw_only=True, slots=True, frozen=True)
class Job:
    """One request's rollout: the prompt and its per-request options."""

    id: str
    """Request id; also the rollout id, so logs and events line up."""
    prompt: str
    seed: int | None
    max_rounds: int
    timeout: float
    """Seconds for the rollout and its render together."""
    render: bool = False


@dataclass(kw_only=True, slots=True, frozen=True)
class StoredImage:
    """A rendered image kept for ``GET /v1/images/{id}``."""

    png: bytes
    width: int
    height: int


class ImageStore:
    """The last ``capacity`` rendered images, in memory, under unguessable ids."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._images: OrderedDict[str, StoredImage] = OrderedDict()

    def add(self, image: StoredImage) -> str:
        image_id = secrets.token_urlsafe(16)
        self._images[image_id] = image
        while len(self._images) > self.capacity:
            self._images.popitem(last=False)
        return image_id

    def get(self, image_id: str) -> StoredImage | None:
        return self._images.get(image_id)


def _encode_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _tools(settings: WebSettings) -> list[Tool]:
    backend = SerperBackend(base_url=settings.serper_url, api_key=settings.serper_api_key)
    # None (not False) leaves GENEVOLVE_ALLOW_PRIVATE_HOSTS in charge when unset here.
    cache = ImageCacheSettings(
        folder=settings.image_dir, allow_private=True if settings.allow_private_hosts else None
    )
    return [WebSearch(backend), ImageSearch(backend, cache=cache), QueryKnowledge()]


class WebService:
    """Runs jobs on the shared agent and renderer; see :meth:`open`.

    Attributes:
        settings: The settings in force (sim URLs filled in under ``sim``).
        runtime: The one runtime every request shares.
        agent: The one agent; per-request options go to each call.
        renderer: The renderer, or ``None`` when none is configured.
        admission: The rollout cap.
        images: Rendered images for ``GET /v1/images/{id}``.
        active: Jobs running now, by id (health checks and tests read it).
    """

    def __init__(
        self,
        settings: WebSettings,
        *,
        runtime: Runtime,
        agent: GenEvolveAgent,
        renderer: ClosableRenderer | None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.agent = agent
        self.renderer = renderer
        self.admission = Admission(
            settings.max_concurrent_rollouts,
            wait=settings.queue_wait,
            max_waiting=settings.max_queued,
            retry_after=settings.retry_after,
        )
        self.images = ImageStore(settings.stored_images)
        self.redact = Redactor(settings.secrets)
        self.active: dict[str, str] = {}

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: WebSettings, runtime_factory: RuntimeFactory = default_runtime
    ) -> AsyncIterator[WebService]:
        """Open the runtime (and the sims, under ``settings.sim``); close all on exit."""
        async with AsyncExitStack() as stack:
            if settings.sim:
                settings = await stack.enter_async_context(simulated_backends(settings))
            runtime = await stack.enter_async_context(runtime_factory(settings))
            renderer: ClosableRenderer | None = None
            if settings.renderer_name is not None:
                urls = settings.qwen_urls if settings.renderer_name.startswith("qwen") else ()
                renderer = make_renderer(settings.renderer_name, runtime=runtime, service_urls=urls)
                await stack.enter_async_context(renderer)
            agent = GenEvolveAgent(
                runtime=runtime,
                base_url=list(settings.policy_urls),
                api_key=settings.policy_api_key,
                model=settings.model,
                max_rounds=settings.max_rounds,
                tools=_tools(settings),
            )
            yield cls(settings, runtime=runtime, agent=agent, renderer=renderer)

    # -- jobs ----------------------------------------------------------------

    async def program(self, job: Job) -> Outcome:
        """Run the rollout; the program and summary, or why there is none."""
        with self._track(job, "program"):
            result = await self.agent.arun(
                job.prompt,
                seed=job.seed,
                max_rounds=job.max_rounds,
                timeout=job.timeout,
                rollout_id=job.id,
            )
            return self._rollout_outcome(job, result)

    async def image(self, job: Job) -> Outcome:
        """Run the rollout, then render within the same deadline; the image inline."""
        deadline = anyio.current_time() + job.timeout
        with self._track(job, "image"):
            result = await self.agent.arun(
                job.prompt,
                seed=job.seed,
                max_rounds=job.max_rounds,
                timeout=job.timeout,
                rollout_id=job.id,
            )
            status, body = self._rollout_outcome(job, result)
            if status != 200:
                return status, body
            return await self._render(job, result, body, deadline, inline=True)

    async def stream(self, job: Job, write: Write) -> None:
        """Run the job, writing its events as server-sent events; ``result`` comes last."""
        deadline = anyio.current_time() + job.timeout
        ids = itertools.count(1)

        async def emit(kind: str, data: Mapping[str, Any]) -> None:
            await write(sse_frame(kind, data, event_id=next(ids)))

        with self._track(job, "stream"):
            result = await self._stream_rollout(job, write, emit)
            status, body = self._rollout_outcome(job, result)
            if status == 200 and job.render:
                await emit("render_started", {})
                rendering = functools.partial(self._render, job, result, body, deadline)
                status, body = await self._with_pings(rendering, write)
                if body.get("image") is not None:
                    await emit("image", body["image"])
            if body.get("error") is not None:
                await emit("error", body["error"])
            await emit("result", {"status": status, **body})

    async def _stream_rollout(
        self, job: Job, write: Write, emit: Callable[[str, Mapping[str, Any]], Awaitable[None]]
    ) -> AgentResult:
        result: AgentResult | None = None
        # The rollout runs inside this block, in this task: cancelling the
        # response (the client left) leaves the block and so cancels it.
        async with self.agent.stream(
            job.prompt,
            seed=job.seed,
            max_rounds=job.max_rounds,
            timeout=job.timeout,
            rollout_id=job.id,
        ) as events:
            while True:
                with anyio.move_on_after(self.settings.ping_interval) as quiet:
                    try:
                        event = await events.receive()
                    except anyio.EndOfStream:
                        break
                if quiet.cancelled_caught:
                    await write(PING)
                    continue
                await emit(event.kind, event_payload(event, self.redact))
                if isinstance(event, Finished):
                    result = event.result
        assert result is not None, "a rollout always ends with Finished"
        return result

    # -- pieces --------------------------------------------------------------

    @contextmanager
    def _track(self, job: Job, what: str) -> Iterator[None]:
        self.active[job.id] = what
        started = anyio.current_time()
        outcome = "cancelled"
        try:
            yield
            outcome = "done"
        finally:
            del self.active[job.id]
            # The prompt may be personal: log its size, never its text.
            logger.info(
                "job %s %s %s after %.2fs (prompt: %d chars)",
                job.id, what, outcome, anyio.current_time() - started, len(job.prompt),
            )  # fmt: skip

    def _rollout_outcome(self, job: Job, result: AgentResult) -> Outcome:
        body: dict[str, Any] = {
            "id": job.id,
            "termination": result.termination,
            "program": program_payload(result),
            "summary": summary_payload(result, self.redact),
            "error": None,
        }
        if result.termination == "timeout":
            message = f"the request's {job.timeout:g}s deadline passed before the rollout finished"
            return 504, {**body, "error": error_body("timeout", message)["error"]}
        if result.termination == "error":
            kind = result.error.kind if result.error is not None else "internal"
            message = self.redact(result.error.message) if result.error is not None else "failed"
            status = 422 if kind == "invalid_request" else 500 if kind == "internal" else 502
            return status, {**body, "error": error_body(kind, message)["error"]}
        # answer, or a rollout that ran out of rounds: 200 (program null in the latter)
        return 200, body

    async def _render(
        self,
        job: Job,
        result: AgentResult,
        body: dict[str, Any],
        deadline: float,
        *,
        inline: bool = False,
    ) -> Outcome:
        """Render the program (or, per SPEC's fallback, the request) before ``deadline``."""
        if self.renderer is None:
            return 503, {**body, "image": None,
                         "error": error_body("no_renderer", "this server has no renderer")["error"]}  # fmt: skip
        # No program (the rollout ran out of rounds): an empty one makes
        # render_program fall back to the request itself.
        source: Program | dict[str, Any] = result.program or {}
        png: bytes | None = None
        try:
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                image = await render_program(
                    self.renderer, source, request=job.prompt, seed=job.seed
                )
                png = await anyio.to_thread.run_sync(_encode_png, image)
        except GenEvolveError as exc:
            error = error_body("render_failed", self.redact(str(exc)))["error"]
            return 502, {**body, "image": None, "error": error}
        except Exception:
            # A bug, not a backend failure: the log gets the traceback, the client no detail.
            logger.exception("job %s: rendering failed unexpectedly", job.id)
            error = error_body("internal", "rendering failed unexpectedly")["error"]
            return 500, {**body, "image": None, "error": error}
        if png is None:  # the deadline's scope cut the render short
            message = f"the request's {job.timeout:g}s deadline passed while rendering"
            return 504, {**body, "image": None, "error": error_body("timeout", message)["error"]}
        stored = StoredImage(png=png, width=image.width, height=image.height)
        image_id = self.images.add(stored)
        payload: dict[str, Any] = {
            "id": image_id,
            "url": f"/v1/images/{image_id}",
            "media_type": "image/png",
            "width": stored.width,
            "height": stored.height,
        }
        if inline:
            payload["data_base64"] = base64.b64encode(png).decode("ascii")
        return 200, {**body, "image": payload}

    async def _with_pings(self, work: Callable[[], Awaitable[Outcome]], write: Write) -> Outcome:
        """Run ``work`` while keeping the stream alive with a ping per quiet interval."""
        done = anyio.Event()
        box: list[Outcome] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                box.append(await work())
                done.set()

            tg.start_soon(run)
            while not done.is_set():
                with anyio.move_on_after(self.settings.ping_interval):
                    await done.wait()
                if not done.is_set():
                    await write(PING)
        return box[0]

    def statistics(self) -> dict[str, Any]:
        """Slots, waiting requests and jobs in flight, for ``GET /healthz``."""
        stats = self.admission.statistics()
        return {"capacity": stats.capacity, "running": stats.running, "waiting": stats.waiting,
                "active_jobs": len(self.active)}  # fmt: skip
