"""The bench end to end on tiny latencies: it runs, writes its report and draws its chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genevolve_async.bench._chart import SweepPoint, draw_sweep_chart
from genevolve_async.bench._cli import main


def test_sweep_with_comparison_writes_report_and_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(
        [
            "--sweep", "4,8", "--num-rollouts", "16", "--model-latency", "0.02",
            "--search-latency", "0.01", "--download-latency", "0.005", "--spread", "0",
            "--compare", "bare", "--compare-seconds", "30", "--no-uvloop",
            "--result-dir", str(tmp_path),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "efficiency" in out and "vs bare" in out
    (report_path,) = tmp_path.glob("bench-*.json")
    report = json.loads(report_path.read_text())
    runs = report["runs"]
    assert [(r["runner"], r["max_concurrency"]) for r in runs] == [
        ("genevolve-async", 4), ("bare", 4), ("genevolve-async", 8), ("bare", 8),
    ]  # fmt: skip
    ours = runs[0]
    assert ours["completed"] == 16 and ours["failed"] == 0
    assert ours["critical_path_s"] == pytest.approx(4 * 0.02 + 0.01 + 0.015)
    assert ours["tool_calls_per_s"].keys() == {"image_search", "query_knowledge", "search"}
    assert ours["limiters"]["policy"]["grants"] == 16 * 4
    assert report["ratios"][0]["versus"] == "bare"
    (chart,) = tmp_path.glob("bench-*.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_refuses_no_points(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        draw_sweep_chart([], tmp_path / "x.png", title="t")
    path = draw_sweep_chart(
        [SweepPoint(runner="genevolve-async", concurrency=16, throughput=5.0)],
        tmp_path / "one.png",
        title="t",
    )
    assert path.is_file()


def test_repeats_interleave_the_runners_and_report_medians(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    main(
        [
            "--max-concurrency", "4", "--num-rollouts", "8", "--model-latency", "0.02",
            "--search-latency", "0.01", "--download-latency", "0.005", "--spread", "0",
            "--compare", "bare", "--compare-seconds", "30", "--no-uvloop", "--repeat", "2",
            "--image-dir", str(images), "--result-dir", str(tmp_path),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "medians over 2 interleaved repetitions" in out and "cpu ratio, ours/bare (x)" in out
    (report_path,) = tmp_path.glob("bench-*.json")
    report = json.loads(report_path.read_text())
    assert [(r["runner"], r["repeat"]) for r in report["runs"]] == [
        ("genevolve-async", 0), ("bare", 0), ("genevolve-async", 1), ("bare", 1),
    ]  # fmt: skip
    assert [r["repeat"] for r in report["ratios"]] == [0, 1]
    bare = report["runs"][1]
    assert 0 < bare["latency_p50_s"] <= bare["latency_p99_s"] and bare["latency_mean_s"] > 0
    ours = next(m for m in report["medians"] if m["runner"] == "genevolve-async")
    assert ours["repeats"] == 2 and "cpu_ratio_vs_bare" in ours
    assert report["machine"]["image_dir"] == str(images)
    assert images.is_dir() and not any(images.iterdir())  # the runs' folders are cleaned up


def test_repeat_must_be_positive() -> None:
    with pytest.raises(SystemExit, match="--repeat"):
        main(["--repeat", "0", "--no-save-result"])
