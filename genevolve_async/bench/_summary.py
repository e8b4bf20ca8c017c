"""Ratios against the reference runners, and medians over repeated runs.

Timings on a shared 2-core machine move by 10 % or more from run to run,
as much as the ratios we care about. ``--repeat N`` runs every runner N
times, interleaved (ours, bare, ours, bare, ...) so that slow and fast
spells of the machine fall on both; a ratio is taken within one repetition,
then the median over repetitions is reported.
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["MEDIAN_KEYS", "medians", "ratios"]

OURS = "genevolve-async"

MEDIAN_KEYS = (
    "rollouts_per_s",
    "efficiency",
    "steady_efficiency",
    "latency_mean_s",
    "first_rollout_latency_s",
    "cpu_ms_per_rollout",
)
"""The figures whose median over repetitions the report gives."""


def _pair_key(row: dict[str, Any]) -> tuple[int, int]:
    return row["max_concurrency"], row.get("repeat", 0)


def ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours over each reference runner, within one concurrency level and repetition."""
    out: list[dict[str, Any]] = []
    for ours in (r for r in runs if r["runner"] == OURS):
        for ref in (r for r in runs if r["runner"] != OURS):
            if _pair_key(ref) != _pair_key(ours):
                continue
            entry: dict[str, Any] = {
                "max_concurrency": ours["max_concurrency"],
                "versus": ref["runner"],
            }
            if "repeat" in ours:
                entry["repeat"] = ours["repeat"]
            if ref.get("rollouts_per_s"):
                entry["throughput_ratio"] = round(ours["rollouts_per_s"] / ref["rollouts_per_s"], 2)
            if ref.get("cpu_ms_per_rollout"):
                entry["cpu_ratio"] = round(
                    ours["cpu_ms_per_rollout"] / ref["cpu_ms_per_rollout"], 3
                )
            out.append(entry)
    return out


def _numbers(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))]


def medians(runs: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per runner and level: the median of each figure, and of each ratio, over repetitions.

    Args:
        runs: the report's rows (each with ``repeat`` when repeated).
        pairs: :func:`ratios` of the same rows.
    """
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in runs:
        groups.setdefault((row["runner"], row["max_concurrency"]), []).append(row)
    versus: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for pair in pairs:
        versus.setdefault((pair["max_concurrency"], pair["versus"]), []).append(pair)
    out: list[dict[str, Any]] = []
    for (runner, level), rows in groups.items():
        entry: dict[str, Any] = {"runner": runner, "max_concurrency": level, "repeats": len(rows)}
        for key in MEDIAN_KEYS:
            if values := _numbers(rows, key):
                entry[key] = round(statistics.median(values), 4)
                entry[f"{key}_range"] = [round(min(values), 4), round(max(values), 4)]
        if runner == OURS:  # ratios are ours over a reference runner
            for (at, other), mine in sorted(versus.items()):
                for key in ("throughput_ratio", "cpu_ratio"):
                    if at == level and (values := _numbers(mine, key)):
                        entry[f"{key}_vs_{other}"] = round(statistics.median(values), 4)
        out.append(entry)
    return out
