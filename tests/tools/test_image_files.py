"""The image cache's file operations: atomic placement and the index log."""

from __future__ import annotations

import os
from pathlib import Path

from genevolve_async.tools._image_files import (
    PlaceJob,
    open_index_log,
    place_images,
    read_index_log,
)


def test_a_batch_lands_its_files_and_one_line_each(tmp_path: Path) -> None:
    fd = open_index_log(tmp_path / ".index.log")
    try:
        jobs = [
            PlaceJob(final=tmp_path / f"{i:032x}.png", body=bytes([i]) * (i + 1), index_key=f"k{i}")
            for i in range(3)
        ]
        assert place_images(jobs, index_fd=fd) == {}
    finally:
        os.close(fd)
    for i in range(3):
        assert (tmp_path / f"{i:032x}.png").read_bytes() == bytes([i]) * (i + 1)
    assert read_index_log(tmp_path / ".index.log") == {f"k{i}": f"{i:032x}.png" for i in range(3)}
    # No temp file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.log"] + [
        f"{i:032x}.png" for i in range(3)
    ]


def test_a_refused_file_gets_no_index_line_and_the_others_land(tmp_path: Path) -> None:
    fd = open_index_log(tmp_path / ".index.log")
    missing = tmp_path / "no-such-folder" / "a.png"
    try:
        failed = place_images(
            [
                PlaceJob(final=tmp_path / "good.png", body=b"good", index_key="good"),
                PlaceJob(final=missing, body=b"bad", index_key="bad"),
            ],
            index_fd=fd,
        )
    finally:
        os.close(fd)
    assert list(failed) == [missing]
    assert isinstance(failed[missing], FileNotFoundError)
    assert read_index_log(tmp_path / ".index.log") == {"good": "good.png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.log", "good.png"]


def test_the_same_name_written_again_keeps_one_whole_file(tmp_path: Path) -> None:
    # Content-addressed names: a second write of one name replaces it atomically.
    final = tmp_path / "same.png"
    final.write_bytes(b"torn")  # say a crashed writer of another tool left this
    fd = open_index_log(tmp_path / ".index.log")
    try:
        assert place_images([PlaceJob(final=final, body=b"whole", index_key="k")], index_fd=fd) == {}
    finally:
        os.close(fd)
    assert final.read_bytes() == b"whole"
    assert read_index_log(tmp_path / ".index.log") == {"k": "same.png"}


def test_an_index_log_that_refuses_fails_the_whole_batch(tmp_path: Path) -> None:
    read_only = os.open(tmp_path / ".index.log", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        failed = place_images(
            [PlaceJob(final=tmp_path / "a.png", body=b"a", index_key="a")], index_fd=read_only
        )
    finally:
        os.close(read_only)
    # The file is there, but no line maps its URL to it: the cache must not count it.
    assert list(failed) == [tmp_path / "a.png"]
    assert isinstance(failed[tmp_path / "a.png"], OSError)
