"""Image renderers: the `Renderer` protocol and its backends (SPEC section 4).

- :class:`QwenServiceRenderer`: Qwen-Image-Edit HTTP services, pooled.
- :class:`NanoBananaRenderer`: Nano Banana Pro through google-genai.
- :class:`DiffusersRenderer`: Qwen-Image-Edit in this process (the ``local`` extra;
  torch is imported only when it is used).

:func:`make_renderer` builds one by backend name, for the CLI and the pipeline;
:func:`render_program` applies SPEC's program-or-request fallback to any of them.
"""

from __future__ import annotations

from ._base import ClosableRenderer as ClosableRenderer
from ._base import ReferenceRequiredError as ReferenceRequiredError
from ._base import Renderer as Renderer
from ._base import RendererBase as RendererBase
from ._base import render_program as render_program
from ._factory import RendererBackend as RendererBackend
from ._factory import make_renderer as make_renderer
from ._sizing import output_size as output_size
from ._sizing import resolve_size as resolve_size
from .diffusers import DiffusersRenderer as DiffusersRenderer
from .nano_banana import NanoBananaRenderer as NanoBananaRenderer
from .qwen_service import QwenServiceRenderer as QwenServiceRenderer

__all__ = [
    "ClosableRenderer",
    "DiffusersRenderer",
    "NanoBananaRenderer",
    "QwenServiceRenderer",
    "ReferenceRequiredError",
    "Renderer",
    "RendererBackend",
    "RendererBase",
    "make_renderer",
    "output_size",
    "render_program",
    "resolve_size",
]
