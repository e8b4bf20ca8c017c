"""The original's three generator classes on our three renderers.

Each takes the original's constructor keywords, maps them to a renderer's
(or refuses, naming the keyword, where we cannot honour it) and inherits
``generate`` / ``agenerate`` from :class:`ImageGenerator`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread
from PIL import Image, ImageOps

from .. import _errors, _runtime, renderers
from .._decode import open_image
from ._generator import ImageGenerator

__all__ = ["NanoBananaProGenerator", "QwenImageEditGenerator", "QwenImageEditServiceGenerator"]

_ENDPOINT = re.compile(
    r"^(?P<base>https?://.+?)/(?P<version>v[^/]+)/models/\{model\}:generateContent$"
)


class QwenImageEditServiceGenerator(ImageGenerator):
    """Qwen-Image-Edit HTTP services (``POST {url}/generate``), shared least-loaded.

    Args:
        urls: Service base URLs (one string or several).
        path: The route; only ``/generate`` (SPEC's) is spoken.
        timeout: Seconds one request may take.
        max_retries: Tries per render, the first included.
        long_side: Long side of the output (aspect of the first reference).
        size_multiple: Side rounding; the services need 16.
        max_refs: References beyond this many are dropped.
        seed: Seed sent with every render unless a call gives one.
        runtime: A shared runtime for ``agenerate``.
        **options: Further :class:`~genevolve_async.renderers.QwenServiceRenderer`
            keywords (``num_inference_steps``, ``true_cfg_scale``, ...).

    Raises:
        ConfigurationError: No URL, a bad URL, another route or rounding.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        path: str = "/generate",
        timeout: float = 1800,
        max_retries: int = 3,
        long_side: int = 1024,
        size_multiple: int = 16,
        max_refs: int = 4,
        seed: int = 0,
        *,
        runtime: _runtime.Runtime | None = None,
        **options: Any,
    ) -> None:
        super().__init__(seed=seed, max_retries=max_retries, runtime=runtime)
        if "/" + path.strip("/") != "/generate":
            raise _errors.ConfigurationError(
                f"path {path!r}: the services speak POST /generate only (SPEC section 4)"
            )
        if size_multiple != 16:
            raise _errors.ConfigurationError(
                f"size_multiple={size_multiple}: Qwen-Image-Edit services take sides in "
                "multiples of 16"
            )
        self._urls = [urls] if isinstance(urls, str) else list(urls)
        self._options: dict[str, Any] = {
            "timeout": float(timeout),
            "long_side": long_side,
            "max_references": max_refs,
            "seed": seed,
            **options,
        }
        self.urls = self._make_renderer(None).urls  # checks the URLs and keywords now

    def _make_renderer(self, runtime: _runtime.Runtime | None) -> renderers.QwenServiceRenderer:
        try:
            return renderers.QwenServiceRenderer(self._urls, runtime=runtime, **self._options)
        except TypeError as exc:
            raise _errors.ConfigurationError(f"{type(self).__name__}: {exc}") from exc


class NanoBananaProGenerator(ImageGenerator):
    """Nano Banana Pro (``gemini-3-pro-image-preview``) through Google's API.

    Args:
        api_key: The key (default: ``GOOGLE_API_KEY``, then ``GEMINI_API_KEY``).
        model: The model id.
        endpoint_template: The original's full URL template
            (``https://host/v1beta/models/{model}:generateContent``), for a gateway.
        timeout: Seconds one request may take.
        max_retries: Tries per render, the first included.
        runtime: A shared runtime for ``agenerate``.
        **options: Further :class:`~genevolve_async.renderers.NanoBananaRenderer`
            keywords (``base_url``, ``rpm``, ``max_in_flight``, ...).

    Raises:
        ConfigurationError: No key anywhere, or a template of another shape.
    """

    def __init__(
        self,
        api_key: str | None = None,
        model: str = "gemini-3-pro-image-preview",
        endpoint_template: str | None = None,
        timeout: float = 600,
        max_retries: int = 5,
        *,
        runtime: _runtime.Runtime | None = None,
        **options: Any,
    ) -> None:
        super().__init__(seed=None, max_retries=max_retries, runtime=runtime)
        key = (
            api_key or os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY") or ""
        ).strip()
        if not key:
            raise _errors.ConfigurationError(
                "Nano Banana Pro needs a key: set GOOGLE_API_KEY (or GEMINI_API_KEY), "
                "or pass api_key=..."
            )
        if endpoint_template is not None:
            match = _ENDPOINT.match(endpoint_template.strip())
            if match is None:
                raise _errors.ConfigurationError(
                    "endpoint_template must look like "
                    "'https://host/v1beta/models/{model}:generateContent'"
                )
            options.setdefault("base_url", match["base"])
            options.setdefault("api_version", match["version"])
        self.model = model
        self._options = {"api_key": key, "model": model, "timeout": float(timeout), **options}
        self._make_renderer(None)  # checks the keywords now

    def _make_renderer(self, runtime: _runtime.Runtime | None) -> renderers.NanoBananaRenderer:
        try:
            return renderers.NanoBananaRenderer(runtime=runtime, **self._options)
        except TypeError as exc:
            raise _errors.ConfigurationError(f"{type(self).__name__}: {exc}") from exc


class QwenImageEditGenerator(ImageGenerator):
    """Qwen-Image-Edit in this process, through diffusers (the ``local`` extra).

    The pipeline loads on the first render and stays loaded; renders run in a
    worker thread, one at a time. Sync and async use each load their own copy:
    keep to one of them per generator.

    Args:
        model_id: Hugging Face id or local path.
        device: Torch device (default: CUDA when present, else CPU; the
            original assumed ``cuda``).
        dtype: Weights dtype (default: bf16 on CUDA, fp32 on CPU).
        num_inference_steps: Denoising steps.
        true_cfg_scale: Classifier-free guidance scale.
        guidance_scale: Distilled-guidance scale.
        long_side: Long side of the output (aspect of the first reference).
        size_multiple: Both sides are rounded to a multiple of this.
        seed: Seed of every render unless a call gives one (default 0).
        **options: Further :class:`~genevolve_async.renderers.DiffusersRenderer`
            keywords (``pipeline`` for an already-built one, ``max_references``).
    """

    needs_runtime = False

    def __init__(
        self,
        model_id: str = "Qwen/Qwen-Image-Edit-2511",
        device: str | None = None,
        dtype: str | None = None,
        num_inference_steps: int = 40,
        true_cfg_scale: float = 4.0,
        guidance_scale: float = 1.0,
        long_side: int = 1024,
        size_multiple: int = 16,
        seed: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(seed=seed, max_retries=1)
        if long_side <= 0 or size_multiple <= 0:
            raise _errors.ConfigurationError("long_side and size_multiple must be positive")
        self.model_id = model_id
        self.long_side = long_side
        self.size_multiple = size_multiple
        self._options: dict[str, Any] = {
            "model": model_id,
            "device": device,
            "dtype": dtype,
            "num_inference_steps": num_inference_steps,
            "true_cfg_scale": true_cfg_scale,
            "guidance_scale": guidance_scale,
            **options,
        }

    def _make_renderer(self, runtime: _runtime.Runtime | None) -> renderers.DiffusersRenderer:
        try:
            return renderers.DiffusersRenderer(**self._options)
        except TypeError as exc:
            raise _errors.ConfigurationError(f"{type(self).__name__}: {exc}") from exc

    async def _render(
        self, renderer: renderers.ClosableRenderer, prompt: str, paths: list[str], seed: int | None
    ) -> Image.Image:
        if (self.long_side, self.size_multiple) == (1024, 16) or not isinstance(
            renderer, renderers.DiffusersRenderer
        ):
            return await renderer.render(prompt, paths, seed=seed)
        size = await anyio.to_thread.run_sync(_upright_size, paths[0])
        width, height = renderers.output_size(
            size, long_side=self.long_side, multiple=self.size_multiple
        )
        return await renderer.render(prompt, paths, seed=seed, width=width, height=height)


def _upright_size(path: str) -> tuple[int, int]:
    with open_image(path) as image:
        size: tuple[int, int] = ImageOps.exif_transpose(image).size
        return size
