"""Paper-compatible score normalisation, per sample and per split.

Per sample, each score is clipped to [0, 1] and rounded to 2 decimals; a
request that needs no text gets text accuracy 0.5, and the overall score is
`0.1 f + 0.4 v + 0.4 t + 0.1 a`, rounded to 2.

Per split, the four criteria are averaged over the successfully judged
samples (text accuracy over those that need text only) and the same weighted
formula is applied to the means. The means and the overall are rounded to 4
decimals for reporting, but the overall and `overall_missing_zero` are
computed from the unrounded means, so rounding happens once.
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
    "SampleScores",
    "SplitSummary",
    "aggregate",
    "normalize_scores",
    "overall_score",
]

SCORE_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"faithfulness": 0.1, "visual_correctness": 0.4, "text_accuracy": 0.4, "aesthetics": 0.1}
)
"""Weight of each criterion in the overall score (they sum to 1)."""

OVERALL_SPLIT = "overall_avg"
"""Name of the split that pools every row."""

DEFAULT_SPLIT_FIELDS = ("eval_type", "category", "difficulty")
"""Row fields that define the per-value splits, in reporting order."""

_TEXT_NA_SCORE = 0.5
_SAMPLE_DIGITS = 2
_SUMMARY_DIGITS = 4
# Older result files name the benchmark track `tier` instead of `eval_type`.
_FIELD_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType({"eval_type": ("tier",)})


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

    The means and `overall` are None when no sample of the split was judged
    successfully; `overall_missing_zero` is then 0.0, as every sample counts
    as zero.
    """

    name: str
    """`overall_avg`, or `field:value` such as `eval_type:Knowledge-Anchored`."""
    count_eval_success: int
    """Samples judged successfully: the denominator of the means."""
    denominator: int
    """Every row of the split, whatever its outcome."""
    faithfulness: float | None
    """Mean faithfulness, rounded to 4 decimals."""
    visual_correctness: float | None
    """Mean visual correctness, rounded to 4 decimals."""
    text_accuracy: float | None
    """Mean text accuracy over samples that need text (0.5 when none do), rounded to 4."""
    aesthetics: float | None
    """Mean aesthetics, rounded to 4 decimals."""
    overall: float | None
    """The weighted formula on the unrounded means, rounded to 4 decimals."""
    overall_missing_zero: float
    """`overall * count_eval_success / denominator`: failed samples count as zero."""

    @property
    def missing_or_failed(self) -> int:
        """Rows of the split without a successful judgement."""
        return self.denominator - self.count_eval_success


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
    value = math.fsum(
        (
            SCORE_WEIGHTS["faithfulness"] * faithfulness,
            SCORE_WEIGHTS["visual_correctness"] * visual_correctness,
            SCORE_WEIGHTS["text_accuracy"] * text_accuracy,
            SCORE_WEIGHTS["aesthetics"] * aesthetics,
        )
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
) -> list[SplitSummary]:
    """Summarise result rows as a whole and per split.

    A row counts as judged when its `eval_success` is true and its `scores`
    hold the four numeric criteria; every other row (failed judge call,
    missing image, no row scores) counts only in the denominators. Rows that
    carry a `summary_type` are earlier summary rows and are skipped, so a
    whole `results_eval.json` can be summarised again.

    A row's split value is read from the field itself, else from its nested
    `meta` mapping, else (for `eval_type` only) from `tier`. A row without a
    value for a field joins no split of that field.

    Args:
        rows: Result rows, each with `eval_success` and `scores`.
        split_fields: Fields to split by, in reporting order.

    Returns:
        The `overall_avg` summary (pooling every row, not averaging the split
        figures), then for each field one summary per value, values sorted.
    """
    sample_rows = [row for row in rows if "summary_type" not in row]
    summaries = [_summarize(OVERALL_SPLIT, sample_rows)]
    for field in split_fields:
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for row in sample_rows:
            value = _split_value(row, field)
            if value is not None:
                groups.setdefault(value, []).append(row)
        for value in sorted(groups):
            summaries.append(_summarize(f"{field}:{value}", groups[value]))
    return summaries


def _summarize(name: str, rows: Sequence[Mapping[str, Any]]) -> SplitSummary:
    judged = [scores for scores in map(_judged_scores, rows) if scores is not None]
    denominator = len(rows)
    ok = len(judged)
    if not ok:
        return SplitSummary(
            name=name,
            count_eval_success=0,
            denominator=denominator,
            faithfulness=None,
            visual_correctness=None,
            text_accuracy=None,
            aesthetics=None,
            overall=None,
            overall_missing_zero=0.0,
        )
    means = {field: _mean(scores[field] for scores in judged) for field in SCORE_FIELDS}
    text_scores = [scores["text_accuracy"] for scores in judged if not scores["text_accuracy_na"]]
    means["text_accuracy"] = _mean(text_scores) if text_scores else _TEXT_NA_SCORE
    overall = overall_score(
        faithfulness=means["faithfulness"],
        visual_correctness=means["visual_correctness"],
        text_accuracy=means["text_accuracy"],
        aesthetics=means["aesthetics"],
    )
    return SplitSummary(
        name=name,
        count_eval_success=ok,
        denominator=denominator,
        faithfulness=round(means["faithfulness"], _SUMMARY_DIGITS),
        visual_correctness=round(means["visual_correctness"], _SUMMARY_DIGITS),
        text_accuracy=round(means["text_accuracy"], _SUMMARY_DIGITS),
        aesthetics=round(means["aesthetics"], _SUMMARY_DIGITS),
        overall=round(overall, _SUMMARY_DIGITS),
        overall_missing_zero=round(overall * ok / denominator, _SUMMARY_DIGITS),
    )


def _judged_scores(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the row's four scores and N/A flag, or None when it was not judged."""
    scores = row.get("scores")
    if row.get("eval_success") is not True or not isinstance(scores, Mapping):
        return None
    judged: dict[str, Any] = {}
    for field in SCORE_FIELDS:
        value = scores.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        judged[field] = float(value)
    judged["text_accuracy_na"] = scores.get("text_accuracy_na") is True
    return judged


def _split_value(row: Mapping[str, Any], field: str) -> str | None:
    meta = row.get("meta")
    nested = meta if isinstance(meta, Mapping) else {}
    for key in (field, *_FIELD_ALIASES.get(field, ())):
        for source in (row, nested):
            value = _as_label(source.get(key))
            if value is not None:
                return value
    return None


def _as_label(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float):
        return str(value)
    return None


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return math.fsum(items) / len(items)


def _clip(value: float) -> float:
    # NaN would slip through min/max untouched; score it as zero.
    if math.isnan(value):
        return 0.0
    return round(min(max(value, 0.0), 1.0), _SAMPLE_DIGITS)
