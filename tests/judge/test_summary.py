from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from genevolve_async.judge import (
    SUMMARY_CSV_COLUMNS,
    SplitSummary,
    format_summary_table,
    summary_csv_text,
    summary_dict,
    write_summary_csv,
)

WHOLE = SplitSummary(
    name="all",
    count_eval_success=7,
    denominator=11,
    faithfulness=0.7857,
    visual_correctness=0.5714,
    text_accuracy=0.5,
    aesthetics=0.7857,
    overall=0.5857,
    overall_missing_zero=0.3727,
)
KNOWLEDGE = SplitSummary(
    name="eval_type:Knowledge-Anchored",
    count_eval_success=4,
    denominator=6,
    faithfulness=0.75,
    visual_correctness=0.5,
    text_accuracy=0.5,
    aesthetics=0.75,
    overall=0.55,
    overall_missing_zero=0.3667,
)
EMPTY = SplitSummary(
    name="category:food",
    count_eval_success=0,
    denominator=1,
    faithfulness=0.0,
    visual_correctness=0.0,
    text_accuracy=0.0,
    aesthetics=0.0,
    overall=0.0,
    overall_missing_zero=0.0,
)
SUMMARIES = [WHOLE, KNOWLEDGE, EMPTY]


def test_summary_dict_groups_the_splits_by_field() -> None:
    summary = summary_dict([], SUMMARIES, eval_json="/x/results_eval.json")
    assert summary["all"]["overall"] == 0.5857 and summary["total_cases"] == 11
    assert list(summary["by_eval_type"]) == ["Knowledge-Anchored"]
    assert summary["by_category"]["food"]["missing_or_failed"] == 1
    assert summary["by_difficulty"] == {}
    assert json.loads(json.dumps(summary)) == summary


def test_csv_columns_and_cells() -> None:
    text = summary_csv_text(SUMMARIES)
    assert text.splitlines()[0] == (
        "split,count_eval_success,denominator,missing_or_failed,faithfulness,"
        "visual_correctness,text_accuracy,aesthetics,overall,overall_missing_zero"
    )
    assert text.splitlines()[1:] == [
        "all,7,11,4,0.7857,0.5714,0.5,0.7857,0.5857,0.3727",
        "eval_type:Knowledge-Anchored,4,6,2,0.75,0.5,0.5,0.75,0.55,0.3667",
        "category:food,0,1,1,0.0,0.0,0.0,0.0,0.0,0.0",
    ]
    # csv's default line end, as the original's DictWriter wrote.
    assert text.count("\r\n") == 4 and text.endswith("\r\n")
    assert tuple(next(csv.reader(io.StringIO(text)))) == SUMMARY_CSV_COLUMNS


def test_csv_quotes_awkward_split_names() -> None:
    odd = SplitSummary(
        name='category:food, "fine"',
        count_eval_success=0,
        denominator=2,
        faithfulness=0.0,
        visual_correctness=0.0,
        text_accuracy=0.0,
        aesthetics=0.0,
        overall=0.0,
        overall_missing_zero=0.0,
    )
    rows = list(csv.reader(io.StringIO(summary_csv_text([odd]))))
    assert rows[1][0] == 'category:food, "fine"'
    assert len(rows[1]) == len(SUMMARY_CSV_COLUMNS)


def test_write_summary_csv(tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    path.write_text("stale", encoding="utf-8")
    write_summary_csv(SUMMARIES, path)
    assert path.read_bytes() == summary_csv_text(SUMMARIES).encode("utf-8")


def test_table_is_aligned() -> None:
    lines = format_summary_table(SUMMARIES).split("\n")
    assert lines[0].split() == [
        "split", "ok", "n", "missing", "F", "V", "T", "A", "overall", "missing=0",
    ]  # fmt: skip
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == [
        "all", "7", "11", "4",
        "0.7857", "0.5714", "0.5000", "0.7857", "0.5857", "0.3727",
    ]  # fmt: skip
    assert lines[4].split() == [
        "category:food", "0", "1", "1",
        "0.0000", "0.0000", "0.0000", "0.0000", "0.0000", "0.0000",
    ]  # fmt: skip
    # Figures are right-aligned, so every line ends at the same column.
    assert len({len(line) for line in lines}) == 1


def test_table_of_nothing_is_just_the_header() -> None:
    assert len(format_summary_table([]).split("\n")) == 2
