from __future__ import annotations

from pathlib import Path

import pytest

from genevolve_async.judge import DEFAULT_RUBRIC, load_rubric


def test_default_rubric_names_every_field() -> None:
    for field in (
        "rationale",
        "faithfulness",
        "visual_correctness",
        "text_accuracy",
        "aesthetics",
        "text_accuracy_na",
    ):
        assert f'"{field}"' in DEFAULT_RUBRIC


def test_default_rubric_fixes_image_order_and_scale() -> None:
    assert "Image 1 is the GENERATED image" in DEFAULT_RUBRIC
    assert "Image 2 is the GROUND-TRUTH image" in DEFAULT_RUBRIC
    assert "exactly 0, 0.5 or 1" in DEFAULT_RUBRIC
    assert "ONE JSON object" in DEFAULT_RUBRIC


def test_default_rubric_is_strict_about_identity_and_text() -> None:
    assert "identity" in DEFAULT_RUBRIC
    assert "readable AND" in DEFAULT_RUBRIC
    assert "give the lower one" in DEFAULT_RUBRIC


def test_none_gives_the_default() -> None:
    assert load_rubric(None) is DEFAULT_RUBRIC


def test_reads_a_custom_rubric_from_str_or_path(tmp_path: Path) -> None:
    path = tmp_path / "rubric.txt"
    path.write_text("Score it. Reply with JSON.\n", encoding="utf-8")
    assert load_rubric(path) == "Score it. Reply with JSON.\n"
    assert load_rubric(str(path)) == "Score it. Reply with JSON.\n"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(ValueError, match="not found") as info:
        load_rubric(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", ["", "  \n\t\n"])
def test_empty_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="empty") as info:
        load_rubric(path)
    assert str(path) in str(info.value)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read rubric file"):
        load_rubric(tmp_path)
