"""Decoding foreign images: pixels checked from the header, a budget, one error type."""

from __future__ import annotations

import io
import threading
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from genevolve_async import _decode
from genevolve_async._decode import ImageDecodeError, open_image
from genevolve_async.sim import make_bomb_png, make_png


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_small_file_declaring_many_pixels_is_refused_before_decoding() -> None:
    bomb = make_bomb_png(13_000, 13_000)  # under Pillow's own error threshold
    tracemalloc.start()
    try:
        with pytest.raises(ImageDecodeError, match="13000x13000") as info, open_image(bomb):
            raise AssertionError("the block must not run")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.reason == "too_many_pixels"
    assert peak < 20 * 2**20  # the 169 MP image was never decoded


def test_pillows_own_bomb_error_is_classified() -> None:
    with pytest.raises(ImageDecodeError) as info, open_image(make_bomb_png(30_000, 30_000)):
        pass
    assert info.value.reason == "too_many_pixels"


def test_a_good_image_decodes_in_the_block() -> None:
    with open_image(make_png((1, 2, 3), (40, 30))) as image:
        assert image.convert("RGB").getpixel((0, 0)) == (1, 2, 3)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=400))
def test_any_bytes_decode_or_raise_one_classified_error(noise: bytes, cut: int) -> None:
    good = make_png((9, 9, 9), (20, 20))
    for data in (noise, good[:cut] + noise, good[: len(good) - cut % 60]):
        try:
            with open_image(data) as image:
                image.load()
        except ImageDecodeError as exc:
            assert exc.reason in ("not_image", "too_many_pixels")


def test_decodes_share_one_pixel_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = _decode._PixelBudget(2 * 1000)
    monkeypatch.setattr(_decode, "_BUDGET", budget)
    png = make_png((5, 5, 5), (40, 25))  # 1,000 pixels: two fit at once
    peak = 0
    lock = threading.Lock()

    def decode() -> None:
        nonlocal peak
        with open_image(png) as image:
            with lock:
                peak = max(peak, budget.in_use)
            time.sleep(0.02)
            image.load()

    threads = [threading.Thread(target=decode) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert peak == 2000 and budget.in_use == 0


def test_a_truncated_file_is_not_an_image() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="JPEG")
    with pytest.raises(ImageDecodeError) as info, open_image(buffer.getvalue()[:200]) as image:
        image.load()
    assert info.value.reason == "not_image"
