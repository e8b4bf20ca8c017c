"""Render split summaries for results_eval.json, summary.json, summary.csv and the CLI."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._scoring import SplitSummary

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


def summary_rows(summaries: Iterable[SplitSummary]) -> list[dict[str, Any]]:
    """Return the summary rows appended after the sample rows of results_eval.json.

    Args:
        summaries: Output of `aggregate`.

    Returns:
        One JSON-ready dict per summary, `summary_type` (the split name, such
        as `overall_avg` or `eval_type:Knowledge-Anchored`) first, then the
        figures. These rows have no `id`, so resuming never takes them for
        samples.
    """
    return [{"summary_type": summary.name, **_figures(summary)} for summary in summaries]


def summary_dict(summaries: Iterable[SplitSummary]) -> dict[str, dict[str, Any]]:
    """Return the content of summary.json: split name to its figures.

    Args:
        summaries: Output of `aggregate`.

    Returns:
        A JSON-ready dict keyed by split name, in the order given.
    """
    return {summary.name: _figures(summary) for summary in summaries}


def summary_csv_text(summaries: Iterable[SplitSummary]) -> str:
    """Return summary.csv as text: a header, then one line per split.

    Args:
        summaries: Output of `aggregate`.

    Returns:
        CSV text with `SUMMARY_CSV_COLUMNS` as header and `\\n` line ends;
        figures that do not exist (no successful sample) are empty cells.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_CSV_COLUMNS)
    for summary in summaries:
        figures = _figures(summary)
        writer.writerow(
            [
                summary.name,
                *("" if figures[col] is None else figures[col] for col in SUMMARY_CSV_COLUMNS[1:]),
            ]
        )
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
    Figures show 4 decimals; `-` stands for a figure that does not exist.

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
    return {
        "count_eval_success": summary.count_eval_success,
        "denominator": summary.denominator,
        "missing_or_failed": summary.missing_or_failed,
        "faithfulness": summary.faithfulness,
        "visual_correctness": summary.visual_correctness,
        "text_accuracy": summary.text_accuracy,
        "aesthetics": summary.aesthetics,
        "overall": summary.overall,
        "overall_missing_zero": summary.overall_missing_zero,
    }


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
        *("-" if score is None else f"{score:.4f}" for score in scores),
    )


def _table_line(cells: tuple[str, ...], widths: list[int]) -> str:
    # Split names read best left-aligned, figures right-aligned.
    parts = [cells[0].ljust(widths[0])]
    parts.extend(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
    return "  ".join(parts).rstrip()
