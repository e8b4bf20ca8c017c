"""The report's figures: the judge's split table, and the run's counts and latencies.

The split figures are never recomputed when the run has them: they come
from ``summary.json`` as written (the layout of today, split name to
figures, or the original's, with ``all`` and ``by_eval_type`` and friends).
A folder without one is summarised by the judge's own ``aggregate``, so the
report and ``evaluate`` can never disagree. The counts per stage reuse the
pipeline's :class:`StageSummary`, the same figures the command line prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from .._stats import percentile
from ..judge import aggregate, summary_dict
from ..pipeline import StageKind, StageSummary
from ..pipeline._groups import _overall as item_overall  # one reading of a row's score
from ._load import RunData

__all__ = ["METRICS", "RunStats", "Split", "item_overall", "read_splits", "run_stats"]

METRICS = (
    ("faithfulness", "F"),
    ("visual_correctness", "V"),
    ("text_accuracy", "T"),
    ("aesthetics", "A"),
    ("overall", "overall"),
    ("overall_missing_zero", "missing=0"),
)
"""Split figures shown, with their short column names."""

_SPLIT_FIELDS = ("eval_type", "category", "difficulty")
_WHOLE = ("all", "overall_avg")


@dataclass(kw_only=True, slots=True, frozen=True)
class Split:
    """One row of the summary table."""

    field: str
    """``all``, ``eval_type``, ``category`` or ``difficulty``."""
    value: str
    """The split's value (``all`` for the whole set)."""
    figures: Mapping[str, Any]
    """The figures as the summary holds them (means, counts, overall_missing_zero)."""


def read_splits(payload: Mapping[str, Any]) -> list[Split]:
    """The splits of a ``summary.json``, whichever layout it has.

    Args:
        payload: ``{"overall_avg": {...}, "eval_type:X": {...}}`` (today's), or
            ``{"all": {...}, "by_eval_type": {"X": {...}}, ...}`` (the original's).

    Returns:
        The whole set first, then each field's values in the order written.
    """
    splits: list[Split] = []
    for key in _WHOLE:
        if isinstance(payload.get(key), Mapping):
            splits.append(Split(field="all", value="all", figures=payload[key]))
            break
    for name in _SPLIT_FIELDS:
        nested = payload.get(f"by_{name}")
        if isinstance(nested, Mapping):
            splits += [
                Split(field=name, value=str(value), figures=figures)
                for value, figures in nested.items()
                if isinstance(figures, Mapping)
            ]
            continue
        prefix = f"{name}:"
        splits += [
            Split(field=name, value=key[len(prefix) :], figures=figures)
            for key, figures in payload.items()
            if key.startswith(prefix) and isinstance(figures, Mapping)
        ]
    return splits


@dataclass(kw_only=True, slots=True)
class RunStats:
    """Everything the summary section shows about one run."""

    splits: list[Split] = field(default_factory=list)
    splits_source: str = ""
    """``summary.json``, or what they were computed from."""
    stages: dict[str, StageSummary] = field(default_factory=dict)
    rounds: Counter[int] = field(default_factory=Counter)
    """Rollouts by rounds taken."""
    tool_calls: Counter[int] = field(default_factory=Counter)
    """Rollouts by tool calls made."""
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per timing (``total``, ``model``, ``tools``): p50, p90, p99, max in seconds."""


def _latency(values: Sequence[float]) -> dict[str, float]:
    figures = {f"p{q}": percentile(values, q) for q in (50, 90, 99)}
    figures["max"] = max(values)
    return figures


def run_stats(run: RunData) -> RunStats:
    """The figures of ``run`` (blocking but quick: counting only).

    Args:
        run: A loaded run folder.

    Returns:
        Its summary splits (from ``summary.json`` when present), per-stage
        counts, histograms and latency percentiles.
    """
    stats = RunStats()
    if run.summary is not None:
        stats.splits, stats.splits_source = read_splits(run.summary), "summary.json"
    elif "evaluate" in run.stages:
        splits = aggregate(run.items)
        stats.splits = read_splits(summary_dict(run.items, splits, eval_json=""))
        stats.splits_source = "computed from the judged rows (no summary.json)"
    timings: dict[str, list[float]] = {}
    for stage in run.stages:
        summary = StageSummary(kind=cast(StageKind, stage))
        for item in run.items:
            if _has_stage(item, stage):
                summary.add(item)
        stats.stages[stage] = summary
    for item in run.items:
        if not _has_stage(item, "run"):
            continue
        if isinstance(item.get("rounds"), int):
            stats.rounds[item["rounds"]] += 1
        calls = item.get("tool_calls")
        if isinstance(calls, Mapping):
            stats.tool_calls[sum(v for v in calls.values() if isinstance(v, int))] += 1
        spent = item.get("timings")
        if isinstance(spent, Mapping):
            for key, value in spent.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    timings.setdefault(str(key), []).append(float(value))
    stats.latency = {key: _latency(values) for key, values in timings.items() if values}
    return stats


def _has_stage(item: Mapping[str, Any], stage: str) -> bool:
    if stage == "run":
        return "termination" in item
    if stage == "render":
        return "success" in item or "image_status" in item
    return "eval_success" in item
