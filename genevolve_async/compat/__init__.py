"""The original project's compatibility classes, gathered in one place.

``genevolve_async.generator`` (the import path the original's users know)
re-exports them; new code uses the renderers (:mod:`genevolve_async.renderers`)
directly.
"""

from __future__ import annotations

from ._backends import NanoBananaProGenerator as NanoBananaProGenerator
from ._backends import QwenImageEditGenerator as QwenImageEditGenerator
from ._backends import QwenImageEditServiceGenerator as QwenImageEditServiceGenerator
from ._generator import ImageGenerator as ImageGenerator

__all__ = [
    "ImageGenerator",
    "NanoBananaProGenerator",
    "QwenImageEditGenerator",
    "QwenImageEditServiceGenerator",
]
