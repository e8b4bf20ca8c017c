from __future__ import annotations

import pytest

from genevolve_async.protocol import JSONRecoveryError, loads_lenient
from genevolve_async.protocol._json import nesting_depth


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
