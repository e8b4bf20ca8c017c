"""Our Qwen-Image-Edit HTTP service (the `service` and `local` extras).

Speaks the wire the published GenEvolve runtime's renderer expects:
`POST /generate` takes references as data URIs or http(s) URLs and answers a
base64 PNG; `GET /health` reports the devices. One pipeline per device;
requests queue (boundedly) for the first free device.

Run it with::

    python -m genevolve_async.serve.qwen --model Qwen/Qwen-Image-Edit-2511 --port 8001
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..renderers.diffusers import DEFAULT_MODEL
from .limits import BodyReadTimeout, ServerLimits

SERVER_LIMITS = ServerLimits()
"""Slow-client limits `main` gives uvicorn (connections, header bytes, keep-alive, body time)."""

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app", "main"]

_SERVICE_HINT = (
    "the Qwen-Image-Edit service needs fastapi and uvicorn: "
    "pip install 'genevolve-async[service,local]'"
)


def create_app(
    pipelines: Sequence[tuple[str, Any]] | None = None,
    *,
    model: str = DEFAULT_MODEL,
    devices: Sequence[str] | None = None,
    max_queue: int = 16,
    job_timeout: float = 1800,
    max_references: int = 4,
    max_body_bytes: int = 64 << 20,
    shutdown_grace: float = 30,
    fetch_http_references: bool = False,
    allowed_reference_networks: Sequence[str] = (),
) -> FastAPI:
    """Build the service app; its lifespan loads pipelines and drains jobs at exit.

    Args:
        pipelines: `(device name, pipeline)` pairs, one pipeline per device. `None`
            loads `model` on each of `devices` when the app starts.
        model: Model id or path to load, and the name `/health` reports.
        devices: Devices to load on when `pipelines` is `None`; `None` means every
            CUDA device, else `cpu`.
        max_queue: Requests allowed to wait for a device; beyond that, 503.
        job_timeout: Seconds a request may wait and run before a 504.
        max_references: Most references per request (more is a 400).
        max_body_bytes: Largest request body and fetched reference (413 / 400).
        shutdown_grace: Seconds running jobs get to finish at shutdown.
        fetch_http_references: Fetch http(s) references (off: data URIs only).
            Fetches pass the agent's download guard: public addresses only,
            every redirect hop checked, size and decompression limits.
        allowed_reference_networks: Private networks (CIDRs) fetches may reach.

    Returns:
        A FastAPI app; serve it with uvicorn (its lifespan must run).

    Raises:
        ImportError: If fastapi is not installed.
        ValueError: If a limit is out of range or no device is named.
    """
    try:
        from ._qwen_app import build_app
        from ._qwen_service import QwenService, ServiceSettings
    except ImportError as exc:
        raise ImportError(_SERVICE_HINT) from exc
    if max_queue < 0 or job_timeout <= 0 or max_references < 1 or max_body_bytes < 1:
        raise ValueError(
            "max_queue >= 0, job_timeout > 0, max_references >= 1, max_body_bytes >= 1"
        )
    settings = ServiceSettings(
        model=model,
        max_queue=max_queue,
        job_timeout=job_timeout,
        max_references=max_references,
        max_body_bytes=max_body_bytes,
        shutdown_grace=shutdown_grace,
        fetch_http_references=fetch_http_references,
        allowed_reference_networks=tuple(allowed_reference_networks),
    )
    if pipelines is None and devices is None:
        devices = _default_devices()
    app = build_app(QwenService(settings, pipelines, devices or ()))
    # A client that trickles its body holds a connection; give it a deadline.
    app.add_middleware(BodyReadTimeout, seconds=SERVER_LIMITS.body_timeout)
    return app


def _default_devices() -> list[str]:
    try:
        import torch
    except ImportError:
        return ["cpu"]
    count = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    return [f"cuda:{index}" for index in range(count)] or ["cpu"]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m genevolve_async.serve.qwen",
        description="Serve Qwen-Image-Edit over HTTP, one pipeline per device.",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--devices",
        default=None,
        help="comma-separated, e.g. cuda:0,cuda:1 (default: every GPU, else cpu)",
    )
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--job-timeout", type=float, default=1800.0)
    parser.add_argument("--shutdown-grace", type=float, default=30.0)
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--fetch-http-references",
        action="store_true",
        help="also accept http(s) image_urls (default: data URIs only); public hosts only",
    )
    parser.add_argument(
        "--allow-reference-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="a private network fetched references may come from (repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: parse `argv` and serve until interrupted.

    Args:
        argv: Arguments without the program name; `None` reads `sys.argv`.

    Raises:
        ImportError: If uvicorn or fastapi is not installed.
    """
    args = _parse_args(argv)
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(_SERVICE_HINT) from exc
    logging.basicConfig(level=args.log_level.upper())
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    app = create_app(
        model=args.model,
        devices=devices,
        max_queue=args.max_queue,
        job_timeout=args.job_timeout,
        shutdown_grace=args.shutdown_grace,
        fetch_http_references=args.fetch_http_references,
        allowed_reference_networks=args.allow_reference_network,
    )
    # uvicorn drains open requests before the lifespan exits; bound that wait too.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=int(args.shutdown_grace),
        **SERVER_LIMITS.uvicorn_options(),
    )


if __name__ == "__main__":
    main()
