"""Decoding images we did not make: the declared size is checked before any pixel.

A 27 KB 1-bit PNG can declare 13,000 x 13,000 pixels: Pillow's own bomb
check only looks at twice ``Image.MAX_IMAGE_PIXELS`` (about 179 million), so
it is decoded and turned into half a gigabyte of RGB. Every decode of a
foreign image (the Qwen service's references and answers, Nano Banana's
answers, the judge's inputs, exports, the local renderers' references)
opens through :func:`open_image`, which

- refuses a declared ``width x height`` above ``max_pixels`` from the header,
  before decoding;
- holds a share of one process-wide pixel budget while the caller decodes,
  so a burst of large images waits instead of multiplying the peak memory;
- turns every Pillow failure (``DecompressionBombError`` included) into one
  classified :class:`ImageDecodeError`.

Blocking: call it from a worker thread.
"""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from os import PathLike
from typing import BinaryIO, Literal

from PIL import Image

from ._errors import GenEvolveError

__all__ = ["DECODE_BUDGET_PIXELS", "MAX_DECODE_PIXELS", "ImageDecodeError", "open_image"]

MAX_DECODE_PIXELS = 64_000_000
"""Largest image decoded, in pixels (8,000 x 8,000; the image cache keeps the same cap)."""
DECODE_BUDGET_PIXELS = 4 * MAX_DECODE_PIXELS
"""Pixels being decoded at once in this process, all images together (about 1 GB of RGBA)."""

DecodeReason = Literal["not_image", "too_many_pixels"]


class ImageDecodeError(ValueError):
    """Bytes that are no usable image, or an image with too many pixels.

    Attributes:
        reason: ``not_image`` or ``too_many_pixels``.
    """

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: DecodeReason = reason


class _PixelBudget:
    """A counting semaphore over pixels, for worker threads."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        share = min(max(pixels, 1), self.total)
        with self._cond:
            self._cond.wait_for(lambda: self.in_use + share <= self.total)
            self.in_use += share
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= share
                self._cond.notify_all()


_BUDGET = _PixelBudget(DECODE_BUDGET_PIXELS)


def _open(
    source: str | PathLike[str] | bytes | BinaryIO, formats: tuple[str, ...] | None
) -> Image.Image:
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        return Image.open(stream, formats=formats)
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too_many_pixels", str(exc)) from exc
    except Exception as exc:  # Pillow raises many types for bad bytes
        raise ImageDecodeError("not_image", f"{type(exc).__name__}: {exc}") from exc


@contextmanager
def open_image(
    source: str | PathLike[str] | bytes | BinaryIO,
    *,
    max_pixels: int = MAX_DECODE_PIXELS,
    formats: tuple[str, ...] | None = None,
    decodes: bool = True,
) -> Iterator[Image.Image]:
    """Open an image whose declared size is within ``max_pixels``; decode it in the block.

    The image is closed when the block ends: copy or convert what you keep.

    Args:
        source: A path, the bytes, or a binary file.
        max_pixels: The most pixels the header may declare.
        formats: The Pillow formats to try (``None``: all).
        decodes: Whether the block decodes pixels; a block that only reads
            the header or verifies the file does not take from the budget.

    Raises:
        ImageDecodeError: not an image, too many pixels, or Pillow failed
            while the block decoded it.
        FileNotFoundError: ``source`` names no file.
    """
    image = _open(source, formats)
    try:
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageDecodeError("not_image", f"the image declares {width}x{height} pixels")
        if width * height > max_pixels:
            raise ImageDecodeError(
                "too_many_pixels",
                f"the image declares {width}x{height} pixels, over the limit of {max_pixels}",
            )
        with _BUDGET.hold(width * height) if decodes else nullcontext():
            try:
                yield image
            except (GenEvolveError, ImageDecodeError):
                raise
            except Image.DecompressionBombError as exc:
                raise ImageDecodeError("too_many_pixels", str(exc)) from exc
            except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error) as exc:
                # Truncated data raises OSError, bad EXIF ValueError, broken
                # chunks SyntaxError or struct errors (ValueError subclasses).
                raise ImageDecodeError("not_image", f"{type(exc).__name__}: {exc}") from exc
    finally:
        image.close()
