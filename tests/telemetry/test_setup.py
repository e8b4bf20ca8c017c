"""The SDK set up from ``OTEL_*`` variables, exporting over OTLP/HTTP to a loopback receiver."""

from __future__ import annotations

import gzip
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio.to_thread
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from genevolve_async import ConfigurationError
from genevolve_async.sim import SimStack
from genevolve_async.telemetry import configure_from_env, use_providers

from .conftest import POLICY_KEY, SERPER_KEY, fast_runtime, make_agent


class _Receiver:
    """An OTLP/HTTP collector stand-in: decodes every protobuf body it gets."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.raw: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                assert self.headers["Content-Type"] == "application/x-protobuf"
                receiver.raw.append(body)
                if self.path == "/v1/traces":
                    receiver.traces.append(ExportTraceServiceRequest.FromString(body))
                elif self.path == "/v1/metrics":
                    receiver.metrics.append(ExportMetricsServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


async def test_otlp_http_reaches_a_receiver(
    receiver: _Receiver, stack: SimStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "genevolve-test")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    setup = configure_from_env(install=False)
    with use_providers(setup.tracer_provider, setup.meter_provider):
        async with fast_runtime() as runtime:
            result = await make_agent(stack, runtime, tmp_path).arun("a red fox")
    await anyio.to_thread.run_sync(setup.shutdown)  # flushes: blocking HTTP in the exporters
    assert result.termination == "answer"
    names = [
        span.name
        for request in receiver.traces
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert "invoke_agent genevolve" in names and names.count("chat GenEvolve") == 4
    resource = receiver.traces[0].resource_spans[0].resource
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "genevolve-test"
    metric_names = {
        m.name
        for request in receiver.metrics
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert {
        "genevolve.rollouts",
        "genevolve.round.duration",
        "genevolve.tool.calls",
    } <= metric_names
    everything = b"".join(receiver.raw)
    assert POLICY_KEY.encode() not in everything and SERPER_KEY.encode() not in everything


def test_exporters_none_configure_nothing() -> None:
    setup = configure_from_env(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, install=False
    )
    assert setup.tracer_provider is None and setup.meter_provider is None
    assert configure_from_env({"OTEL_SDK_DISABLED": "true"}, install=False).tracer_provider is None


def test_memory_exporters_for_benchmarks() -> None:
    setup = configure_from_env(
        {"OTEL_TRACES_EXPORTER": "memory", "OTEL_METRICS_EXPORTER": "memory"}, install=False
    )
    assert setup.span_exporters and setup.metric_readers
    setup.shutdown()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "unknown exporter 'zipkin'"),
        ({"OTEL_METRICS_EXPORTER": "statsd", "OTEL_TRACES_EXPORTER": "none"}, "unknown exporter"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "use http/protobuf"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        configure_from_env(env, install=False)


def test_missing_sdk_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(ConfigurationError, match=r"genevolve-async\[otel\]"):
        configure_from_env({}, install=False)
