"""Input rows: JSONL, JSON arrays and dataset folders, checks, safe ids, shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genevolve_async import ConfigurationError
from genevolve_async.pipeline import (
    BadRow,
    InputRow,
    InputSource,
    Shard,
    _inputs,
    iter_entries,
    safe_file_stem,
)
from genevolve_async.pipeline._inputs import aiter_entries, count_rows


def _split(source: InputSource) -> tuple[list[InputRow], list[BadRow]]:
    rows: list[InputRow] = []
    bad: list[BadRow] = []
    for entry in iter_entries(source):
        (bad if isinstance(entry, BadRow) else rows).append(entry)  # type: ignore[arg-type]
    return rows, bad


def test_jsonl_rows_and_bad_rows_are_reported_by_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"id": "a", "prompt": "a fox"}),
                "",
                "{not json",
                json.dumps([1, 2]),
                json.dumps({"id": "b"}),
                json.dumps({"id": "a", "prompt": "again"}),
                json.dumps({"id": ["x"], "prompt": "bad id"}),
                json.dumps({"question": "from the benchmark", "eval_type": "Quality-Anchored"}),
                json.dumps({"id": 7, "prompt": "  ", "question": "falls back to question"}),
            ]
        )
        + "\n"
    )
    rows, bad = _split(InputSource(path=path))
    # Ids default to the entry's index (blank lines are not entries).
    assert [(r.id, r.line, r.index) for r in rows] == [("a", 1, 0), ("6", 8, 6), ("7", 9, 7)]
    assert rows[1].prompt == "from the benchmark"
    assert rows[1].data["eval_type"] == "Quality-Anchored"  # extra fields are kept
    assert rows[2].prompt == "falls back to question"
    reasons = {b.line: b.reason for b in bad}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert "not valid JSON" in reasons[3]
    assert "expected a JSON object" in reasons[4]
    assert "no request" in reasons[5]
    assert "duplicate id 'a'" in reasons[6]
    assert "'id'" in reasons[7]
    assert str(bad[0]).startswith("line 3: ")


def test_json_array_elements_are_read_one_by_one_with_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny chunk size makes every element and number straddle chunk boundaries.
    monkeypatch.setattr(_inputs, "_CHUNK", 7)
    rows = [{"id": f"r{i}", "prompt": f"request {i}", "n": 123456789 * i} for i in range(5)]
    path = tmp_path / "results.json"
    text = (
        json.dumps(rows[:2], indent=2)[:-1] + ",\n  12345,\n" + json.dumps(rows[2:], indent=2)[1:]
    )
    path.write_text(text)
    got, bad = _split(InputSource(path=path))
    assert [r.id for r in got] == [f"r{i}" for i in range(5)]
    assert [r.data["n"] for r in got] == [row["n"] for row in rows]
    lines = text.splitlines()
    for row in got:
        assert lines[row.line - 1].strip() == "{", row
        assert f'"{row.id}"' in lines[row.line]
    assert len(bad) == 1 and "expected a JSON object" in bad[0].reason
    assert lines[bad[0].line - 1].strip() == "12345,"


def test_malformed_json_array_stops_with_one_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(
        '[{"id": "a", "prompt": "ok"},\n {"id": "b", "prompt": }\n, {"id": "c", "prompt": "x"}]'
    )
    rows, bad = _split(InputSource(path=path))
    assert [r.id for r in rows] == ["a"]
    assert len(bad) == 1 and bad[0].line == 2 and "reading stops" in bad[0].reason


def test_dataset_folder_resolves_the_benchmark_and_gt_paths(tmp_path: Path) -> None:
    bench = tmp_path / "GenEvolve-Data-Bench" / "GenEvolve-Bench"
    bench.mkdir(parents=True)
    (bench / "test.jsonl").write_text(
        json.dumps({"id": "0", "question": "q", "gt_image": "images/case_00000.jpg"})
        + "\n"
        + json.dumps({"id": "1", "question": "q", "gt_image": "/abs/gt.jpg"})
        + "\n"
    )
    rows, _ = _split(InputSource(path=tmp_path / "GenEvolve-Data-Bench"))
    assert rows[0].gt_path == bench / "images" / "case_00000.jpg"
    assert rows[1].gt_path == Path("/abs/gt.jpg")
    assert rows[0].data["gt_image"] == "images/case_00000.jpg"  # the record keeps it as written
    other = tmp_path / "elsewhere"
    rows, _ = _split(InputSource(path=bench / "test.jsonl", gt_root=other))
    assert rows[0].gt_path == other / "images" / "case_00000.jpg"


def test_repeated_gt_roots_are_tried_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the original evaluator: the data folder, the working folder, then each root.
    data, first, second, cwd = (tmp_path / name for name in ("data", "r1", "r2", "cwd"))
    for folder in (data, first, second, cwd):
        (folder / "images").mkdir(parents=True)
    (second / "images" / "a.jpg").write_bytes(b"a")  # only under the second root
    (first / "images" / "b.jpg").write_bytes(b"b")  # under both roots: the first wins
    (second / "images" / "b.jpg").write_bytes(b"b")
    (data / "images" / "c.jpg").write_bytes(b"c")  # beside the data: it wins
    (second / "images" / "c.jpg").write_bytes(b"c")
    (cwd / "images" / "d.jpg").write_bytes(b"d")  # in the working folder
    monkeypatch.chdir(cwd)
    lines = [{"id": n, "question": "q", "gt_image": f"images/{n}.jpg"} for n in "abcde"]
    (data / "in.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows, _ = _split(InputSource(path=data / "in.jsonl", gt_root=(first, second)))
    assert [row.gt_path for row in rows] == [
        second / "images" / "a.jpg",
        first / "images" / "b.jpg",
        data / "images" / "c.jpg",
        cwd / "images" / "d.jpg",
        second / "images" / "e.jpg",  # found nowhere: named under the last root
    ]


def test_unclear_or_missing_inputs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "b.jsonl").write_text("")
    with pytest.raises(ConfigurationError, match="cannot tell which data file"):
        list(iter_entries(InputSource(path=tmp_path)))
    with pytest.raises(ConfigurationError, match="input not found"):
        list(iter_entries(InputSource(path=tmp_path / "nope.jsonl")))
    with pytest.raises(ConfigurationError):
        InputSource()


@pytest.mark.parametrize(
    "row_id",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "a/b\\c",
        "..",
        ".",
        ".hidden",
        "CON",
        "nul.txt",
        "x" * 500,
        "a b",
        "ümlaut",
        "a\x00b",
        "C:\\Windows\\x",
    ],
)
def test_safe_file_stem_keeps_files_inside_their_folder(tmp_path: Path, row_id: str) -> None:
    stem = safe_file_stem(row_id)
    assert stem and "/" not in stem and "\\" not in stem and not stem.startswith(".")
    assert len(stem) <= 100
    target = (tmp_path / f"{stem}.png").resolve()
    assert target.parent == tmp_path.resolve()


def test_safe_file_stem_leaves_plain_ids_and_separates_reduced_ones() -> None:
    assert safe_file_stem("case_00012") == "case_00012"
    assert safe_file_stem("12") == "12"
    assert safe_file_stem("a/b") != safe_file_stem("a_b")
    assert safe_file_stem("../x") != safe_file_stem("x")


def test_ids_that_reduce_alike_still_get_distinct_stems(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(json.dumps({"id": i, "prompt": "p"}) + "\n" for i in ("a_b", "a b", "A_B"))
    )
    rows, _ = _split(InputSource(path=path))
    stems = [r.safe_id for r in rows]
    assert stems[0] == "a_b" and len({s.lower() for s in stems}) == 3


def test_shards_partition_the_rows_deterministically(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(90)))
    parts = [
        [r.id for r in _split(InputSource(path=path, shard=Shard.parse(f"{k}/3")))[0]]
        for k in (1, 2, 3)
    ]
    assert sorted(i for part in parts for i in part) == sorted(str(i) for i in range(90))
    assert all(parts) and len(set(parts[0]) & set(parts[1])) == 0
    again = [r.id for r in _split(InputSource(path=path, shard=Shard(number=2, count=3)))[0]]
    assert again == parts[1]


@pytest.mark.parametrize("text", ["0/3", "4/3", "1-3", "a/b", "1/0"])
def test_bad_shard_specs_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="shard"):
        Shard.parse(text)


def test_max_samples_counts_usable_rows_before_sharding(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("oops\n" + "".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(20)))
    rows, bad = _split(InputSource(path=path, max_samples=5))
    assert [r.id for r in rows] == ["1", "2", "3", "4", "5"] and len(bad) == 1
    sharded = [
        r.id
        for k in (1, 2)
        for r in _split(InputSource(path=path, max_samples=5, shard=Shard(number=k, count=2)))[0]
    ]
    assert sorted(sharded) == sorted(r.id for r in rows)
    assert count_rows(InputSource(path=path, max_samples=5)) == 5
    assert count_rows(InputSource(path=path)) == 21


def test_prompts_given_directly() -> None:
    rows, bad = _split(InputSource(prompts=("a fox", "a hare")))
    assert [(r.id, r.prompt) for r in rows] == [("0", "a fox"), ("1", "a hare")] and not bad


async def test_async_reader_matches_the_sync_one(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(1000)) + "[]\n")
    source = InputSource(path=path)
    got = [entry async for entry in aiter_entries(source, batch=64)]
    assert got == list(iter_entries(source))
    assert len(got) == 1001


# -- hostile rows ------------------------------------------------------------------

import tempfile  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests._hostile import json_values, replies  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values.map(json.dumps) | replies, max_size=8))
def test_any_lines_give_rows_or_bad_rows_naming_the_line(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "rows.jsonl"
        data.write_text(
            "\n".join(line.replace("\n", " ") for line in lines), "utf-8", "surrogatepass"
        )
        rows, bad = _split(InputSource(path=data))
    assert all(b.line >= 1 and b.reason for b in bad)
    for row in rows:
        assert (
            "/" not in row.safe_id
            and "\\" not in row.safe_id
            and row.safe_id not in ("", ".", "..")
        )


def test_a_row_nested_too_deep_is_a_bad_row(tmp_path: Path) -> None:
    deep = {"id": "deep", "prompt": "x", "meta": json.loads("[" * 300 + "]" * 300)}
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"id": "ok", "prompt": "x"}) + "\n" + json.dumps(deep) + "\n")
    rows, bad = _split(InputSource(path=data))
    assert [r.id for r in rows] == ["ok"]
    assert bad[0].line == 2 and "nested more than 64 levels deep" in bad[0].reason
