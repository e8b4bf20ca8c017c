from __future__ import annotations

from typing import Any

import pytest

from genevolve_async.judge import (
    OVERALL_SPLIT,
    SCORE_WEIGHTS,
    WHOLE_SPLIT,
    JudgeScores,
    SplitSummary,
    aggregate,
    normalize_scores,
    overall_score,
    summary_dict,
    summary_rows,
)

# --- per sample ---------------------------------------------------------------


def _verdict(f: float, v: float, t: float, a: float, *, na: bool = False) -> JudgeScores:
    return JudgeScores(
        faithfulness=f, visual_correctness=v, text_accuracy=t, aesthetics=a, text_accuracy_na=na
    )


def test_weights_sum_to_one() -> None:
    assert sum(SCORE_WEIGHTS.values()) == pytest.approx(1.0)


def test_sample_scores_and_overall() -> None:
    # 0.1*1 + 0.4*0.5 + 0.4*0 + 0.1*1 = 0.4
    assert normalize_scores(_verdict(1, 0.5, 0, 1)) == {
        "faithfulness": 1.0,
        "visual_correctness": 0.5,
        "text_accuracy": 0.0,
        "aesthetics": 1.0,
        "text_accuracy_na": False,
        "overall": 0.4,
    }


def test_out_of_range_scores_are_clipped() -> None:
    scores = normalize_scores(_verdict(1.5, -1, 2, 0.5))
    assert (scores["faithfulness"], scores["visual_correctness"]) == (1.0, 0.0)
    assert scores["text_accuracy"] == 1.0
    # 0.1*1 + 0.4*0 + 0.4*1 + 0.1*0.5 = 0.55
    assert scores["overall"] == 0.55


def test_scores_are_rounded_to_two_decimals() -> None:
    scores = normalize_scores(_verdict(0.333, 0.666, 0.5, 0.25))
    assert (scores["faithfulness"], scores["visual_correctness"]) == (0.33, 0.67)
    # 0.1*0.33 + 0.4*0.67 + 0.4*0.5 + 0.1*0.25 = 0.526 -> 0.53
    assert scores["overall"] == 0.53


def test_nan_scores_as_zero() -> None:
    assert normalize_scores(_verdict(float("nan"), 1, 1, 1))["faithfulness"] == 0.0


def test_text_not_applicable_scores_one_half() -> None:
    # Whatever the judge wrote for text, N/A counts as 0.5:
    # 0.1*1 + 0.4*0.5 + 0.4*0.5 + 0.1*1 = 0.6
    scores = normalize_scores(_verdict(1, 0.5, 0, 1, na=True))
    assert scores["text_accuracy"] == 0.5
    assert scores["text_accuracy_na"] is True
    assert scores["overall"] == 0.6


# --- the paper's Table 1 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("means", "expected"),
    [
        # GenEvolve + Nano Banana Pro: 0.0797 + 0.15328 + 0.24872 + 0.09222 = 0.57392
        ((0.7970, 0.3832, 0.6218, 0.9222), 0.5739),
        # GenEvolve + Qwen-Image-Edit-2511: 0.05303 + 0.05352 + 0.19628 + 0.06347 = 0.3663
        ((0.5303, 0.1338, 0.4907, 0.6347), 0.3663),
    ],
)
def test_table_1_oracle(means: tuple[float, float, float, float], expected: float) -> None:
    f, v, t, a = means
    overall = overall_score(
        faithfulness=f, visual_correctness=v, text_accuracy=t, aesthetics=a, ndigits=4
    )
    assert overall == expected


def test_table_1_oracle_through_the_summary_rows() -> None:
    # One judged sample whose scores are the table's means: the results_eval
    # summary row (the formula on the means) must reproduce the table.
    rows = [_row("x", f=0.7970, v=0.3832, t=0.6218, a=0.9222)]
    assert summary_rows(rows)[-1]["avg_scores"]["overall"] == 0.5739


# --- aggregation over a hand-built result set ---------------------------------------


def _row(
    eval_type: str | None,
    category: str | None = None,
    difficulty: str | None = None,
    *,
    f: float | None = None,
    v: float = 0.0,
    t: float = 0.0,
    a: float = 0.0,
    na: bool = False,
    error: str | None = None,
    type_key: str = "eval_type",
    rendered: bool = True,
) -> dict[str, Any]:
    """A results_eval.json row; no `f` means the sample was not judged."""
    row: dict[str, Any] = {"question": "...", "success": rendered}
    if eval_type is not None:
        if type_key == "meta":
            row["meta"] = {"eval_type": eval_type, "case_id": "case-6"}
        else:
            row[type_key] = eval_type
    if category is not None:
        row["category"] = category
    if difficulty is not None:
        row["difficulty"] = difficulty
    if f is None:
        row.update(eval_success=False, scores=None, error=error or "judge call failed")
    else:
        text = 0.5 if na else t
        overall = round(0.1 * f + 0.4 * v + 0.4 * text + 0.1 * a, 2)
        scores = dict(
            faithfulness=f,
            visual_correctness=v,
            text_accuracy=text,
            aesthetics=a,
            text_accuracy_na=na,
            overall=overall,
        )
        row.update(eval_success=True, scores=scores, error=None)
    return row


KA = "Knowledge-Anchored"
QA = "Quality-Anchored"

ROWS = [
    _row(KA, "landmark", "hard", f=1, v=0.5, t=1, a=1),  # 1
    _row(KA, "landmark", "easy", f=0.5, v=0, a=1, na=True),  # 2
    _row(KA, "person", "hard", f=1, v=1, t=0, a=0.5),  # 3
    _row(KA, "person", "hard", error="judge: HTTP 500 after 20 tries"),  # 4
    _row(KA, "landmark", "easy", error="missing generated image: 5.png", rendered=False),  # 5
    _row(KA, "person", "easy", f=0.5, v=0.5, a=0.5, na=True, type_key="meta"),  # 6
    _row(QA, "poster", "easy", f=1, v=1, t=1, a=1, type_key="tier"),  # 7
    _row(QA, "poster", "hard", f=0.5, v=0.5, t=0, a=0.5),  # 8
    _row(QA, "scene", "hard", f=1, v=0.5, a=1, na=True),  # 9
    _row(QA, "scene", "easy", error="judge reply lacks aesthetics"),  # 10
    _row(QA, "food", "easy", error="missing ground-truth image: case_00011.jpg"),  # 11
]


for _number, _each in enumerate(ROWS, 1):
    _each["id"] = str(_number)


def _by_name(rows: list[dict[str, Any]], **options: Any) -> dict[str, SplitSummary]:
    return {summary.name: summary for summary in aggregate(rows, **options)}


def _figures(summary: SplitSummary) -> tuple[object, ...]:
    return (
        summary.count_eval_success,
        summary.denominator,
        summary.missing_or_failed,
        summary.faithfulness,
        summary.visual_correctness,
        summary.text_accuracy,
        summary.aesthetics,
        summary.overall,
        summary.overall_missing_zero,
    )


# Per-sample overalls of the judged rows (round(0.1f + 0.4v + 0.4t + 0.1a, 2),
# text N/A stored as 0.5): 1: 0.8, 2: 0.35, 3: 0.55, 6: 0.5, 7: 1.0, 8: 0.3, 9: 0.6.
# Figures: (count_eval_success, denominator, missing_or_failed, F, V, T, A,
# overall, overall_missing_zero).

# --- summary.json / summary.csv: plain means of the stored values -------------


def test_split_names_and_order() -> None:
    assert [summary.name for summary in aggregate(ROWS)] == [
        WHOLE_SPLIT,
        f"eval_type:{KA}",
        f"eval_type:{QA}",
        "category:food",
        "category:landmark",
        "category:person",
        "category:poster",
        "category:scene",
        "difficulty:easy",
        "difficulty:hard",
    ]


def test_whole_set_pools_every_row() -> None:
    # Judged: rows 1 2 3 6 7 8 9 (7 of 11).
    # F = (1+.5+1+.5+1+.5+1)/7 = 5.5/7 = 0.785714   V = 4/7 = 0.571429
    # T stored, N/A as 0.5: (1+.5+0+.5+1+0+.5)/7 = 3.5/7 = 0.5   A = 5.5/7
    # overall = mean of the sample overalls = 4.1/7 = 0.585714
    # missing as zero: round(0.5857 * 7/11, 4) = 0.3727
    whole = _by_name(ROWS)[WHOLE_SPLIT]
    assert _figures(whole) == (7, 11, 4, 0.7857, 0.5714, 0.5, 0.7857, 0.5857, 0.3727)


def test_total_cases_is_the_whole_sets_denominator_only() -> None:
    # 20 cases in the benchmark, 11 in the file: round(0.5857 * 7/20, 4) = 0.205.
    summaries = _by_name(ROWS, total_cases=20)
    assert _figures(summaries[WHOLE_SPLIT]) == (
        7, 20, 13, 0.7857, 0.5714, 0.5, 0.7857, 0.5857, 0.205,
    )  # fmt: skip
    assert summaries[f"eval_type:{KA}"].denominator == 6


def test_eval_type_splits() -> None:
    summaries = _by_name(ROWS)
    # Knowledge-Anchored: rows 1-6 (row 6 through meta.eval_type); judged 1 2 3 6.
    # F = .75  V = .5  A = .75  T stored = (1+.5+0+.5)/4 = .5
    # overall = (.8+.35+.55+.5)/4 = .55; missing as zero = .55*4/6 = 0.366667
    assert _figures(summaries[f"eval_type:{KA}"]) == (
        4, 6, 2, 0.75, 0.5, 0.5, 0.75, 0.55, 0.3667,
    )  # fmt: skip
    # Quality-Anchored: rows 7-11 (row 7 through tier); judged 7 8 9.
    # F = 2.5/3  V = 2/3  T stored = (1+0+.5)/3 = .5  A = 2.5/3
    # overall = (1+.3+.6)/3 = 0.633333; missing as zero = round(.6333*3/5, 4) = .38
    assert _figures(summaries[f"eval_type:{QA}"]) == (
        3, 5, 2, 0.8333, 0.6667, 0.5, 0.8333, 0.6333, 0.38,
    )  # fmt: skip


def test_category_splits_count_text_na_as_one_half() -> None:
    summaries = _by_name(ROWS)
    # landmark: rows 1 2 5, judged 1 2 (2 is N/A: 0.5). T = (1+.5)/2 = .75
    # (skipping N/A it would be 1.0). overall = (.8+.35)/2 = .575; * 2/3 = 0.383333
    assert _figures(summaries["category:landmark"]) == (
        2, 3, 1, 0.75, 0.25, 0.75, 1.0, 0.575, 0.3833,
    )  # fmt: skip
    # person: rows 3 4 6, judged 3 6 (6 is N/A). T = (0+.5)/2 = .25 (not 0).
    # overall = (.55+.5)/2 = .525; * 2/3 = .35
    assert _figures(summaries["category:person"]) == (
        2, 3, 1, 0.75, 0.75, 0.25, 0.5, 0.525, 0.35,
    )  # fmt: skip
    # poster: rows 7 8, both judged. overall = (1+.3)/2 = .65
    assert _figures(summaries["category:poster"]) == (
        2, 2, 0, 0.75, 0.75, 0.5, 0.75, 0.65, 0.65,
    )  # fmt: skip
    # scene: rows 9 10, judged 9 (N/A). overall .6; * 1/2 = .3
    assert _figures(summaries["category:scene"]) == (
        1, 2, 1, 1.0, 0.5, 0.5, 1.0, 0.6, 0.3,
    )  # fmt: skip
    # food: row 11 only, not judged: zeros, as the original writes.
    assert _figures(summaries["category:food"]) == (
        0, 1, 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    )  # fmt: skip


def test_difficulty_splits() -> None:
    summaries = _by_name(ROWS)
    # easy: rows 2 5 6 7 10 11, judged 2 6 7. F = 2/3, V = 1.5/3, T = (.5+.5+1)/3,
    # A = 2.5/3, overall = (.35+.5+1)/3 = 0.616667; round(.6167 * 3/6, 4) = .3084
    assert _figures(summaries["difficulty:easy"]) == (
        3, 6, 3, 0.6667, 0.5, 0.6667, 0.8333, 0.6167, 0.3084,
    )  # fmt: skip
    # hard: rows 1 3 4 8 9, judged 1 3 8 9. T = (1+0+0+.5)/4 = .375,
    # overall = (.8+.55+.3+.6)/4 = .5625; * 4/5 = .45
    assert _figures(summaries["difficulty:hard"]) == (
        4, 5, 1, 0.875, 0.625, 0.375, 0.75, 0.5625, 0.45,
    )  # fmt: skip


def test_summary_json_layout_and_case_ids() -> None:
    layout = summary_dict(ROWS, aggregate(ROWS), eval_json="/abs/results_eval.json")
    assert list(layout) == [
        "eval_json",
        "total_cases",
        "all",
        "by_eval_type",
        "by_category",
        "by_difficulty",
        "missing_case_ids",
        "failed_case_ids",
    ]
    assert layout["eval_json"] == "/abs/results_eval.json" and layout["total_cases"] == 11
    assert list(layout["all"]) == [
        "faithfulness",
        "visual_correctness",
        "text_accuracy",
        "aesthetics",
        "overall",
        "count_eval_success",
        "denominator",
        "missing_or_failed",
        "overall_missing_zero",
    ]
    assert list(layout["by_eval_type"]) == [KA, QA]
    assert layout["by_category"]["person"]["text_accuracy"] == 0.25
    # Row 5's render failed: missing. Rows 4, 10, 11 were rendered, not judged: failed.
    assert layout["missing_case_ids"] == ["5"]
    assert layout["failed_case_ids"] == ["4", "10", "11"]


def test_case_ids_prefer_meta_and_fall_back_to_the_image_on_disk(tmp_path: Any) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(b"png")
    rows = [
        {"id": "a", "meta": {"source_id": "src-a"}, "eval_success": False, "scores": None},
        {"id": "b", "image_status": "ok", "eval_success": False, "scores": None},
        {"id": "c", "image_path": str(image), "eval_success": False, "scores": None},
    ]
    layout = summary_dict(rows, aggregate(rows), eval_json="e")
    assert layout["missing_case_ids"] == ["src-a"] and layout["failed_case_ids"] == ["b", "c"]


def test_rows_without_a_split_value_join_unknown() -> None:
    rows = [_row(KA, "poster", f=1, v=1, t=1, a=1), _row(None, f=0, v=0, t=0, a=0)]
    rows.append({**_row(KA, f=0, v=0, t=0, a=0), "category": ""})
    summaries = _by_name(rows)
    assert set(summaries) == {
        WHOLE_SPLIT,
        f"eval_type:{KA}",
        "eval_type:unknown",
        "category:poster",
        "category:unknown",
        "difficulty:unknown",
    }
    assert summaries["category:unknown"].denominator == 2
    assert summaries["difficulty:unknown"].denominator == 3


def test_eval_type_reads_meta_first_then_the_field_then_tier() -> None:
    # The original's order for eval_type (category and difficulty read the field first).
    row = {**_row("top", f=1, v=1, t=1, a=1), "meta": {"eval_type": "meta"}, "tier": "tier"}
    assert aggregate([row], split_fields=("eval_type",))[1].name == "eval_type:meta"
    del row["meta"]
    assert aggregate([row], split_fields=("eval_type",))[1].name == "eval_type:top"
    del row["eval_type"]
    assert aggregate([row], split_fields=("eval_type",))[1].name == "eval_type:tier"
    row = {**_row(KA, "field", f=1, v=1, t=1, a=1), "meta": {"category": "meta"}}
    assert aggregate([row], split_fields=("category",))[1].name == "category:field"


def test_numeric_split_values_become_labels() -> None:
    row = {**_row(KA, f=1, v=1, t=1, a=1), "difficulty": 3}
    assert aggregate([row], split_fields=("difficulty",))[1].name == "difficulty:3"


def test_earlier_summary_rows_are_ignored() -> None:
    previous = [{"summary_type": OVERALL_SPLIT, "eval_type": KA, "count": 7}]
    assert aggregate([*ROWS, *previous]) == aggregate(ROWS)
    assert summary_rows([*ROWS, *previous]) == summary_rows(ROWS)


def test_each_figure_averages_the_rows_that_have_it() -> None:
    # The original averages each key over the judged rows where it is a number.
    good = _row(KA, f=1, v=1, t=1, a=1)
    rows: list[dict[str, Any]] = [
        good,
        {**good, "scores": {"faithfulness": 0}},
        {**good, "scores": None},
        {**good, "eval_success": "yes"},
    ]
    whole = aggregate(rows, split_fields=())[0]
    assert (whole.count_eval_success, whole.denominator, whole.missing_or_failed) == (2, 4, 2)
    assert (whole.faithfulness, whole.visual_correctness, whole.overall) == (0.5, 1.0, 1.0)
    assert whole.overall_missing_zero == 0.5


def test_no_rows() -> None:
    (whole,) = aggregate([])
    assert (whole.count_eval_success, whole.denominator, whole.overall) == (0, 0, 0.0)
    assert whole.overall_missing_zero == 0.0


# --- results_eval.json summary rows: text means skip N/A rows ---------------------


def test_results_eval_summary_rows() -> None:
    rows = summary_rows(ROWS)
    assert [row["summary_type"] for row in rows] == [
        f"eval_type:{KA}",
        f"eval_type:{QA}",
        OVERALL_SPLIT,
    ]
    assert all(list(row) == ["summary_type", "avg_scores", "count"] for row in rows)
    ka, qa, whole = (row["avg_scores"] for row in rows)
    # KA judged 1 2 3 6; T over the rows needing text, 1 3: (1+0)/2 = .5;
    # overall = round(.1*.75 + .4*.5 + .4*.5 + .1*.75, 4) = .55
    assert ka == {
        "faithfulness": 0.75,
        "visual_correctness": 0.5,
        "text_accuracy": 0.5,
        "aesthetics": 0.75,
        "overall": 0.55,
    }
    # QA judged 7 8 9; T over 7 8 = .5; the formula on the rounded means:
    # .1*.8333 + .4*.6667 + .4*.5 + .1*.8333 = 0.63334 -> 0.6333
    assert list(qa.values()) == [0.8333, 0.6667, 0.5, 0.8333, 0.6333]
    # All: T over 1 3 7 8 = 2/4; .1*.7857 + .4*.5714 + .2 + .1*.7857 = .5857
    assert list(whole.values()) == [0.7857, 0.5714, 0.5, 0.7857, 0.5857]
    assert [row["count"] for row in rows] == [4, 3, 7]


def test_the_two_aggregations_differ_on_text_na_rows() -> None:
    # Two N/A rows and two that need text (scored 0 and 0.5).
    rows = [
        _row(KA, f=1, v=0, a=1, na=True),
        _row(KA, f=1, v=0, a=1, na=True),
        _row(KA, f=1, v=0, t=0, a=1),
        _row(KA, f=1, v=0, t=0.5, a=1),
    ]
    # results_eval.json: T = (0 + .5)/2 = .25; overall = .1 + 0 + .1 + .1 = .3
    (_, whole_row) = summary_rows(rows)
    assert whole_row["avg_scores"]["text_accuracy"] == 0.25
    assert whole_row["avg_scores"]["overall"] == 0.3
    # summary.json: T = (.5 + .5 + 0 + .5)/4 = .375; sample overalls .4 .4 .2 .4 -> .35
    whole = aggregate(rows, split_fields=())[0]
    assert (whole.text_accuracy, whole.overall) == (0.375, 0.35)


def test_results_eval_overall_comes_from_the_rounded_means() -> None:
    # V = T = 2/3, F = A = 0: the means round to .6667, and the formula on
    # them gives .8 * .6667 = .53336 -> .5334 (the original's figure).
    rows = [
        _row(KA, f=0, v=1, t=1, a=0),
        _row(KA, f=0, v=1, t=1, a=0),
        _row(KA, f=0, v=0, t=0, a=0),
    ]
    assert summary_rows(rows)[-1]["avg_scores"]["overall"] == 0.5334
    # summary.json averages the sample overalls instead: (.8 + .8 + 0)/3 = .5333
    assert aggregate(rows, split_fields=())[0].overall == 0.5333


def test_an_eval_type_without_judged_rows_gets_zeros() -> None:
    rows = [_row(QA, error="judge failed"), _row(KA, f=1, v=1, t=1, a=1)]
    first = summary_rows(rows)[1]
    assert first == {
        "summary_type": f"eval_type:{QA}",
        "avg_scores": dict.fromkeys(
            ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics", "overall"), 0.0
        ),
        "count": 0,
    }
