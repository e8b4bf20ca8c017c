"""See a run: a self-contained HTML report of trajectories, images and scores.

``genevolve-async report RUN_DIR [RUN_B] [--output report.html]`` reads any
run folder the batch commands wrote (any subset of the stages, merged
shards, sampled groups) and writes one HTML file: the summary figures as
tables and bar charts, then one filterable, sortable card per item with its
trajectory, program, references, render, ground truth and scores::

    info = build_report("runs/bench", "runs/bench/report.html")
    print(info.path, info.html_bytes, info.seconds)
"""

from __future__ import annotations

from ._build import ReportInfo as ReportInfo
from ._build import build_report as build_report
from ._load import RunData as RunData
from ._load import load_run as load_run
from ._stats import RunStats as RunStats
from ._stats import Split as Split
from ._stats import read_splits as read_splits
from ._stats import run_stats as run_stats
from ._thumbs import ImageMode as ImageMode

__all__ = [
    "ImageMode",
    "ReportInfo",
    "RunData",
    "RunStats",
    "Split",
    "build_report",
    "load_run",
    "read_splits",
    "run_stats",
]
