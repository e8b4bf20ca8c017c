from __future__ import annotations

import pytest

from genevolve_async.protocol import ReferenceImage, finalize_program
from genevolve_async.tools import ImageRegistry


def _registry(n: int) -> ImageRegistry:
    registry = ImageRegistry()
    for i in range(n):
        registry.register(
            local_path=f"/tmp/{i}.png",
            url=f"http://h/{i}.png",
            title=f"t{i}",
            page_url=f"http://p/{i}",
        )
    return registry


def test_unknown_ids_dropped_sorted_and_cut() -> None:
    registry = _registry(3)
    answer = {
        "gen_prompt": " a cat ",
        "reference_images": [
            {"img_id": "IMG_003", "note": "third"},
            {"img_id": "IMG_009", "note": "never registered"},
            {"img_id": "img_001", "note": "first"},
            {"img_id": "IMG_002", "note": "second"},
        ],
    }
    program = finalize_program(answer, registry.get, max_references=2)
    assert program.gen_prompt == "a cat"
    assert [r.img_id for r in program.reference_images] == ["IMG_001", "IMG_002"]
    first = program.reference_images[0]
    assert (first.note, first.local_path, first.url, first.title, first.page_url) == (
        "first",
        "/tmp/0.png",
        "http://h/0.png",
        "t0",
        "http://p/0",
    )


def test_duplicates_keep_first_note_and_junk_is_ignored() -> None:
    registry = _registry(2)
    answer = {
        "gen_prompt": "x",
        "reference_images": [
            {"img_id": "IMG_002", "note": "a"},
            {"img_id": "IMG_002", "note": "b"},
            7,
            {"note": "no id"},
            "IMG_001",
        ],
    }
    program = finalize_program(answer, registry.get, max_references=5)
    assert [(r.img_id, r.note) for r in program.reference_images] == [
        ("IMG_001", ""),
        ("IMG_002", "a"),
    ]


def test_reference_image_is_indexable_like_a_dict() -> None:
    ref = ReferenceImage(img_id="IMG_001", note="n", local_path="/p.png")
    assert ref["local_path"] == "/p.png"
    assert ref.get("missing", 5) == 5
    assert "img_id" in ref
    assert dict(ref.items())["note"] == "n"
    assert ref.to_dict()["img_id"] == "IMG_001"
    with pytest.raises(KeyError):
        ref["nope"]


def test_program_paths() -> None:
    program = finalize_program(
        {"gen_prompt": "p", "reference_images": [{"img_id": "IMG_001"}]}, _registry(1).get
    )
    assert program.reference_paths == ["/tmp/0.png"]
    assert program.to_dict()["reference_images"][0]["img_id"] == "IMG_001"
