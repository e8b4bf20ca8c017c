"""FastAPI wiring for the Qwen-Image-Edit service (needs the `service` extra).

The routes only read bodies (with a size cap) and translate `Reply` objects;
scheduling lives in `_qwen_service`, which does not import fastapi.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ._qwen_metrics import ServiceMetrics
from ._qwen_service import QwenService, Reply, error_reply

__all__ = ["build_app"]


async def _read_body(request: Request, limit: int) -> bytes | Reply:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return error_reply(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        # Content-Length may be absent (chunked uploads); count what arrives.
        if len(body) > limit:
            return error_reply(413, f"request body larger than {limit} bytes")
    return bytes(body)


def _respond(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def build_app(service: QwenService) -> FastAPI:
    """Wrap `service` in a FastAPI app whose lifespan runs it.

    Args:
        service: The scheduler to serve.

    Returns:
        The app with `POST /generate`, `GET /health` and `GET /metrics` (Prometheus).
    """
    metrics = ServiceMetrics(service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service.running():
            yield

    app = FastAPI(title="genevolve-async Qwen-Image-Edit service", lifespan=lifespan)

    @app.post("/generate")
    async def generate(request: Request) -> JSONResponse:
        body = await _read_body(request, service.settings.max_body_bytes)
        reply = body if isinstance(body, Reply) else await service.generate(body)
        metrics.observe(reply)
        return _respond(reply)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return service.health()

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.state.service = service
    app.state.metrics = metrics
    return app
