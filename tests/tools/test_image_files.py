"""The image cache's file operations: atomic placement and the index log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from genevolve_async.tools._image_files import (
    PlaceJob,
    open_index_log,
    place_images,
    read_index_log,
)


def place(folder: Path, jobs: list[PlaceJob], *, log_refuses: bool = False) -> dict[Path, OSError]:
    """``place_images`` with the folder's index log open (read-only: a log that refuses writes)."""
    log = folder / ".index.log"
    fd = os.open(log, os.O_RDONLY | os.O_CREAT, 0o644) if log_refuses else open_index_log(log)
    try:
        return place_images(jobs, index_fd=fd)
    finally:
        os.close(fd)


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_batch_lands_its_files_and_one_line_each(tmp_path: Path) -> None:
    jobs = [
        PlaceJob(final=tmp_path / f"{i:032x}.png", body=bytes([i]) * (i + 1), index_key=f"k{i}")
        for i in range(3)
    ]
    assert place(tmp_path, jobs) == {}
    for i in range(3):
        assert (tmp_path / f"{i:032x}.png").read_bytes() == bytes([i]) * (i + 1)
    assert read_index_log(tmp_path / ".index.log") == {f"k{i}": f"{i:032x}.png" for i in range(3)}
    # No temp file is left behind.
    assert names_in(tmp_path) == [".index.log"] + [f"{i:032x}.png" for i in range(3)]


def test_a_refused_file_gets_no_index_line_and_the_others_land(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "a.png"
    failed = place(
        tmp_path,
        [
            PlaceJob(final=tmp_path / "good.png", body=b"good", index_key="good"),
            PlaceJob(final=missing, body=b"bad", index_key="bad"),
        ],
    )
    assert list(failed) == [missing]
    assert isinstance(failed[missing], FileNotFoundError)
    assert read_index_log(tmp_path / ".index.log") == {"good": "good.png"}
    assert names_in(tmp_path) == [".index.log", "good.png"]


def test_the_same_name_written_again_keeps_one_whole_file(tmp_path: Path) -> None:
    # Content-addressed names: a second write of one name replaces it atomically.
    final = tmp_path / "same.png"
    final.write_bytes(b"torn")  # say a crashed writer of another tool left this
    assert place(tmp_path, [PlaceJob(final=final, body=b"whole", index_key="k")]) == {}
    assert final.read_bytes() == b"whole"
    assert read_index_log(tmp_path / ".index.log") == {"k": "same.png"}


def test_an_index_log_that_refuses_fails_the_whole_batch(tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    failed = place(tmp_path, [PlaceJob(final=a, body=b"a", index_key="a")], log_refuses=True)
    # The file is there, but no line maps its URL to it: the cache must not count it.
    assert list(failed) == [a]
    assert isinstance(failed[a], OSError)


def test_a_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    final = tmp_path / "taken.png"
    final.mkdir()
    (final / "inside").write_bytes(b"x")  # a non-empty folder where the file should go
    failed = place(tmp_path, [PlaceJob(final=final, body=b"img", index_key="k")])
    assert list(failed) == [final]
    assert names_in(tmp_path) == [".index.log", "taken.png"]
    assert read_index_log(tmp_path / ".index.log") == {}


def test_a_file_already_there_counts_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk, or Windows refusing to replace a file another process has open.
    final = tmp_path / "same.png"
    final.write_bytes(b"whole")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "in use")

    monkeypatch.setattr(os, "replace", refuse)
    assert place(tmp_path, [PlaceJob(final=final, body=b"whole", index_key="k")]) == {}
    assert final.read_bytes() == b"whole"
    assert read_index_log(tmp_path / ".index.log") == {"k": "same.png"}
    assert names_in(tmp_path) == [".index.log", "same.png"]


def test_an_earlier_refusal_keeps_its_own_error_when_the_log_refuses(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "a.png"
    b = tmp_path / "b.png"
    failed = place(
        tmp_path,
        [
            PlaceJob(final=missing, body=b"a", index_key="a"),
            PlaceJob(final=b, body=b"b", index_key="b"),
        ],
        log_refuses=True,
    )
    assert isinstance(failed[missing], FileNotFoundError)
    assert isinstance(failed[b], OSError)
    assert not isinstance(failed[b], FileNotFoundError)


def test_a_line_glued_to_a_torn_one_is_skipped(tmp_path: Path) -> None:
    log = tmp_path / ".index.log"
    # A torn write ("kk\t0123abc", no newline), then the next append glued to it.
    log.write_bytes(b"good\tg.png\nkk\t0123abck3\tb.png\nlast\tl.png\n")
    assert read_index_log(log) == {"good": "g.png", "last": "l.png"}
