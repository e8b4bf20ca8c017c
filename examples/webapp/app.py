"""A FastAPI app serving GenEvolve rollouts: JSON endpoints, an event stream and a page.

Run it (from the repository root) with::

    GENEVOLVE_WEB_SIM=1 python -m examples.webapp

(``uvicorn examples.webapp.app:app`` also works, without the connection and
header limits of :data:`SERVER_LIMITS`.)

The pattern to copy: everything process-wide (the runtime with its
connection pool, limiters and image cache; the agent; the renderer) is
built once in the lifespan; each request only makes a :class:`Job` and runs
it inside its own task, under the rollout cap, and cancelled if the client
goes away.

Routes:
    ``GET /``: the page. ``GET /healthz``: slots and jobs in flight.
    ``POST /v1/programs``: the program and a trajectory summary (JSON).
    ``POST /v1/images``: the same plus the rendered image (base64 PNG).
    ``POST /v1/stream``: the rollout's events as server-sent events, then the image.
    ``GET /v1/images/{id}``: a rendered image, while it is kept.
    ``GET /metrics``: Prometheus metrics (jobs, latency, 429s, errors, queue depth).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from genevolve_async import __version__
from genevolve_async.serve.limits import BodyReadTimeout, ServerLimits

from ._admission import Overloaded, error_body, overloaded_response
from ._asgi import BodyLimit, EventStream, cancelled_on_disconnect
from ._metrics import MetricsMiddleware, WebMetrics
from ._payloads import ProgramRequest, StreamRequest
from ._service import Job, Outcome, RuntimeFactory, WebService, default_runtime
from .settings import WebSettings

__all__ = ["InvalidRequest", "app", "create_app"]

logger = logging.getLogger("examples.webapp")

STATIC = Path(__file__).with_name("static")
SERVER_LIMITS = ServerLimits()
"""Slow-client limits: ``python -m examples.webapp`` passes them to uvicorn."""

# The page loads only its own script and style; images come from this app
# (or inline). Inline script is refused, so injected markup cannot run.
_PAGE_POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"

_CLIENT_CLOSED = 499
"""Status logged for a request whose client left (nobody reads the answer)."""


class InvalidRequest(Exception):
    """A parsed body that breaks a limit of the app's settings (answered with 422).

    Args:
        problems: ``(field, message)`` pairs.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


def _invalid_response(problems: list[tuple[str, str]]) -> JSONResponse:
    body = error_body("invalid_request", "; ".join(f"{f}: {m}" for f, m in problems))
    body["error"]["fields"] = [{"field": f, "message": m} for f, m in problems]  # type: ignore[assignment]
    return JSONResponse(body, status_code=422)


def _pydantic_problem(error: dict[str, Any]) -> tuple[str, str]:
    # Never the offending input: it may be a megabyte-long prompt.
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    name = ".".join(loc) or "body"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return name, "is not a known field"
    if kind == "missing":
        return name, "is required"
    if kind == "json_invalid":
        return "body", "is not valid JSON"
    return name, str(error.get("msg", "is invalid"))


def get_service(request: Request) -> WebService:
    """The process's :class:`WebService`, opened by the lifespan."""
    service: WebService = request.app.state.service
    return service


Service = Annotated[WebService, Depends(get_service)]


def make_job(service: WebService, body: ProgramRequest, *, render: bool = False) -> Job:
    """Check ``body`` against the settings' limits and fill in the defaults.

    Raises:
        InvalidRequest: an empty or too long prompt, or options past the limits.
    """
    limits = service.settings
    problems: list[tuple[str, str]] = []
    if not body.prompt.strip():
        problems.append(("prompt", "must not be empty"))
    elif len(body.prompt) > limits.max_prompt_chars:
        problems.append(
            ("prompt", f"is {len(body.prompt)} characters; the limit is {limits.max_prompt_chars}")
        )
    if body.timeout is not None and body.timeout > limits.max_timeout:
        problems.append(("timeout", f"must be at most {limits.max_timeout:g} seconds"))
    if body.max_rounds is not None and body.max_rounds > limits.max_rounds:
        problems.append(("max_rounds", f"must be at most {limits.max_rounds}"))
    if problems:
        raise InvalidRequest(problems)
    return Job(
        id=uuid.uuid4().hex[:16],
        prompt=body.prompt,
        seed=body.seed,
        max_rounds=body.max_rounds or limits.max_rounds,
        timeout=body.timeout or limits.default_timeout,
        render=render,
    )


router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The demo page."""
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": _PAGE_POLICY})


@router.get("/healthz")
async def health(service: Service) -> dict[str, Any]:
    """Liveness plus the rollout cap's state."""
    return {"status": "ok", **service.statistics()}


async def _run_guarded(request: Request, service: WebService, job: Job, *, image: bool) -> Response:
    """Run a JSON job under the rollout cap, cancelled if the client leaves."""
    outcome: Outcome | None = None
    # The watch wraps the wait for a slot too: a client that gives up while
    # queued leaves the line at once.
    async with cancelled_on_disconnect(request.receive) as watch, service.admission.slot():
        outcome = await (service.image(job) if image else service.program(job))
    if watch.disconnected or outcome is None:
        logger.info("job %s: the client left; rollout cancelled", job.id)
        return Response(status_code=_CLIENT_CLOSED)
    status, body = outcome
    return JSONResponse(body, status_code=status)


@router.post("/v1/programs")
async def create_program(body: ProgramRequest, request: Request, service: Service) -> Response:
    """Run a rollout; answer with the program and a trajectory summary.

    200 with the program (``null`` when the rollout ran out of rounds), 504
    when the deadline passed, 502 when a backend failed, 429 past the cap.
    """
    return await _run_guarded(request, service, make_job(service, body), image=False)


@router.post("/v1/images")
async def create_image(body: ProgramRequest, request: Request, service: Service) -> Response:
    """Run a rollout and render its program; the PNG comes inline (base64) and by URL."""
    return await _run_guarded(request, service, make_job(service, body, render=True), image=True)


@router.post("/v1/stream")
async def stream(body: StreamRequest, service: Service) -> Response:
    """The rollout's events as server-sent events; the last one is ``result``.

    Events: ``round_started``, ``model_replied``, ``tool_call_started``,
    ``tool_call_finished``, ``answered``, ``finished`` (the agent's), then
    ``render_started`` and ``image`` (or ``error``), then ``result``.
    """
    job = make_job(service, body, render=body.render)
    return EventStream(lambda write: service.stream(job, write), gate=service.admission.slot)


@router.get("/v1/images/{image_id}", response_model=None)
async def get_image(image_id: str, service: Service) -> Response:
    """A rendered image, while the app still keeps it."""
    image = service.images.get(image_id)
    if image is None:
        return JSONResponse(error_body("not_found", "no such image (it may have expired)"), 404)
    return Response(image.png, media_type="image/png", headers={"Cache-Control": "private"})


def _install_error_handlers(app: FastAPI) -> None:
    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidRequest)
        return _invalid_response(exc.problems)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _invalid_response([_pydantic_problem(dict(e)) for e in exc.errors()])

    async def on_overloaded(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Overloaded)
        return overloaded_response(exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse(
            error_body("http_error", str(exc.detail)), exc.status_code, headers=exc.headers
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # The traceback goes to the log; the client gets no detail (it could
        # name files on this server).
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal", "internal server error"), 500)

    app.add_exception_handler(InvalidRequest, on_invalid)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Overloaded, on_overloaded)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _statistics(app: FastAPI) -> dict[str, Any] | None:
    service: WebService | None = getattr(app.state, "service", None)
    return service.statistics() if service is not None else None


def create_app(
    settings: WebSettings | None = None, *, runtime_factory: RuntimeFactory = default_runtime
) -> FastAPI:
    """Build the app. Nothing is opened until the server runs its lifespan.

    Args:
        settings: The settings; ``None`` reads ``GENEVOLVE_WEB_*`` variables.
        runtime_factory: Builds the one :class:`~genevolve_async.Runtime`
            (tests pass one with fast retries).

    Returns:
        The FastAPI app; ``app.state.service`` is the :class:`WebService`
        while the lifespan runs.
    """
    config = settings if settings is not None else WebSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One runtime, agent and renderer for the process, closed on shutdown.
        async with WebService.open(config, runtime_factory) as service:
            app.state.service = service
            logger.info(
                "serving: %d policy replica(s), renderer %s, %d rollout slots",
                len(service.settings.policy_urls),
                service.settings.renderer_name or "none",
                service.settings.max_concurrent_rollouts,
            )
            try:
                yield
            finally:
                del app.state.service

    app = FastAPI(title="GenEvolve web demo", version=__version__, lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=config.body_limit)
    # A client that trickles its body holds a connection; give it a deadline.
    app.add_middleware(BodyReadTimeout, seconds=SERVER_LIMITS.body_timeout)
    # Outside the body limit, so its 413s are counted too.
    metrics = WebMetrics(lambda: _statistics(app))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_api_route("/metrics", metrics.endpoint, methods=["GET"], include_in_schema=False)
    app.state.metrics = metrics
    _install_error_handlers(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


app = create_app()
"""The app ``uvicorn examples.webapp.app:app`` serves, configured from the environment."""
