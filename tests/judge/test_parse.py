from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings

from genevolve_async.judge import SCORE_FIELDS, JudgeParseError, JudgeScores, parse_judge_reply
from tests._hostile import ADVERSARIAL_UNITS, LINEAR, adversarial, growth, replies


def test_bare_json_object() -> None:
    reply = (
        '{"rationale": "Right tower, sign misspelt.", "faithfulness": 1,'
        ' "visual_correctness": 0.5, "text_accuracy": 0, "aesthetics": 1,'
        ' "text_accuracy_na": false}'
    )
    assert parse_judge_reply(reply) == JudgeScores(
        faithfulness=1.0,
        visual_correctness=0.5,
        text_accuracy=0.0,
        aesthetics=1.0,
        text_accuracy_na=False,
        rationale="Right tower, sign misspelt.",
    )


def test_fenced_json_with_trailing_commas_and_text_around() -> None:
    reply = """Here is my evaluation of the two images.

```json
{
  "rationale": "Generic bridge, not the requested one, so {identity} fails.",
  "faithfulness": 0.5,
  "visual_correctness": 0,
  "text_accuracy": 0.5,
  "aesthetics": 1,
  "text_accuracy_na": true,
}
```

Let me know if you need more detail."""
    scores = parse_judge_reply(reply)
    assert scores.faithfulness == 0.5
    assert scores.visual_correctness == 0.0
    assert scores.text_accuracy == 0.5
    assert scores.aesthetics == 1.0
    assert scores.text_accuracy_na is True
    # Braces and commas inside strings are left alone.
    assert scores.rationale == "Generic bridge, not the requested one, so {identity} fails."


def test_trailing_comma_in_a_nested_list() -> None:
    reply = (
        '{"faithfulness": 1, "visual_correctness": 1, "text_accuracy": 1,'
        ' "aesthetics": 0.5, "notes": ["a", "b",],}'
    )
    assert parse_judge_reply(reply).aesthetics == 0.5


def test_picks_the_object_with_the_score_fields() -> None:
    reply = (
        'Context: {"sample": "7"}. Verdict: {"faithfulness": 0, "visual_correctness": 0.5,'
        ' "text_accuracy": 1, "aesthetics": 0.5, "rationale": "ok"}'
    )
    scores = parse_judge_reply(reply)
    assert (scores.faithfulness, scores.visual_correctness) == (0.0, 0.5)


def test_last_complete_verdict_wins_a_tie() -> None:
    draft = '{"faithfulness": 1, "visual_correctness": 1, "text_accuracy": 1, "aesthetics": 1}'
    final = '{"faithfulness": 0, "visual_correctness": 0, "text_accuracy": 0, "aesthetics": 0}'
    assert parse_judge_reply(f"Draft: {draft}\nOn reflection: {final}").faithfulness == 0.0


def test_nested_scores_object() -> None:
    reply = (
        '{"result": {"faithfulness": 1, "visual_correctness": 0, "text_accuracy": 0,'
        ' "aesthetics": 1, "text_accuracy_na": "true"}}'
    )
    scores = parse_judge_reply(reply)
    assert scores.visual_correctness == 0.0
    assert scores.text_accuracy_na is True


def test_single_quoted_keys_and_apostrophes_in_prose() -> None:
    reply = (
        "Here's the verdict: {'faithfulness': 1, 'visual_correctness': 0.5,"
        " 'text_accuracy': 1, 'aesthetics': 0.5, 'text_accuracy_na': false}"
    )
    scores = parse_judge_reply(reply)
    assert (scores.faithfulness, scores.visual_correctness, scores.aesthetics) == (1.0, 0.5, 0.5)


def test_key_spelling_and_string_numbers() -> None:
    reply = (
        '{"Faithfulness": "1", "Visual Correctness": "0.5", "text-accuracy": 0, "AESTHETICS": 1.0}'
    )
    scores = parse_judge_reply(reply)
    assert (scores.faithfulness, scores.visual_correctness) == (1.0, 0.5)
    assert scores.text_accuracy_na is False
    assert scores.rationale == ""


def test_text_accuracy_written_as_na_sets_the_flag() -> None:
    reply = '{"faithfulness": 1, "visual_correctness": 1, "text_accuracy": "N/A", "aesthetics": 1}'
    scores = parse_judge_reply(reply)
    assert scores.text_accuracy_na is True
    assert scores.text_accuracy == 0.5


def test_fallback_to_key_value_lines() -> None:
    reply = """I could not format JSON, sorry.
faithfulness: 1
visual_correctness = 0.5
**Text Accuracy**: 0
- aesthetics: "1"
text_accuracy_na: false
"""
    scores = parse_judge_reply(reply)
    assert scores == JudgeScores(
        faithfulness=1.0,
        visual_correctness=0.5,
        text_accuracy=0.0,
        aesthetics=1.0,
        text_accuracy_na=False,
        rationale="",
    )


def test_fallback_keeps_text_accuracy_apart_from_its_flag() -> None:
    reply = (
        "text_accuracy_na: 1\ntext_accuracy: 0\nfaithfulness: 0.5\n"
        "visual_correctness: 0\naesthetics: 0.5"
    )
    scores = parse_judge_reply(reply)
    assert scores.text_accuracy == 0.0
    assert scores.text_accuracy_na is True


def test_fallback_takes_the_last_value_written() -> None:
    reply = (
        "faithfulness: 1\nvisual_correctness: 1\ntext_accuracy: 1\naesthetics: 1\n"
        "Correction after a closer look: visual_correctness: 0"
    )
    assert parse_judge_reply(reply).visual_correctness == 0.0


def test_truncated_json_falls_back_field_by_field() -> None:
    reply = (
        '```json\n{"rationale": "Correct \\"Big Ben\\" face", "faithfulness": 1,'
        ' "visual_correctness": 1, "text_accuracy_na": true, "aesthetics": 0.5, "text_acc'
    )
    scores = parse_judge_reply(reply)
    assert scores.rationale == 'Correct "Big Ben" face'
    assert (scores.faithfulness, scores.visual_correctness, scores.aesthetics) == (1.0, 1.0, 0.5)
    # text_accuracy is missing, but the request needs no text: 0.5.
    assert scores.text_accuracy == 0.5
    assert scores.text_accuracy_na is True


def test_object_gaps_are_filled_from_the_text() -> None:
    reply = 'aesthetics: 0.5\n{"faithfulness": 1, "visual_correctness": 0, "text_accuracy": 1}'
    assert parse_judge_reply(reply).aesthetics == 0.5


def test_out_of_range_values_are_kept_for_scoring_to_clip() -> None:
    reply = (
        '{"faithfulness": 1.5, "visual_correctness": -1, "text_accuracy": 2, "aesthetics": 0.25}'
    )
    scores = parse_judge_reply(reply)
    assert (scores.faithfulness, scores.visual_correctness) == (1.5, -1.0)


@pytest.mark.parametrize(
    "reply",
    ["", "   ", "The images look great!", '{"rationale": "no scores here"}', "```json\n```"],
)
def test_nothing_usable_raises(reply: str) -> None:
    with pytest.raises(JudgeParseError, match="no scores"):
        parse_judge_reply(reply)


def test_partial_verdict_raises_naming_the_gaps() -> None:
    with pytest.raises(JudgeParseError, match="lacks visual_correctness, aesthetics"):
        parse_judge_reply('{"faithfulness": 1, "text_accuracy": 0}')


def test_non_numbers_are_not_scores() -> None:
    # NaN is valid for json.loads and `true` is an int to Python; neither is a score.
    with pytest.raises(JudgeParseError, match="lacks faithfulness, visual_correctness"):
        parse_judge_reply(
            '{"faithfulness": NaN, "visual_correctness": true, "text_accuracy": 1, "aesthetics": 1}'
        )


def test_parse_error_is_a_value_error() -> None:
    assert issubclass(JudgeParseError, ValueError)


def test_scores_are_frozen() -> None:
    scores = JudgeScores(faithfulness=1, visual_correctness=1, text_accuracy=1, aesthetics=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        scores.faithfulness = 0  # type: ignore[misc]


# -- hostile input ---------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(replies)
def test_any_reply_gives_scores_or_a_parse_error(text: str) -> None:
    try:
        scores = parse_judge_reply(text)
    except JudgeParseError:
        return
    assert all(isinstance(getattr(scores, f), float) for f in SCORE_FIELDS)


@pytest.mark.parametrize("kind", sorted(ADVERSARIAL_UNITS))
def test_cost_grows_linearly(kind: str) -> None:
    ratio = growth(parse_judge_reply, lambda n: adversarial(kind, n), 3_000)
    assert ratio < LINEAR, (kind, ratio)


def test_a_verdict_inside_a_broken_outer_object_is_found() -> None:
    text = '{ thinking {"faithfulness": 8, "visual_correctness": 7, "text_accuracy": 6, "aesthetics": 5} }'
    assert parse_judge_reply(text).aesthetics == 5


def test_spaces_after_the_colon_do_not_backtrack() -> None:
    # Two \s* side by side made this quadratic: a megabyte of spaces took minutes.
    with pytest.raises(JudgeParseError):
        parse_judge_reply("faithfulness:" + " " * 200_000 + "x")
