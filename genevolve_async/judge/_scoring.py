"""Paper-compatible score normalisation, per sample and per split.

Per sample, each score is clipped to [0, 1] and rounded to 2 decimals; a
request that needs no text gets text accuracy 0.5, and the overall score is
`0.1 f + 0.4 v + 0.4 t + 0.1 a`, rounded to 2.

The original evaluator aggregates in two ways, each written in its own place,
and both are reproduced here number for number:

- `aggregate` (summary.json, summary.csv, the terminal table): plain means,
  rounded to 4, of each stored per-sample value over the successfully judged
  samples; a text-N/A sample counts with its stored 0.5, and `overall` is the
  mean of the per-sample overalls.
- `mean_scores` (the summary rows of results_eval.json): means of f, v, a;
  the text mean skips N/A samples (0.5 when every sample is N/A); each mean
  rounded to 4, then the overall formula on those rounded means, rounded to 4.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypedDict

from ._parse import SCORE_FIELDS, JudgeScores

__all__ = [
    "DEFAULT_SPLIT_FIELDS",
    "OVERALL_SPLIT",
    "SCORE_WEIGHTS",
    "SUMMARY_SCORE_FIELDS",
    "WHOLE_SPLIT",
    "SampleScores",
    "SplitSummary",
    "aggregate",
    "judged_scores",
    "mean_scores",
    "normalize_scores",
    "overall_score",
    "split_value",
]

SCORE_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"faithfulness": 0.1, "visual_correctness": 0.4, "text_accuracy": 0.4, "aesthetics": 0.1}
)
"""Weight of each criterion in the overall score (they sum to 1)."""

OVERALL_SPLIT = "overall_avg"
"""Name of the results_eval.json summary row (and groups split) pooling every row."""

WHOLE_SPLIT = "all"
"""Name of the split pooling every row in summary.json and summary.csv."""

SUMMARY_SCORE_FIELDS = (*SCORE_FIELDS, "overall")
"""The five figures of a summary, in the original's order."""

DEFAULT_SPLIT_FIELDS = ("eval_type", "category", "difficulty")
"""Row fields that define the per-value splits, in reporting order."""

_TEXT_NA_SCORE = 0.5
_SAMPLE_DIGITS = 2
_SUMMARY_DIGITS = 4


class SampleScores(TypedDict):
    """One sample's normalised scores: the `scores` object of a result row."""

    faithfulness: float
    visual_correctness: float
    text_accuracy: float
    aesthetics: float
    text_accuracy_na: bool
    overall: float


@dataclass(frozen=True, kw_only=True, slots=True)
class SplitSummary:
    """Aggregate figures for one split of the result rows.

    The figures are those of the original's summary.json: plain means over
    the successfully judged samples, 0.0 when there are none.
    """

    name: str
    """`all`, or `field:value` such as `eval_type:Knowledge-Anchored`."""
    count_eval_success: int
    """Samples judged successfully: the denominator of the means."""
    denominator: int
    """Every row of the split (for `all`: `--total-cases` when given)."""
    faithfulness: float
    """Mean faithfulness, rounded to 4 decimals."""
    visual_correctness: float
    """Mean visual correctness, rounded to 4 decimals."""
    text_accuracy: float
    """Mean stored text accuracy (N/A samples count as their 0.5), rounded to 4."""
    aesthetics: float
    """Mean aesthetics, rounded to 4 decimals."""
    overall: float
    """Mean of the per-sample overall scores, rounded to 4 decimals."""
    overall_missing_zero: float
    """`overall * count_eval_success / denominator`: failed samples count as zero."""

    @property
    def missing_or_failed(self) -> int:
        """Rows of the split without a successful judgement."""
        return max(0, self.denominator - self.count_eval_success)


def overall_score(
    *,
    faithfulness: float,
    visual_correctness: float,
    text_accuracy: float,
    aesthetics: float,
    ndigits: int | None = None,
) -> float:
    """Return the weighted overall score `0.1 f + 0.4 v + 0.4 t + 0.1 a`.

    Args:
        faithfulness: Faithfulness score or mean.
        visual_correctness: Visual-correctness score or mean.
        text_accuracy: Text-accuracy score or mean.
        aesthetics: Aesthetics score or mean.
        ndigits: Decimals to round to; None leaves the value unrounded.

    Returns:
        The overall score.
    """
    # Summed left to right in this order, as the original does, so that
    # rounding at the last decimal lands on the same side.
    value = (
        SCORE_WEIGHTS["faithfulness"] * faithfulness
        + SCORE_WEIGHTS["visual_correctness"] * visual_correctness
        + SCORE_WEIGHTS["text_accuracy"] * text_accuracy
        + SCORE_WEIGHTS["aesthetics"] * aesthetics
    )
    return value if ndigits is None else round(value, ndigits)


def normalize_scores(scores: JudgeScores) -> SampleScores:
    """Turn a judge verdict into the sample's reported scores.

    Each score is clipped to [0, 1] and rounded to 2 decimals. When the
    request needs no text, text accuracy is set to 0.5 whatever the judge
    wrote. The overall score is the weighted formula, rounded to 2.

    Args:
        scores: The parsed, unclipped verdict.

    Returns:
        A JSON-ready mapping with the four scores, `text_accuracy_na` and
        `overall`.
    """
    faithfulness = _clip(scores.faithfulness)
    visual = _clip(scores.visual_correctness)
    text = _TEXT_NA_SCORE if scores.text_accuracy_na else _clip(scores.text_accuracy)
    aesthetics = _clip(scores.aesthetics)
    overall = overall_score(
        faithfulness=faithfulness,
        visual_correctness=visual,
        text_accuracy=text,
        aesthetics=aesthetics,
        ndigits=_SAMPLE_DIGITS,
    )
    return {
        "faithfulness": faithfulness,
        "visual_correctness": visual,
        "text_accuracy": text,
        "aesthetics": aesthetics,
        "text_accuracy_na": scores.text_accuracy_na,
        "overall": overall,
    }


def aggregate(
    rows: Iterable[Mapping[str, Any]],
    *,
    split_fields: Sequence[str] = DEFAULT_SPLIT_FIELDS,
    total_cases: int | None = None,
) -> list[SplitSummary]:
    """Summarise result rows as a whole and per split, as summary.json does.

    A row counts as judged when its `eval_success` is true and its `scores`
    is a mapping; each figure is the plain mean of that key's numeric values
    over the judged rows (0.0 when there are none). Rows that carry a
    `summary_type` are summary rows and are skipped, so a whole
    `results_eval.json` can be summarised again.

    A row's split value is the field itself, else its nested `meta` value;
    for `eval_type` the `meta` value comes first and `tier` is a fallback,
    as in the original. A row without a value joins the split `unknown`.

    Args:
        rows: Result rows, each with `eval_success` and `scores`.
        split_fields: Fields to split by, in reporting order.
        total_cases: Denominator of the whole set (`--total-cases`); the row
            count when None or 0. Each split's denominator is its row count.

    Returns:
        The `all` summary (pooling every row, not averaging the split
        figures), then for each field one summary per value, values sorted.
    """
    sample_rows = [row for row in rows if "summary_type" not in row]
    summaries = [_summarize(WHOLE_SPLIT, sample_rows, total_cases or len(sample_rows))]
    for field in split_fields:
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for row in sample_rows:
            groups.setdefault(split_value(row, field), []).append(row)
        for value in sorted(groups):
            summaries.append(_summarize(f"{field}:{value}", groups[value], len(groups[value])))
    return summaries


def mean_scores(scores: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The `avg_scores` of a results_eval.json summary row.

    Args:
        scores: The `scores` mappings of the successfully judged samples.

    Returns:
        `faithfulness`, `visual_correctness`, `text_accuracy`, `aesthetics`
        and `overall`: means over the samples (text over those that need
        text, 0.5 when none do), rounded to 4, and the overall formula on
        those rounded means, rounded to 4. All 0.0 when `scores` is empty.
    """
    if not scores:
        return dict.fromkeys(SUMMARY_SCORE_FIELDS, 0.0)
    means = {field: _plain_mean(scores, field) for field in SCORE_FIELDS}
    text = [s for s in scores if not s.get("text_accuracy_na")]
    means["text_accuracy"] = _plain_mean(text, "text_accuracy", empty=_TEXT_NA_SCORE)
    means["overall"] = overall_score(
        faithfulness=means["faithfulness"],
        visual_correctness=means["visual_correctness"],
        text_accuracy=means["text_accuracy"],
        aesthetics=means["aesthetics"],
        ndigits=_SUMMARY_DIGITS,
    )
    return means


def judged_scores(row: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The row's `scores` when it was judged successfully, else None."""
    scores = row.get("scores")
    if row.get("eval_success") is True and isinstance(scores, Mapping):
        return scores
    return None


def split_value(row: Mapping[str, Any], field: str) -> str:
    """The row's label for `field`: the field, its `meta` value, else `unknown`."""
    meta = row.get("meta")
    nested: Mapping[str, Any] = meta if isinstance(meta, Mapping) else {}
    candidates: tuple[object, ...]
    if field == "eval_type":
        candidates = (nested.get(field), row.get(field), row.get("tier"))
    else:
        candidates = (row.get(field), nested.get(field))
    for value in candidates:
        if value:  # the original skips empty and zero values the same way
            return str(value)
    return "unknown"


def _summarize(name: str, rows: Sequence[Mapping[str, Any]], denominator: int) -> SplitSummary:
    judged = [scores for scores in map(judged_scores, rows) if scores is not None]
    ok = len(judged)
    means = {field: _plain_mean(judged, field) for field in SUMMARY_SCORE_FIELDS}
    return SplitSummary(
        name=name,
        count_eval_success=ok,
        denominator=denominator,
        faithfulness=means["faithfulness"],
        visual_correctness=means["visual_correctness"],
        text_accuracy=means["text_accuracy"],
        aesthetics=means["aesthetics"],
        overall=means["overall"],
        overall_missing_zero=(
            round(means["overall"] * ok / denominator, _SUMMARY_DIGITS) if denominator else 0.0
        ),
    )


def _plain_mean(scores: Iterable[Mapping[str, Any]], field: str, *, empty: float = 0.0) -> float:
    # Plain left-to-right sums, as the original's: the same inputs give the
    # same floats, so the 4-decimal rounding lands the same way.
    values = [float(s[field]) for s in scores if isinstance(s.get(field), int | float)]
    return round(sum(values) / len(values), _SUMMARY_DIGITS) if values else empty


def _clip(value: float) -> float:
    # NaN would slip through min/max untouched; score it as zero.
    if math.isnan(value):
        return 0.0
    return round(min(max(value, 0.0), 1.0), _SAMPLE_DIGITS)
