"""Configure the OpenTelemetry SDK from the standard ``OTEL_*`` variables.

What ``opentelemetry-instrument`` does for a process, in a few lines and
without entry points: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
name the process, ``OTEL_TRACES_EXPORTER`` and ``OTEL_METRICS_EXPORTER``
pick exporters (``otlp``, the default; ``console``; ``prometheus`` for
metrics; ``none``; and ``memory``, ours, which keeps everything in the
process, for benchmarks and tests), and the exporters read their own
variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_BSP_*``, ``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_TRACES_SAMPLER``, ...).
OTLP goes over HTTP/protobuf; ``grpc`` is refused with a clear error.

Needs the ``otel`` extra (``pip install 'genevolve-async[otel]'``); only
the API is a core dependency.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigurationError

__all__ = ["TelemetrySetup", "configure_from_env"]

_EXTRA = "install the extra: pip install 'genevolve-async[otel]'"
_DEFAULT_SERVICE = "genevolve-async"


@dataclass(kw_only=True, slots=True)
class TelemetrySetup:
    """The SDK providers :func:`configure_from_env` built; shut them down at exit."""

    tracer_provider: Any = None
    """The SDK ``TracerProvider`` (``None`` when traces are off)."""
    meter_provider: Any = None
    """The SDK ``MeterProvider`` (``None`` when metrics are off)."""
    span_exporters: list[Any] = field(default_factory=list)
    """The span exporters in use (an in-memory one can be read back)."""
    metric_readers: list[Any] = field(default_factory=list)
    """The metric readers in use."""

    def shutdown(self) -> None:
        """Flush what is buffered, export it and stop the exporters."""
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def _names(env: Mapping[str, str], variable: str) -> list[str]:
    raw = env.get(variable, "otlp")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return [n for n in names if n != "none"]


def _check_protocol(env: Mapping[str, str], signal: str) -> None:
    protocol = env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip() != "http/protobuf":
        raise ConfigurationError(
            f"OTLP protocol {protocol!r} is not supported; use http/protobuf "
            "(OTEL_EXPORTER_OTLP_PROTOCOL)"
        )


def _span_exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "otlp":
        _check_protocol(env, "TRACES")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "memory":
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        return InMemorySpanExporter()
    raise ConfigurationError(
        f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}; use otlp, console, memory or none"
    )


def _metric_reader(name: str, env: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if name == "otlp":
        _check_protocol(env, "METRICS")
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return PeriodicExportingMetricReader(OTLPMetricExporter())
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    if name == "memory":
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        return InMemoryMetricReader()
    if name == "prometheus":
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import start_http_server
        except ImportError as exc:
            raise ConfigurationError(
                "OTEL_METRICS_EXPORTER=prometheus needs opentelemetry-exporter-prometheus"
            ) from exc
        start_http_server(
            int(env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")),
            addr=env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost"),
        )
        return PrometheusMetricReader()
    raise ConfigurationError(
        f"OTEL_METRICS_EXPORTER: unknown exporter {name!r}; "
        "use otlp, console, prometheus, memory or none"
    )


def configure_from_env(
    env: Mapping[str, str] | None = None, *, install: bool = True
) -> TelemetrySetup:
    """Build SDK providers from ``OTEL_*`` variables and (by default) make them global.

    Args:
        env: The variables to read (default: ``os.environ``; the exporters
            read their own settings from ``os.environ`` in any case).
        install: Set the providers as the process's global ones. Off, the
            caller passes them to :func:`use_providers` or its own code.

    Raises:
        ConfigurationError: the ``otel`` extra is missing, or a variable
            names an exporter or protocol we do not have.
    """
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TelemetrySetup()
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigurationError(f"--otel needs the OpenTelemetry SDK; {_EXTRA}") from exc
    defaults = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": _DEFAULT_SERVICE}
    resource = Resource.create(defaults)
    setup = TelemetrySetup()
    try:
        setup.span_exporters = [_span_exporter(n, env) for n in _names(env, "OTEL_TRACES_EXPORTER")]
        setup.metric_readers = [
            _metric_reader(n, env) for n in _names(env, "OTEL_METRICS_EXPORTER")
        ]
    except ImportError as exc:
        raise ConfigurationError(f"--otel: an exporter is missing ({exc.name}); {_EXTRA}") from exc
    if setup.span_exporters:
        setup.tracer_provider = TracerProvider(resource=resource)
        for exporter in setup.span_exporters:
            setup.tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    if setup.metric_readers:
        setup.meter_provider = MeterProvider(resource=resource, metric_readers=setup.metric_readers)
    if install:
        from opentelemetry import metrics, trace

        if setup.tracer_provider is not None:
            trace.set_tracer_provider(setup.tracer_provider)
        if setup.meter_provider is not None:
            metrics.set_meter_provider(setup.meter_provider)
    return setup
