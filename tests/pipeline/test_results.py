"""Atomic result files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genevolve_async.pipeline._results import write_json_rows, write_text


def test_rows_are_written_as_one_json_array_in_order(tmp_path: Path) -> None:
    rows = [{"id": str(i), "text": "line\nbreak", "n": [1, {"x": None}]} for i in range(5)]
    dest = tmp_path / "sub" / "results.json"
    assert write_json_rows(dest, iter(rows)) == 5
    assert json.loads(dest.read_text()) == rows
    assert dest.read_text().startswith('[\n  {\n    "id": "0"')
    assert write_json_rows(dest, []) == 0
    assert json.loads(dest.read_text()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "results.json"
    write_text(dest, "[]\n")

    def rows() -> Iterator[dict[str, Any]]:
        yield {"id": "a"}
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_json_rows(dest, rows())
    assert dest.read_text() == "[]\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
