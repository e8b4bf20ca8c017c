"""Render split summaries for results_eval.json, summary.json, summary.csv and the CLI.

Each file keeps the original evaluator's layout, key for key: the summary
rows of results_eval.json are `{"summary_type", "avg_scores", "count"}`
(one per `eval_type`, then `overall_avg`), summary.json is `{eval_json,
total_cases, all, by_eval_type, by_category, by_difficulty,
missing_case_ids, failed_case_ids}`, and summary.csv starts with `all`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._scoring import (
    DEFAULT_SPLIT_FIELDS,
    OVERALL_SPLIT,
    SplitSummary,
    judged_scores,
    mean_scores,
    split_value,
)

__all__ = [
    "SUMMARY_CSV_COLUMNS",
    "format_summary_table",
    "summary_csv_text",
    "summary_dict",
    "summary_rows",
    "write_summary_csv",
]

SUMMARY_CSV_COLUMNS = (
    "split",
    "count_eval_success",
    "denominator",
    "missing_or_failed",
    "faithfulness",
    "visual_correctness",
    "text_accuracy",
    "aesthetics",
    "overall",
    "overall_missing_zero",
)
"""The columns of summary.csv, in order."""

_TABLE_HEADERS = ("split", "ok", "n", "missing", "F", "V", "T", "A", "overall", "missing=0")


def summary_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return the summary rows appended after the sample rows of results_eval.json.

    Args:
        rows: The sample rows (earlier summary rows are skipped).

    Returns:
        One `{"summary_type": "eval_type:<t>", "avg_scores": {...}, "count"}`
        row per eval type, types sorted (a type with no judged sample gets
        zeros and count 0), then the `overall_avg` row pooling every sample.
        `avg_scores` follows `mean_scores`; `count` is the judged samples.
        These rows have no `id`, so resuming never takes them for samples.
    """
    samples = [row for row in rows if "summary_type" not in row]
    out = []
    for eval_type in sorted({split_value(row, "eval_type") for row in samples}):
        subset = [row for row in samples if split_value(row, "eval_type") == eval_type]
        out.append(_summary_row(f"eval_type:{eval_type}", subset))
    out.append(_summary_row(OVERALL_SPLIT, samples))
    return out


def summary_dict(
    rows: Iterable[Mapping[str, Any]],
    splits: Sequence[SplitSummary],
    *,
    eval_json: str,
) -> dict[str, Any]:
    """Return the content of summary.json, in the original's layout.

    Args:
        rows: The sample rows (summary rows are skipped), for the case ids.
        splits: Output of `aggregate` over the same rows.
        eval_json: The results_eval.json path to record (absolute, as the original).

    Returns:
        `eval_json`, `total_cases` (the whole set's denominator), `all`,
        `by_<field>` for each split field (value to figures), then
        `missing_case_ids` (rows whose render failed) and `failed_case_ids`
        (rendered rows whose judging failed).
    """
    whole, *rest = splits
    summary: dict[str, Any] = {
        "eval_json": eval_json,
        "total_cases": whole.denominator,
        "all": _figures(whole),
    }
    for field in DEFAULT_SPLIT_FIELDS:
        summary[f"by_{field}"] = {}
    for split in rest:
        field, _, value = split.name.partition(":")
        summary.setdefault(f"by_{field}", {})[value] = _figures(split)
    missing, failed = _case_ids(rows)
    summary["missing_case_ids"] = missing
    summary["failed_case_ids"] = failed
    return summary


def summary_csv_text(summaries: Iterable[SplitSummary]) -> str:
    """Return summary.csv as text: a header, then one line per split.

    Args:
        summaries: Output of `aggregate` (`all` first, then the splits).

    Returns:
        CSV text with `SUMMARY_CSV_COLUMNS` as header and `\\r\\n` line
        ends, as Python's csv module writes by default (and the original did).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(SUMMARY_CSV_COLUMNS)
    for summary in summaries:
        figures = _figures(summary)
        writer.writerow([summary.name, *(figures[col] for col in SUMMARY_CSV_COLUMNS[1:])])
    return buffer.getvalue()


def write_summary_csv(summaries: Iterable[SplitSummary], path: str | os.PathLike[str]) -> None:
    """Write summary.csv (UTF-8) to `path`, replacing any existing file.

    Args:
        summaries: Output of `aggregate`.
        path: Destination file; its folder must exist.
    """
    Path(path).write_text(summary_csv_text(summaries), encoding="utf-8", newline="")


def format_summary_table(summaries: Iterable[SplitSummary]) -> str:
    """Return the summaries as an aligned plain-text table for terminals.

    Columns: split name, successful samples, rows, missing or failed, the
    four mean scores, overall and overall with missing samples as zero.
    Figures show 4 decimals.

    Args:
        summaries: Output of `aggregate`.

    Returns:
        The table, lines joined by `\\n`, without a final newline.
    """
    body = [_table_cells(summary) for summary in summaries]
    widths = [
        max(len(row[i]) for row in (_TABLE_HEADERS, *body)) for i in range(len(_TABLE_HEADERS))
    ]
    lines = [_table_line(_TABLE_HEADERS, widths), "  ".join("-" * width for width in widths)]
    lines.extend(_table_line(cells, widths) for cells in body)
    return "\n".join(lines)


def _figures(summary: SplitSummary) -> dict[str, Any]:
    # Key order of the original's summary.json.
    return {
        "faithfulness": summary.faithfulness,
        "visual_correctness": summary.visual_correctness,
        "text_accuracy": summary.text_accuracy,
        "aesthetics": summary.aesthetics,
        "overall": summary.overall,
        "count_eval_success": summary.count_eval_success,
        "denominator": summary.denominator,
        "missing_or_failed": summary.missing_or_failed,
        "overall_missing_zero": summary.overall_missing_zero,
    }


def _summary_row(name: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    judged = [scores for scores in map(judged_scores, rows) if scores is not None]
    return {"summary_type": name, "avg_scores": mean_scores(judged), "count": len(judged)}


_GENERATED_KEYS = ("output_path", "image_path", "generated_image", "gen_image")


def _case_ids(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    missing: list[str] = []
    failed: list[str] = []
    for row in rows:
        if "summary_type" in row:
            continue
        meta = row.get("meta")
        nested: Mapping[str, Any] = meta if isinstance(meta, Mapping) else {}
        case_id = str(nested.get("case_id") or nested.get("source_id") or row.get("id"))
        if not _rendered(row):
            missing.append(case_id)
        elif row.get("eval_success") is not True:
            failed.append(case_id)
    return missing, failed


def _rendered(row: Mapping[str, Any]) -> bool:
    # The original's test: the render's own verdict, else an image file that exists.
    if "success" in row:
        return bool(row["success"])
    if row.get("image_status") == "ok":
        return True
    for key in _GENERATED_KEYS:
        raw = str(row.get(key) or "").strip()
        if raw and Path(raw).expanduser().exists():
            return True
    return False


def _table_cells(summary: SplitSummary) -> tuple[str, ...]:
    scores = (
        summary.faithfulness,
        summary.visual_correctness,
        summary.text_accuracy,
        summary.aesthetics,
        summary.overall,
        summary.overall_missing_zero,
    )
    counts = (summary.count_eval_success, summary.denominator, summary.missing_or_failed)
    return (
        summary.name,
        *(str(count) for count in counts),
        *(f"{score:.4f}" for score in scores),
    )


def _table_line(cells: tuple[str, ...], widths: list[int]) -> str:
    # Split names read best left-aligned, figures right-aligned.
    parts = [cells[0].ljust(widths[0])]
    parts.extend(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
    return "  ".join(parts).rstrip()
