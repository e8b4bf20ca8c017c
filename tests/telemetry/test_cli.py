"""``--otel`` on the batch commands and the bench."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import genevolve_async.telemetry as telemetry
from genevolve_async.bench._cli import main as bench_main
from genevolve_async.pipeline._cli import build_parser
from genevolve_async.pipeline._cli import main as cli_main
from genevolve_async.telemetry import TelemetrySetup, use_providers


@pytest.mark.parametrize("command", ["run", "render", "evaluate", "pipeline"])
def test_every_batch_command_takes_otel(command: str) -> None:
    base = [command, "--output-dir", "o", "--input", "results.json"]
    assert build_parser().parse_args([*base, "--otel"]).otel is True
    assert build_parser().parse_args(base).otel is False


def test_otel_without_the_extra_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    code = cli_main(["run", "--prompt", "a fox", "--output-dir", str(tmp_path / "o"), "--otel"])
    assert code == 1
    assert "genevolve-async[otel]" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture
def memory_setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[TelemetrySetup]]:
    """``configure_from_env`` with in-memory exporters, kept out of the process's globals."""
    made: list[TelemetrySetup] = []
    real = telemetry.configure_from_env
    stack: list[Any] = []

    def configure(env: Any = None, *, install: bool = True) -> TelemetrySetup:
        setup = real(
            {"OTEL_TRACES_EXPORTER": "memory", "OTEL_METRICS_EXPORTER": "memory"}, install=False
        )
        scope = use_providers(setup.tracer_provider, setup.meter_provider)
        scope.__enter__()
        stack.append(scope)
        made.append(setup)
        return setup

    monkeypatch.setattr(telemetry, "configure_from_env", configure)
    yield made
    for scope in stack:
        scope.__exit__(None, None, None)


def test_bench_with_otel_traces_its_rollouts(
    tmp_path: Path, memory_setup: list[TelemetrySetup], capsys: pytest.CaptureFixture[str]
) -> None:
    bench_main(
        [
            "--max-concurrency", "4", "--num-rollouts", "4", "--model-latency", "0.01",
            "--search-latency", "0.01", "--download-latency", "0.005", "--spread", "0",
            "--no-uvloop", "--otel", "--result-dir", str(tmp_path),
        ]
    )  # fmt: skip
    (setup,) = memory_setup
    (exporter,) = setup.span_exporters
    names = [s.name for s in exporter.get_finished_spans()]  # kept after shutdown
    assert names.count("invoke_agent genevolve") == 4
    (report_path,) = tmp_path.glob("bench-*.json")
    report = json.loads(report_path.read_text())
    assert report["otel"] == {
        "traces": ["InMemorySpanExporter"],
        "metrics": ["InMemoryMetricReader"],
    }
    assert report["runs"][0]["completed"] == 4
