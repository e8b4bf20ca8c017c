"""Turn an image file into the JPEG data URI the judge receives.

Everything here is blocking Pillow work: async callers run
`encode_judge_image` in a worker thread (`anyio.to_thread.run_sync`).
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

from PIL import Image, ImageOps

from .._decode import ImageDecodeError, open_image

__all__ = ["MAX_JUDGE_IMAGE_SIDE", "JudgeImageError", "encode_judge_image"]

MAX_JUDGE_IMAGE_SIDE = 4096
"""Longest side, in pixels, of an image sent to the judge."""

_JPEG_QUALITY = 100
_WHITE = (255, 255, 255)
# Modes that carry an alpha band of their own.
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


class JudgeImageError(ValueError):
    """An image file could not be read or decoded for the judge.

    The message names the file by its name only, so that it can go into
    result rows without leaking local directory layouts.
    """


def encode_judge_image(path: str | os.PathLike[str]) -> str:
    """Encode an image file as a judge-ready JPEG data URI.

    The image is turned upright from its EXIF orientation, any transparency
    is flattened onto white, it is converted to RGB, shrunk (aspect kept,
    Lanczos) so that its long side is at most `MAX_JUDGE_IMAGE_SIDE`, and
    saved as a quality-100 JPEG.

    Args:
        path: The image file.

    Returns:
        A `data:image/jpeg;base64,...` URI.

    Raises:
        JudgeImageError: The file is missing or is not a readable image.
    """
    file_path = Path(path)
    try:
        with open_image(file_path) as opened:
            # Decode now, inside the try: Pillow reads pixels lazily, so a
            # truncated file would otherwise fail later with a bare OSError.
            opened.load()
            image = _to_rgb(ImageOps.exif_transpose(opened))
    except FileNotFoundError:
        raise JudgeImageError(f"image file not found: {file_path.name}") from None
    except ImageDecodeError as exc:
        # Truncated data raises OSError, bad EXIF data ValueError. Pillow may
        # quote the full path; keep only the file name.
        reason = str(exc).replace(str(file_path), file_path.name)
        raise JudgeImageError(f"cannot read image {file_path.name}: {reason}") from exc
    image = _limit_size(image, MAX_JUDGE_IMAGE_SIDE)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/jpeg;base64,{encoded}"


def _to_rgb(image: Image.Image) -> Image.Image:
    """Return an RGB copy of `image` with any transparency composited onto white."""
    if _has_transparency(image):
        rgba = image.convert("RGBA")
        # Plain convert("RGB") would drop alpha and expose whatever colour the
        # transparent pixels happen to store (often black), which the judge
        # would then see as part of the picture.
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode == "RGB":
        return image.copy()
    return image.convert("RGB")


def _has_transparency(image: Image.Image) -> bool:
    # P, L and RGB images mark transparency through a `transparency` entry
    # (a palette index or a colour key) rather than an alpha band.
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def _limit_size(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink `image` so that its long side is at most `max_side`; never enlarge."""
    width, height = image.size
    long_side = max(width, height)
    if long_side <= max_side:
        return image
    scale = max_side / long_side
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(new_size, Image.Resampling.LANCZOS)
