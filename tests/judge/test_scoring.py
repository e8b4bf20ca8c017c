from __future__ import annotations

from typing import Any

import pytest

from genevolve_async.judge import (
    OVERALL_SPLIT,
    SCORE_WEIGHTS,
    JudgeScores,
    SplitSummary,
    aggregate,
    normalize_scores,
    overall_score,
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


def test_table_1_oracle_through_aggregate() -> None:
    # One judged sample per row whose scores are the table's means: the
    # aggregate overall must reproduce the table.
    rows = [_row("x", f=0.7970, v=0.3832, t=0.6218, a=0.9222)]
    assert aggregate(rows, split_fields=())[0].overall == 0.5739


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
) -> dict[str, Any]:
    """A results_eval.json row; no `f` means the sample was not judged."""
    row: dict[str, Any] = {"question": "..."}
    if eval_type is not None:
        if type_key == "meta":
            row["meta"] = {"eval_type": eval_type}
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
    _row(KA, "landmark", "easy", error="missing generated image: 5.png"),  # 5
    _row(KA, "person", "easy", f=0.5, v=0.5, a=0.5, na=True, type_key="meta"),  # 6
    _row(QA, "poster", "easy", f=1, v=1, t=1, a=1, type_key="tier"),  # 7
    _row(QA, "poster", "hard", f=0.5, v=0.5, t=0, a=0.5),  # 8
    _row(QA, "scene", "hard", f=1, v=0.5, a=1, na=True),  # 9
    _row(QA, "scene", "easy", error="judge reply lacks aesthetics"),  # 10
    _row(QA, "food", "easy", error="missing ground-truth image: case_00011.jpg"),  # 11
]


def _by_name(rows: list[dict[str, Any]]) -> dict[str, SplitSummary]:
    return {summary.name: summary for summary in aggregate(rows)}


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


def test_split_names_and_order() -> None:
    assert [summary.name for summary in aggregate(ROWS)] == [
        OVERALL_SPLIT,
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
    # F = (1+.5+1+.5+1+.5+1)/7 = 5.5/7 = 0.785714
    # V = (.5+0+1+.5+1+.5+.5)/7 = 4/7 = 0.571429
    # T over the rows needing text, 1 3 7 8: (1+0+1+0)/4 = 0.5
    # A = (1+1+.5+.5+1+.5+1)/7 = 5.5/7 = 0.785714
    # overall = 0.1*5.5/7 + 0.4*4/7 + 0.4*0.5 + 0.1*5.5/7 = 41/70 = 0.585714
    # missing as zero: 41/70 * 7/11 = 41/110 = 0.372727
    whole = _by_name(ROWS)[OVERALL_SPLIT]
    assert _figures(whole) == (7, 11, 4, 0.7857, 0.5714, 0.5, 0.7857, 0.5857, 0.3727)


def test_whole_set_is_not_the_mean_of_the_track_means() -> None:
    summaries = _by_name(ROWS)
    track_overalls = [summaries[f"eval_type:{track}"].overall for track in (KA, QA)]
    assert track_overalls == [0.55, 0.6333]
    # (0.55 + 0.6333) / 2 = 0.5917, while pooling the rows gives 0.5857.
    assert summaries[OVERALL_SPLIT].overall == 0.5857


def test_eval_type_splits() -> None:
    summaries = _by_name(ROWS)
    # Knowledge-Anchored: rows 1-6 (row 6 through meta.eval_type); judged 1 2 3 6.
    # F = (1+.5+1+.5)/4 = .75   V = (.5+0+1+.5)/4 = .5   A = (1+1+.5+.5)/4 = .75
    # T over rows 1 3 (2 and 6 need no text) = (1+0)/2 = .5
    # overall = .075 + .2 + .2 + .075 = .55; missing as zero = .55*4/6 = 0.366667
    assert _figures(summaries[f"eval_type:{KA}"]) == (
        4, 6, 2, 0.75, 0.5, 0.5, 0.75, 0.55, 0.3667,
    )  # fmt: skip
    # Quality-Anchored: rows 7-11 (row 7 through tier); judged 7 8 9.
    # F = (1+.5+1)/3 = 0.833333   V = (1+.5+.5)/3 = 0.666667   A = (1+.5+1)/3
    # T over rows 7 8 (9 needs no text) = (1+0)/2 = .5
    # overall = .1*2.5/3 + .4*2/3 + .4*.5 + .1*2.5/3 = 19/30 = 0.633333
    # missing as zero = 19/30 * 3/5 = 0.38
    assert _figures(summaries[f"eval_type:{QA}"]) == (
        3, 5, 2, 0.8333, 0.6667, 0.5, 0.8333, 0.6333, 0.38,
    )  # fmt: skip


def test_category_splits() -> None:
    summaries = _by_name(ROWS)
    # landmark: rows 1 2 5, judged 1 2. F = 1.5/2 = .75, V = .5/2 = .25, A = 1,
    # T over row 1 only = 1. overall = .075 + .1 + .4 + .1 = .675; * 2/3 = .45
    assert _figures(summaries["category:landmark"]) == (
        2, 3, 1, 0.75, 0.25, 1.0, 1.0, 0.675, 0.45,
    )  # fmt: skip
    # person: rows 3 4 6, judged 3 6. F = .75, V = .75, A = .5, T over row 3 = 0.
    # overall = .075 + .3 + 0 + .05 = .425; * 2/3 = 0.283333
    assert _figures(summaries["category:person"]) == (
        2, 3, 1, 0.75, 0.75, 0.0, 0.5, 0.425, 0.2833,
    )  # fmt: skip
    # poster: rows 7 8, both judged. F = .75, V = .75, T = .5, A = .75.
    # overall = .075 + .3 + .2 + .075 = .65; * 2/2 = .65
    assert _figures(summaries["category:poster"]) == (
        2, 2, 0, 0.75, 0.75, 0.5, 0.75, 0.65, 0.65,
    )  # fmt: skip
    # scene: rows 9 10, judged 9, which needs no text, so T = 0.5 by rule.
    # overall = .1 + .2 + .2 + .1 = .6; * 1/2 = .3
    assert _figures(summaries["category:scene"]) == (
        1, 2, 1, 1.0, 0.5, 0.5, 1.0, 0.6, 0.3,
    )  # fmt: skip
    # food: row 11 only, not judged: no means, every sample counts as zero.
    assert _figures(summaries["category:food"]) == (
        0, 1, 1, None, None, None, None, None, 0.0,
    )  # fmt: skip


def test_difficulty_splits() -> None:
    summaries = _by_name(ROWS)
    # easy: rows 2 5 6 7 10 11, judged 2 6 7. F = (.5+.5+1)/3 = 0.666667,
    # V = (0+.5+1)/3 = .5, A = (1+.5+1)/3 = 0.833333, T over row 7 = 1.
    # overall = .1*2/3 + .2 + .4 + .1*2.5/3 = .75; * 3/6 = .375
    assert _figures(summaries["difficulty:easy"]) == (
        3, 6, 3, 0.6667, 0.5, 1.0, 0.8333, 0.75, 0.375,
    )  # fmt: skip
    # hard: rows 1 3 4 8 9, judged 1 3 8 9. F = 3.5/4 = .875, V = 2.5/4 = .625,
    # A = 3/4 = .75, T over rows 1 3 8 = (1+0+0)/3 = 0.333333.
    # overall = .0875 + .25 + .4/3 + .075 = 0.545833; * 4/5 = 0.436667
    assert _figures(summaries["difficulty:hard"]) == (
        4, 5, 1, 0.875, 0.625, 0.3333, 0.75, 0.5458, 0.4367,
    )  # fmt: skip


def test_overall_comes_from_unrounded_means() -> None:
    # V = T = 2/3, F = A = 0. Unrounded: 0.8 * 2/3 = 0.533333 -> 0.5333.
    # The formula on the rounded means would give 0.8 * 0.6667 = 0.53336 -> 0.5334.
    rows = [
        _row(KA, f=0, v=1, t=1, a=0),
        _row(KA, f=0, v=1, t=1, a=0),
        _row(KA, f=0, v=0, t=0, a=0),
    ]
    whole = aggregate(rows, split_fields=())[0]
    assert (whole.visual_correctness, whole.text_accuracy) == (0.6667, 0.6667)
    assert whole.overall == 0.5333


def test_earlier_summary_rows_are_ignored() -> None:
    previous = [{"summary_type": OVERALL_SPLIT, "eval_type": KA, "count_eval_success": 7}]
    assert aggregate([*ROWS, *previous]) == aggregate(ROWS)


def test_rows_without_usable_scores_count_as_failed() -> None:
    good = _row(KA, f=1, v=1, t=1, a=1)
    broken: list[dict[str, Any]] = [
        {**good, "scores": None},
        {**good, "scores": {"faithfulness": 1}},
        {**good, "scores": {**good["scores"], "aesthetics": True}},
        {**good, "scores": {**good["scores"], "aesthetics": "1"}},
        {**good, "eval_success": "yes"},
        {key: value for key, value in good.items() if key != "eval_success"},
    ]
    whole = aggregate([good, *broken], split_fields=())[0]
    assert (whole.count_eval_success, whole.denominator, whole.missing_or_failed) == (1, 7, 6)
    assert whole.overall == 1.0
    # 1.0 * 1/7 = 0.142857
    assert whole.overall_missing_zero == 0.1429


def test_rows_without_a_split_value_join_no_split() -> None:
    rows = [_row(KA, "poster", f=1, v=1, t=1, a=1), _row(None, f=0, v=0, t=0, a=0)]
    rows.append({**_row(KA, f=0, v=0, t=0, a=0), "category": "  "})
    summaries = {summary.name: summary for summary in aggregate(rows)}
    assert set(summaries) == {OVERALL_SPLIT, f"eval_type:{KA}", "category:poster"}
    assert summaries[OVERALL_SPLIT].denominator == 3
    assert summaries[f"eval_type:{KA}"].denominator == 2


def test_eval_type_field_wins_over_meta_and_tier() -> None:
    row = {**_row("top", f=1, v=1, t=1, a=1), "meta": {"eval_type": "meta"}, "tier": "tier"}
    assert [s.name for s in aggregate([row], split_fields=("eval_type",))][1:] == ["eval_type:top"]
    del row["eval_type"]
    assert aggregate([row], split_fields=("eval_type",))[1].name == "eval_type:meta"


def test_numeric_split_values_become_labels() -> None:
    row = {**_row(KA, f=1, v=1, t=1, a=1), "difficulty": 3}
    assert aggregate([row], split_fields=("difficulty",))[1].name == "difficulty:3"


def test_custom_split_fields() -> None:
    names = [summary.name for summary in aggregate(ROWS, split_fields=("difficulty",))]
    assert names == [OVERALL_SPLIT, "difficulty:easy", "difficulty:hard"]


def test_no_rows() -> None:
    (whole,) = aggregate([])
    assert (whole.count_eval_success, whole.denominator, whole.overall) == (0, 0, None)
    assert whole.overall_missing_zero == 0.0
