from __future__ import annotations

import pytest

from genevolve_async.renderers._sizing import output_size, resolve_size


def test_no_reference_is_square() -> None:
    assert output_size(None) == (1024, 1024)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ((512, 512), (1024, 1024)),
        ((1920, 1080), (1024, 576)),
        ((1080, 1920), (576, 1024)),
        ((800, 600), (1024, 768)),
        ((1000, 333), (1024, 336)),  # 341.0 rounds to the nearest multiple of 16
        ((4000, 10), (1024, 16)),  # never rounds a side down to zero
    ],
)
def test_long_side_and_aspect_ratio(reference: tuple[int, int], expected: tuple[int, int]) -> None:
    assert output_size(reference) == expected


def test_sides_are_multiples() -> None:
    for width in range(1, 3000, 37):
        for height in (1, 7, 480, 1081, 2999):
            w, h = output_size((width, height))
            assert w % 16 == 0 and h % 16 == 0
            assert max(w, h) == 1024


def test_custom_long_side_and_multiple() -> None:
    assert output_size((300, 200), long_side=512, multiple=8) == (512, 344)


@pytest.mark.parametrize("reference", [(0, 10), (10, -1)])
def test_rejects_empty_reference(reference: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        output_size(reference)


def test_resolve_size_explicit_and_partial() -> None:
    assert resolve_size((800, 600), 64, 48) == (64, 48)
    assert resolve_size((800, 600), None, None) == (1024, 768)
    assert resolve_size((800, 600), 512, None) == (512, 384)
    assert resolve_size((800, 600), None, 384) == (512, 384)
    assert resolve_size(None, 320, None) == (320, 320)
    with pytest.raises(ValueError, match="positive"):
        resolve_size((800, 600), 0, 48)


@pytest.mark.parametrize(
    ("reference", "width", "height"),
    [((1, 4000), 8192, None), ((4000, 1), None, 8192), (None, 9000, 9000), ((1, 1), 20_000, 16)],
)
def test_the_final_size_is_checked_after_the_aspect_arithmetic(
    reference: tuple[int, int] | None, width: int | None, height: int | None
) -> None:
    from genevolve_async import ConfigurationError

    # width 8192 with a 1 x 4000 reference once gave a height of 32,768,000.
    with pytest.raises(ConfigurationError, match="each side must be 1 to 8192"):
        resolve_size(reference, width, height)


def test_a_long_side_over_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="each side"):
        output_size((10, 10), long_side=100_000)
