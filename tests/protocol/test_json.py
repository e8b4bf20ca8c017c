from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genevolve_async.protocol import JSONRecoveryError, loads_lenient, parse_reply
from genevolve_async.protocol import _json as lenient
from genevolve_async.protocol._json import nesting_depth
from tests._hostile import ADVERSARIAL_UNITS, LINEAR, adversarial, growth, replies


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ("```\n[1, 2,]\n```", [1, 2]),
        ('{"a": [1, 2,], }', {"a": [1, 2]}),
        ('Here you go: {"a": "}"} hope it helps', {"a": "}"}),
    ],
)
def test_recovers(text: str, expected: object) -> None:
    assert loads_lenient(text) == expected


@pytest.mark.parametrize("text", ["", "no json", "{unclosed", "[" * 5000])
def test_refuses(text: str) -> None:
    with pytest.raises(JSONRecoveryError):
        loads_lenient(text)


def test_nesting_depth() -> None:
    assert nesting_depth(1) == 0
    assert nesting_depth({"a": 1}) == 1
    assert nesting_depth({"a": [{"b": 2}]}) == 3


# -- hostile input: one scanner, linear by construction ------------------------


@settings(max_examples=400, deadline=None)
@given(replies)
def test_any_text_parses_or_is_refused(text: str) -> None:
    try:
        loads_lenient(text)
    except JSONRecoveryError:
        pass
    parsed = parse_reply(text, round_index=1)  # never raises: problems are data
    assert isinstance(parsed.calls, tuple)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.integers() | st.text(max_size=5),
        lambda x: st.lists(x) | st.dictionaries(st.text(max_size=5), x),
    )
)
def test_json_comes_back_whole_from_prose_and_fences(value: object) -> None:
    body = json.dumps({"v": value})
    for wrapped in (body, f"```json\n{body}\n```", f"Sure! {body} hope that helps"):
        assert loads_lenient(wrapped) == {"v": value}


def test_commas_inside_strings_are_kept() -> None:
    assert loads_lenient('{"a": "x, }", "b": [1,],}') == {"a": "x, }", "b": [1]}


@pytest.mark.parametrize("kind", sorted(ADVERSARIAL_UNITS))
def test_cost_grows_linearly(kind: str) -> None:
    ratio = growth(loads_lenient, lambda n: adversarial(kind, n), 3_000)
    assert ratio < LINEAR, (kind, ratio)
    ratio = growth(lambda t: parse_reply(t), lambda n: adversarial(kind, n), 3_000)
    assert ratio < LINEAR, (kind, ratio)


def test_the_old_fence_regex_case_is_instant() -> None:
    # ``` and 2,000 newlines and x kept the old regex busy for about 20 s.
    with pytest.raises(JSONRecoveryError):
        loads_lenient("```" + "\n" * 2000 + "x")


def test_json_loads_sees_a_bounded_multiple_of_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The work that is not linear by nature (re-parsing spans) is bounded by budget."""
    seen: list[int] = []
    real = lenient._loads

    def counting(text: str) -> object:
        seen.append(len(text))
        return real(text)

    monkeypatch.setattr(lenient, "_loads", counting)
    for text in (
        "{" * 5000 + "x" + "}" * 5000,  # every level fails: the worst case for descending
        "{ not json " * 3000 + "}" * 3000,
        '{"a": 1} ' * 5000,
    ):
        seen.clear()
        list(lenient.iter_objects(text, single_quotes=True))
        # three tries per span (as is, without trailing commas, single quotes fixed)
        assert sum(seen) <= 3 * (lenient._PARSE_FACTOR * len(text) + lenient._PARSE_FLOOR)


def test_a_megabyte_of_braces_is_one_step() -> None:
    assert lenient._span_tree("{" * 1_000_000, False) == []
    assert lenient._span_tree("}" * 1_000_000, False) == []
    (span,) = lenient._span_tree("{" * 1000 + "{}", False)
    assert (span.start, span.end) == (1000, 1002)
