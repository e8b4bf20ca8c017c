"""The original project's generator classes, on our renderers: ``generate`` and ``agenerate``.

Code written against ``genevolve.generator`` switches by changing its import::

    from genevolve_async.generator import QwenImageEditServiceGenerator

    backend = QwenImageEditServiceGenerator(["http://qwen-host:8001"])
    image = backend.generate(result.gen_prompt, [r["local_path"] for r in result.reference_images])
    image.save("out.png")

- :class:`QwenImageEditServiceGenerator`: Qwen-Image-Edit HTTP services.
- :class:`NanoBananaProGenerator`: Nano Banana Pro through Google's API.
- :class:`QwenImageEditGenerator`: Qwen-Image-Edit in this process (the ``local`` extra).

``generate`` is for sync code (a background event loop that lives as long as
the generator); ``await agenerate(...)`` is its async twin.
"""

from __future__ import annotations

# A thin shim: the classes live in the compat package, under this old name.
from .compat import ImageGenerator as ImageGenerator
from .compat import NanoBananaProGenerator as NanoBananaProGenerator
from .compat import QwenImageEditGenerator as QwenImageEditGenerator
from .compat import QwenImageEditServiceGenerator as QwenImageEditServiceGenerator

__all__ = [
    "ImageGenerator",
    "NanoBananaProGenerator",
    "QwenImageEditGenerator",
    "QwenImageEditServiceGenerator",
]

# Show the classes as living here (in reprs, docs and tracebacks).
for _cls in (
    ImageGenerator,
    NanoBananaProGenerator,
    QwenImageEditGenerator,
    QwenImageEditServiceGenerator,
):
    _cls.__module__ = __name__
del _cls
