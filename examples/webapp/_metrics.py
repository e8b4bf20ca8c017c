"""Prometheus metrics of the app, served at ``GET /metrics``.

A small ASGI middleware counts the answers of the job routes by status and
times them (a stream is timed until its last event), so 429 refusals, 5xx
errors and disconnects (499) are counted wherever they are decided. The
rollout cap's state is read from the service when Prometheus scrapes. Each
app has its own registry, so tests can run several apps in one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["JOB_ROUTES", "MetricsMiddleware", "WebMetrics"]

JOB_ROUTES = {"/v1/programs": "programs", "/v1/images": "images", "/v1/stream": "stream"}
"""The paths that run a rollout, and their ``endpoint`` label."""

_SECONDS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)

StatsSource = Callable[[], dict[str, Any] | None]
"""The service's ``statistics()`` while it runs, else ``None``."""


class _AdmissionCollector(Collector):
    def __init__(self, stats: StatsSource) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        if stats is None:
            return
        for key, name, help_text in (
            ("capacity", "genevolve_web_rollout_slots", "Rollouts allowed at once"),
            ("running", "genevolve_web_rollouts_running", "Rollouts running now"),
            ("waiting", "genevolve_web_queue_depth", "Requests waiting for a rollout slot"),
            ("active_jobs", "genevolve_web_jobs_active", "Jobs in flight"),
        ):
            yield GaugeMetricFamily(name, help_text, value=float(stats[key]))


class WebMetrics:
    """The app's counters and histograms, in a registry of their own."""

    def __init__(self, stats: StatsSource) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "genevolve_web_jobs",
            "Answered job requests, by endpoint and HTTP status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "genevolve_web_job_seconds",
            "Job request latency (a stream until its last event), by endpoint",
            ["endpoint"],
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.rejections = Counter(
            "genevolve_web_rejections",
            "Job requests refused with 429 (every rollout slot busy), by endpoint",
            ["endpoint"],
            registry=self.registry,
        )
        self.errors = Counter(
            "genevolve_web_errors",
            "Job requests answered 5xx, by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.registry.register(_AdmissionCollector(stats))

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered job request."""
        self.jobs.labels(endpoint, str(status)).inc()
        self.job_seconds.labels(endpoint).observe(seconds)
        if status == 429:
            self.rejections.labels(endpoint).inc()
        elif status >= 500:
            self.errors.labels(endpoint, str(status)).inc()

    async def endpoint(self, request: Request) -> Response:
        """``GET /metrics``."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts and times the job routes' answers into ``metrics``."""

    def __init__(self, app: ASGIApp, *, metrics: WebMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = JOB_ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500  # an exception that escapes before an answer starts

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.metrics.observe(endpoint, status, time.monotonic() - started)
