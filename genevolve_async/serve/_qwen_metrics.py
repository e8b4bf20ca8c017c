"""Prometheus metrics of the Qwen-Image-Edit service, served at ``GET /metrics``.

Read from what the routes answer (status, device, seconds), so the
scheduler stays free of bookkeeping; the queue and the devices' state are
read from the service when Prometheus scrapes. Each app has its own
registry, so tests (and processes) can run several apps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ._qwen_service import QwenService, Reply

__all__ = ["ServiceMetrics"]

_SECONDS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


class _StateCollector(Collector):
    """Queue depth and busy devices, read at scrape time."""

    def __init__(self, service: QwenService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        health = self._service.health()
        yield GaugeMetricFamily(
            "genevolve_qwen_queue_depth",
            "Requests admitted and waiting for a device",
            value=health["queued"],
        )
        busy = GaugeMetricFamily(
            "genevolve_qwen_device_busy", "1 while the device runs a job", labels=["device"]
        )
        for device, is_busy in self._service.device_states().items():
            busy.add_metric([device], 1.0 if is_busy else 0.0)
        yield busy


class ServiceMetrics:
    """The service's counters and histograms, in a registry of their own."""

    def __init__(self, service: QwenService) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "genevolve_qwen_jobs",
            "Jobs that produced an image, by device",
            ["device"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "genevolve_qwen_job_seconds",
            "Inference time of successful jobs, by device",
            ["device"],
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.responses = Counter(
            "genevolve_qwen_responses",
            "Answers to POST /generate, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "genevolve_qwen_rejections",
            "Requests refused before running (400, 413, 429, 503), by status",
            ["status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "genevolve_qwen_errors",
            "Requests that failed after admission (504, or the pipeline raised), by kind",
            ["kind"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(service))

    def observe(self, reply: Reply) -> None:
        """Count one answer of ``POST /generate``."""
        status = reply.status
        self.responses.labels(str(status)).inc()
        if status in (400, 413, 429, 503):
            self.rejections.labels(str(status)).inc()
        elif status == 504:
            self.errors.labels("timeout").inc()
        if status != 200:
            return
        body = reply.body
        if body.get("success"):
            device = str(body.get("device", "unknown"))
            self.jobs.labels(device).inc()
            seconds = body.get("seconds")
            if isinstance(seconds, int | float):
                self.job_seconds.labels(device).observe(seconds)
        else:  # the published shape names no device for a failure
            self.errors.labels("pipeline").inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
