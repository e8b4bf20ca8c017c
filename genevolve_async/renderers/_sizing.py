"""Output-size rule shared by the Qwen-Image-Edit renderers and our service.

The published GenEvolve runtime asks Qwen-Image-Edit for an image whose long
side is 1024 pixels and whose aspect ratio follows the first reference, with
both sides rounded to multiples of 16 (the pipeline packs 8x latents into 2x2
patches, so other sizes get silently rounded inside diffusers anyway).
"""

from __future__ import annotations

from .._errors import ConfigurationError

__all__ = ["MAX_OUTPUT_SIDE", "output_size", "resolve_size"]

MAX_OUTPUT_SIDE = 8192
"""Longest side we ever ask a renderer for (the service's own limit on inputs).

Checked on the result, not only on the inputs: ``width: 8192`` with a 1 x 4000
reference makes a height of 32,768,000 through the aspect ratio.
"""


def _checked(width: int, height: int) -> tuple[int, int]:
    if not (0 < width <= MAX_OUTPUT_SIDE and 0 < height <= MAX_OUTPUT_SIDE):
        # A ValueError too: the service answers 400, the pipeline "configuration".
        raise ConfigurationError(
            f"the output would be {width}x{height}: each side must be 1 to {MAX_OUTPUT_SIDE} "
            "(a reference this narrow needs an explicit width and height)"
        )
    return width, height


def _round_to(value: float, multiple: int) -> int:
    # Never round down to zero: a degenerate reference still yields a usable image.
    return max(multiple, round(value / multiple) * multiple)


def output_size(
    reference_size: tuple[int, int] | None,
    *,
    long_side: int = 1024,
    multiple: int = 16,
) -> tuple[int, int]:
    """Return the `(width, height)` to render for a reference of `reference_size`.

    Args:
        reference_size: `(width, height)` of the first reference image, or `None`
            when there is no reference.
        long_side: Target length of the longer side.
        multiple: Both sides are rounded to a multiple of this (at least `multiple`).

    Returns:
        `(width, height)`, each a positive multiple of `multiple`.

    Raises:
        ValueError: If a side of `reference_size`, `long_side` or `multiple` is not
            positive, or a side of the result is over `MAX_OUTPUT_SIDE`.
    """
    if long_side <= 0 or multiple <= 0:
        raise ValueError(f"long_side and multiple must be positive, got {long_side}, {multiple}")
    if reference_size is None:
        side = _round_to(long_side, multiple)
        return _checked(side, side)
    width, height = reference_size
    if width <= 0 or height <= 0:
        raise ValueError(f"reference size must be positive, got {width}x{height}")
    if width >= height:
        return _checked(
            _round_to(long_side, multiple), _round_to(long_side * height / width, multiple)
        )
    return _checked(_round_to(long_side * width / height, multiple), _round_to(long_side, multiple))


def resolve_size(
    reference_size: tuple[int, int] | None,
    width: int | None,
    height: int | None,
    *,
    long_side: int = 1024,
    multiple: int = 16,
) -> tuple[int, int]:
    """Combine an optional explicit size with the `output_size` rule.

    Both given: used as they are. Neither: `output_size(reference_size)`. One given:
    the other follows the reference's aspect ratio (square without a reference),
    rounded to `multiple`.

    Args:
        reference_size: `(width, height)` of the first reference, or `None`.
        width: Requested width, or `None`.
        height: Requested height, or `None`.
        long_side: Long side used when neither is given.
        multiple: Rounding for computed sides.

    Returns:
        `(width, height)` to render.

    Raises:
        ValueError: If a given side or a side of `reference_size` is not positive,
            or a side of the result is over `MAX_OUTPUT_SIDE`.
    """
    for side in (width, height):
        if side is not None and side <= 0:
            raise ValueError(f"width and height must be positive, got {width}x{height}")
    if width is not None and height is not None:
        return _checked(width, height)
    if width is None and height is None:
        return output_size(reference_size, long_side=long_side, multiple=multiple)
    ref_w, ref_h = reference_size if reference_size is not None else (1, 1)
    if ref_w <= 0 or ref_h <= 0:
        raise ValueError(f"reference size must be positive, got {ref_w}x{ref_h}")
    if width is not None:
        return _checked(width, _round_to(width * ref_h / ref_w, multiple))
    assert height is not None  # narrowed above: exactly one side is given
    return _checked(_round_to(height * ref_w / ref_h, multiple), height)
