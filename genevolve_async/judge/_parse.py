"""Tolerant parsing of the judge's reply into raw scores.

Judges are asked for one bare JSON object but often wrap it in a code fence,
add prose around it, leave trailing commas, or drift into `key: value` lines.
`parse_judge_reply` first looks for the JSON object that carries the score
fields, then pulls any field it still lacks out of the text one by one.
Values are returned as written: clipping and rounding belong to scoring.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..protocol._json import iter_objects

__all__ = ["SCORE_FIELDS", "JudgeParseError", "JudgeScores", "parse_judge_reply"]

SCORE_FIELDS = ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics")
"""The four numeric criteria, in the order the rubric lists them."""

_NA_FIELD = "text_accuracy_na"
_TEXT_NA_SCORE = 0.5
_EXCERPT_CHARS = 120

_NUMBER = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+))"
# Between a field name and its value: optional closing quote or Markdown bold,
# a colon or equals sign, then optional quotes, bold and spaces in one class
# (two quantifiers over spaces side by side backtrack quadratically).
_SEPARATOR = r"[\"'*]*\s*[:=][\s\"'*]*"
_NA_WORDS = frozenset({"n/a", "na", "none", "null", "not applicable"})
_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0"})
_RATIONALE = re.compile(r"[\"']?rationale[\"']?\s*:\s*\"((?:[^\"\\]|\\.)*)\"", re.IGNORECASE)
_NA_FLAG = re.compile(
    r"(?<![A-Za-z_])text[ _-]?accuracy[ _-]?n/?a(?![A-Za-z_])"
    + _SEPARATOR
    + r"(true|false|yes|no|1|0)\b",
    re.IGNORECASE,
)


class JudgeParseError(ValueError):
    """The judge's reply holds no usable scores."""


@dataclass(frozen=True, kw_only=True, slots=True)
class JudgeScores:
    """The judge's verdict on one sample, as written (not clipped or rounded)."""

    faithfulness: float
    """Does the generated image carry out the request."""
    visual_correctness: float
    """Identity and stable visual features, against the ground truth."""
    text_accuracy: float
    """Readable, correct text; 0.5 when `text_accuracy_na` is set and no score was given."""
    aesthetics: float
    """Quality of the generated image on its own."""
    text_accuracy_na: bool = False
    """The request needs no readable text, so text accuracy does not apply."""
    rationale: str = ""
    """The judge's justification, empty when it gave none."""


def parse_judge_reply(text: str) -> JudgeScores:
    """Read the judge's scores out of its reply.

    The JSON object with the most score fields wins (the last one on a tie,
    since judges that think aloud put their final verdict last); code fences,
    text around the object, trailing commas and single-quoted keys are
    tolerated. Fields the object lacks, or every field when there is no
    usable object, are then searched for as `name: value` text, again taking
    the last occurrence. A `text_accuracy` of "N/A" or null counts as
    `text_accuracy_na: true` when the flag itself is absent.

    Args:
        text: The judge's reply (the assistant message content).

    Returns:
        The scores as written, unclipped.

    Raises:
        JudgeParseError: No score field was found, or some of the four are
            missing (`text_accuracy` may be missing when the request needs
            no text: it then defaults to 0.5).
    """
    scores: dict[str, float] = {}
    na_flag: bool | None = None
    rationale = ""
    obj = _best_object(text)
    if obj is not None:
        scores, na_flag, rationale = _read_object(obj)
    for field in SCORE_FIELDS:
        if field not in scores:
            value = _search_score(text, field)
            if value is not None:
                scores[field] = value
    if na_flag is None:
        na_flag = _search_na_flag(text)
    if not rationale:
        rationale = _search_rationale(text)
    if not scores:
        raise JudgeParseError(f"no scores in judge reply: {_excerpt(text)}")
    text_na = bool(na_flag)
    if "text_accuracy" not in scores and text_na:
        scores["text_accuracy"] = _TEXT_NA_SCORE
    missing = [field for field in SCORE_FIELDS if field not in scores]
    if missing:
        # A partial verdict (often a reply cut off by the token limit) is
        # refused rather than filled with guesses: the caller can ask again.
        raise JudgeParseError(f"judge reply lacks {', '.join(missing)}: {_excerpt(text)}")
    return JudgeScores(
        faithfulness=scores["faithfulness"],
        visual_correctness=scores["visual_correctness"],
        text_accuracy=scores["text_accuracy"],
        aesthetics=scores["aesthetics"],
        text_accuracy_na=text_na,
        rationale=rationale,
    )


def _best_object(text: str) -> dict[str, Any] | None:
    """Return the JSON object in `text` with the most score fields, if any.

    Objects are visited inner ones before outer ones, in text order, so the
    last one on a tie is the judge's final verdict.
    """
    best: dict[str, Any] | None = None
    best_count = 0
    for value in iter_objects(text, single_quotes=True):
        for obj in _dicts_inner_first(value):
            keys = {_normalize_key(key) for key in obj if isinstance(key, str)}
            count = len(keys.intersection(SCORE_FIELDS)) + (_NA_FIELD in keys)
            if count and count >= best_count:
                best, best_count = obj, count
    return best


def _dicts_inner_first(value: Any) -> list[dict[str, Any]]:
    """Every object inside a parsed value, children before parents (no recursion)."""
    out: list[dict[str, Any]] = []
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, expanded = stack.pop()
        if expanded:
            out.append(item)
            continue
        if isinstance(item, dict):
            stack.append((item, True))
            stack.extend((child, False) for child in reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend((child, False) for child in reversed(item))
    return out


def _read_object(obj: Mapping[str, Any]) -> tuple[dict[str, float], bool | None, str]:
    """Pick the scores, the N/A flag and the rationale out of a parsed object."""
    fields = {_normalize_key(key): value for key, value in obj.items()}
    scores: dict[str, float] = {}
    for field in SCORE_FIELDS:
        score = _as_score(fields.get(field))
        if score is not None:
            scores[field] = score
    na_flag = _as_flag(fields.get(_NA_FIELD))
    if na_flag is None and "text_accuracy" in fields and _is_na_word(fields["text_accuracy"]):
        na_flag = True
    rationale = fields.get("rationale")
    return scores, na_flag, "" if rationale is None else str(rationale).strip()


def _normalize_key(key: str) -> str:
    return re.sub(r"[\s-]+", "_", key.strip().lower())


def _as_score(value: object) -> float | None:
    # bool is an int subclass, but `true` is not a score.
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*" + _NUMBER + r"\s*", value)
        if match is None:
            return None
        number = float(match.group(1))
    else:
        return None
    # json.loads accepts NaN and Infinity, which would poison every mean.
    return number if math.isfinite(number) else None


def _as_flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1 if value in (0, 1) else None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return None


def _is_na_word(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NA_WORDS)


def _search_score(text: str, field: str) -> float | None:
    """Return the last `field: number` value written in `text`, if any."""
    name = field.replace("_", r"[ _-]?")
    # The lookarounds keep `text_accuracy` from matching `text_accuracy_na`.
    pattern = rf"(?<![A-Za-z_]){name}(?![A-Za-z_]){_SEPARATOR}{_NUMBER}"
    matches = re.findall(pattern, text, flags=re.IGNORECASE)
    if not matches:
        return None
    number = float(matches[-1])
    return number if math.isfinite(number) else None


def _search_na_flag(text: str) -> bool | None:
    matches = _NA_FLAG.findall(text)
    if not matches:
        return None
    return matches[-1].lower() in _TRUE_WORDS


def _search_rationale(text: str) -> str:
    matches = _RATIONALE.findall(text)
    if not matches:
        return ""
    raw = matches[-1]
    try:
        decoded = json.loads(f'"{raw}"')
    except ValueError:
        return str(raw).strip()
    return str(decoded).strip()


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > _EXCERPT_CHARS:
        flat = flat[:_EXCERPT_CHARS] + "..."
    return repr(flat)
