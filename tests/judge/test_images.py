from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from genevolve_async.judge import MAX_JUDGE_IMAGE_SIDE, JudgeImageError, encode_judge_image

_PREFIX = "data:image/jpeg;base64,"
_ORIENTATION = 0x0112
RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def _decode(uri: str) -> Image.Image:
    assert uri.startswith(_PREFIX)
    image = Image.open(io.BytesIO(base64.b64decode(uri.removeprefix(_PREFIX), validate=True)))
    assert image.format == "JPEG"
    image.load()
    return image


def _close(pixel: object, expected: tuple[int, int, int], tolerance: int = 12) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def test_output_is_a_quality_100_rgb_jpeg_data_uri(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (64, 48), RED).save(path)
    image = _decode(encode_judge_image(path))
    assert image.mode == "RGB"
    assert image.size == (64, 48)
    assert _close(image.getpixel((32, 24)), RED)
    # Quality 100 makes every quantisation step 1.
    quantization = image.quantization  # type: ignore[attr-defined]
    assert all(set(table) == {1} for table in quantization.values())


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored landscape: red left half, blue right half. Orientation 6 means
    # "rotate 90 degrees clockwise to display", so upright it is portrait
    # with red on top.
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[_ORIENTATION] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=100)

    upright = _decode(encode_judge_image(path))
    assert upright.size == (20, 40)
    assert _close(upright.getpixel((10, 5)), RED)
    assert _close(upright.getpixel((10, 35)), BLUE)
    assert upright.getexif().get(_ORIENTATION) in (None, 1)


def test_rgba_transparency_becomes_white(tmp_path: Path) -> None:
    # Transparent pixels store black: dropping alpha naively would show black.
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (10, 0, 20, 20))
    path = tmp_path / "alpha.png"
    image.save(path)
    flat = _decode(encode_judge_image(path))
    assert _close(flat.getpixel((3, 10)), WHITE)
    assert _close(flat.getpixel((16, 10)), RED)


def test_half_transparent_pixel_blends_with_white(tmp_path: Path) -> None:
    path = tmp_path / "half.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 128)).save(path)
    flat = _decode(encode_judge_image(path))
    assert _close(flat.getpixel((4, 4)), (127, 127, 127), tolerance=3)


def test_palette_transparency_becomes_white(tmp_path: Path) -> None:
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    image.paste(1, (8, 0, 16, 16))
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    flat = _decode(encode_judge_image(path))
    assert _close(flat.getpixel((2, 8)), WHITE)
    assert _close(flat.getpixel((13, 8)), RED)


def test_grey_with_alpha_becomes_white(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    Image.new("LA", (8, 8), (0, 0)).save(path)
    assert _close(_decode(encode_judge_image(path)).getpixel((4, 4)), WHITE)


@pytest.mark.parametrize("mode", ["L", "CMYK", "I;16"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"{mode.replace(';', '_')}.tiff"
    Image.new(mode, (8, 8)).save(path)
    assert _decode(encode_judge_image(path)).mode == "RGB"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # 100 * 4096 / 5000 = 81.92, rounded to 82.
        ((5000, 100), (4096, 82)),
        ((100, 5000), (82, 4096)),
        ((4096, 4096), (4096, 4096)),
        ((30, 10), (30, 10)),
    ],
)
def test_long_side_is_capped_and_never_enlarged(
    tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", size, BLUE).save(path)
    image = _decode(encode_judge_image(path))
    assert image.size == expected
    assert max(image.size) <= MAX_JUDGE_IMAGE_SIDE


def test_unreadable_file_names_only_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image", encoding="utf-8")
    with pytest.raises(JudgeImageError, match=r"notes\.png") as info:
        encode_judge_image(path)
    assert str(tmp_path) not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), RED).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(JudgeImageError, match=r"cut\.jpg"):
        encode_judge_image(path)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(JudgeImageError, match=r"not found: gone\.png") as info:
        encode_judge_image(str(tmp_path / "gone.png"))
    assert str(tmp_path) not in str(info.value)
