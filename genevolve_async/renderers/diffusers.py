"""Local Qwen-Image-Edit rendering with diffusers (the `local` extra).

`DiffusersRenderer` runs `QwenImageEditPlusPipeline` in this process: the
pipeline loads lazily and once, inference runs in a worker thread so the event
loop keeps serving other agents, and one job at a time uses the device.
`run_pipeline` and `load_pipeline` are the synchronous building blocks that our
HTTP service (`genevolve_async.serve.qwen`) shares.

torch and diffusers are imported inside functions, so importing this module
works without the extra; using it without the extra raises an `ImportError`
that names the extra to install.
"""

from __future__ import annotations

import enum
import gc
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread

from ._sizing import resolve_size

if TYPE_CHECKING:
    from typing import Self

    from PIL import Image

__all__ = [
    "DEFAULT_MODEL",
    "DiffusersRenderer",
    "load_pipeline",
    "open_reference",
    "run_pipeline",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "Qwen/Qwen-Image-Edit-2511"
"""The paper's Qwen-Image-Edit version."""

_EXTRA_HINT: Final = (
    "local Qwen-Image-Edit rendering needs torch and diffusers: "
    "pip install 'genevolve-async[local]'"
)
_DTYPES: Final = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
}


def _require_local() -> None:
    """Fail early, without importing torch, when the `local` extra is missing."""
    missing = [name for name in ("torch", "diffusers") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"{_EXTRA_HINT} (missing: {', '.join(missing)})")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError(_EXTRA_HINT) from exc
    return torch


def default_device() -> str:
    """Return `"cuda"` when torch sees a GPU, else `"cpu"`."""
    torch = _import_torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_dtype(torch: Any, dtype: str | None, device: str) -> Any:
    if dtype is None:
        # bf16 is what the released weights are trained in; CPUs run it slowly or not at all.
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return getattr(torch, _DTYPES[dtype.lower()])
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}") from None


def load_pipeline(model: str, *, device: str | None = None, dtype: str | None = None) -> Any:
    """Load `QwenImageEditPlusPipeline` from a hub id or local path onto `device`.

    Blocking (it reads gigabytes); call it from a worker thread.

    Args:
        model: Hugging Face model id or local directory.
        device: Torch device; `None` picks CUDA when present, else CPU.
        dtype: `"bfloat16"`, `"float16"` or `"float32"`; `None` means bf16 on CUDA, fp32 on CPU.

    Returns:
        The pipeline, on `device`, with its progress bar turned off.

    Raises:
        ImportError: If the `local` extra is not installed.
    """
    torch = _import_torch()
    try:
        from diffusers import QwenImageEditPlusPipeline
    except ImportError as exc:
        raise ImportError(_EXTRA_HINT) from exc
    device = device or default_device()
    pipeline_class: Any = QwenImageEditPlusPipeline  # diffusers' loaders are untyped
    pipeline = pipeline_class.from_pretrained(model, torch_dtype=_torch_dtype(torch, dtype, device))
    pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    logger.info("loaded %s on %s", model, device)
    return pipeline


def open_reference(path: str | os.PathLike[str]) -> Image.Image:
    """Open a reference image as upright RGB (blocking; call from a worker thread).

    Args:
        path: Image file.

    Returns:
        A fully loaded RGB image with its EXIF orientation applied.
    """
    from PIL import ImageOps

    from .._decode import open_image

    with open_image(path) as raw:
        # Phone photos store rotation in EXIF; the model must see them upright.
        upright = ImageOps.exif_transpose(raw)
        return upright.convert("RGB")


def _open_all(paths: list[str | os.PathLike[str]]) -> list[Image.Image]:
    return [open_reference(path) for path in paths]


def _uses_guidance(pipeline: Any) -> bool:
    # Qwen-Image-Edit is not guidance-distilled: diffusers ignores guidance_scale
    # and logs a warning on every call, so only pass it where it means something.
    config = getattr(getattr(pipeline, "transformer", None), "config", None)
    return bool(getattr(config, "guidance_embeds", True))


def run_pipeline(
    pipeline: Any,
    *,
    prompt: str,
    images: list[Image.Image],
    seed: int,
    width: int,
    height: int,
    steps: int = 40,
    true_cfg_scale: float = 4.0,
    guidance_scale: float = 1.0,
    negative_prompt: str = " ",
    generator_device: str = "cpu",
) -> Image.Image:
    """Run one Qwen-Image-Edit job synchronously (call from a worker thread).

    Args:
        pipeline: A `QwenImageEditPlusPipeline` or anything called the same way.
        prompt: Edit instruction.
        images: Reference images, first one first.
        seed: Seed for a fresh `torch.Generator`; same seed, same pixels.
        width: Output width.
        height: Output height.
        steps: Denoising steps.
        true_cfg_scale: Classifier-free guidance scale (needs `negative_prompt`).
        guidance_scale: Distilled-guidance scale, passed only to guidance-distilled models.
        negative_prompt: Negative prompt; `" "` turns true CFG on with an empty prompt.
        generator_device: Device of the generator, normally the pipeline's device.

    Returns:
        The first generated image.

    Raises:
        TypeError: If the pipeline returns something other than a PIL image.
    """
    torch = _import_torch()
    from PIL import Image

    generator = torch.Generator(device=generator_device).manual_seed(seed)
    kwargs: dict[str, Any] = {
        "image": images,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "true_cfg_scale": true_cfg_scale,
        "num_inference_steps": steps,
        "num_images_per_prompt": 1,
        "width": width,
        "height": height,
        "generator": generator,
    }
    if _uses_guidance(pipeline):
        kwargs["guidance_scale"] = guidance_scale
    with torch.inference_mode():
        output = pipeline(**kwargs)
    image = output.images[0]
    if not isinstance(image, Image.Image):
        raise TypeError(f"pipeline returned {type(image).__name__}, expected a PIL image")
    return image


def _free_device_memory() -> None:
    gc.collect()
    # Only touch torch if something already imported it: closing must stay cheap.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class _State(enum.Enum):
    OPEN = enum.auto()
    CLOSED = enum.auto()


class DiffusersRenderer:
    """Render with Qwen-Image-Edit in this process.

    The pipeline loads on first use (concurrent first callers share one load),
    every job runs in a worker thread, and jobs take turns on the device. Use it
    as an async context manager, or call `aclose` when done; a closed renderer
    refuses to render.

    Args:
        model: Hugging Face id or local path loaded when `pipeline` is not given.
        pipeline: An already-built pipeline (tests, custom loading); not loaded again.
        device: Torch device; `None` means the given pipeline's device, or CUDA
            when present, else CPU.
        dtype: Weights dtype for loading; `None` means bf16 on CUDA, fp32 on CPU.
        num_inference_steps: Denoising steps.
        true_cfg_scale: Classifier-free guidance scale.
        guidance_scale: Distilled-guidance scale (ignored by Qwen-Image-Edit).
        negative_prompt: Negative prompt for true CFG.
        max_references: References beyond this many are dropped, as the
            published clients do.

    Raises:
        ImportError: If no `pipeline` is given and the `local` extra is missing.
    """

    name = "qwen-image-edit"
    needs_reference = True

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        pipeline: Any | None = None,
        device: str | None = None,
        dtype: str | None = None,
        num_inference_steps: int = 40,
        true_cfg_scale: float = 4.0,
        guidance_scale: float = 1.0,
        negative_prompt: str = " ",
        max_references: int = 4,
    ) -> None:
        if pipeline is None:
            _require_local()
        if max_references < 1:
            raise ValueError(f"max_references must be at least 1, got {max_references}")
        self.model = model
        self._pipeline = pipeline
        given_device = getattr(pipeline, "device", None)
        self._device = device or (str(given_device) if given_device is not None else None)
        self._dtype = dtype
        self._steps = num_inference_steps
        self._true_cfg_scale = true_cfg_scale
        self._guidance_scale = guidance_scale
        self._negative_prompt = negative_prompt
        self._max_references = max_references
        self._state = _State.OPEN
        self._load_lock = anyio.Lock()
        # One renderer owns one pipeline on one device, so this lock is the device's.
        self._device_lock = anyio.Lock()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise RuntimeError("DiffusersRenderer is closed; create a new one")

    async def _ensure_pipeline(self) -> tuple[Any, str]:
        async with self._load_lock:
            self._check_open()
            if self._pipeline is None:
                device = self._device or await anyio.to_thread.run_sync(default_device)
                self._pipeline = await anyio.to_thread.run_sync(
                    partial(load_pipeline, self.model, device=device, dtype=self._dtype)
                )
                self._device = device
            return self._pipeline, self._device or "cpu"

    async def render(
        self,
        prompt: str,
        reference_paths: Sequence[str | os.PathLike[str]],
        *,
        seed: int | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> Image.Image:
        """Render `prompt` conditioned on the reference images.

        Args:
            prompt: Edit instruction.
            reference_paths: Reference image files, first one first; at least one.
            seed: Generator seed; `None` means 0, the published service's default.
            width: Output width; with `height` unset it follows the first reference.
            height: Output height; with `width` unset it follows the first reference.

        Returns:
            The rendered RGB image.

        Raises:
            ValueError: If there is no reference image.
            RuntimeError: If the renderer is closed.
            OSError: If a reference cannot be opened as an image.
        """
        self._check_open()
        paths = list(reference_paths)
        if not paths:
            raise ValueError(
                "Qwen-Image-Edit needs at least one reference image; got none "
                "(render reference-free requests with another renderer)"
            )
        if len(paths) > self._max_references:
            logger.debug(
                "dropping %d references beyond %d",
                len(paths) - self._max_references,
                self._max_references,
            )
            paths = paths[: self._max_references]
        images = await anyio.to_thread.run_sync(_open_all, paths)
        out_w, out_h = resolve_size(images[0].size, width, height)
        pipeline, device = await self._ensure_pipeline()
        job = partial(
            run_pipeline,
            pipeline,
            prompt=prompt,
            images=images,
            seed=0 if seed is None else seed,
            width=out_w,
            height=out_h,
            steps=self._steps,
            true_cfg_scale=self._true_cfg_scale,
            guidance_scale=self._guidance_scale,
            negative_prompt=self._negative_prompt,
            generator_device=device,
        )
        async with self._device_lock:
            # Not abandoned on cancel: the lock must stay held until the device is free.
            return await anyio.to_thread.run_sync(job)

    async def aclose(self) -> None:
        """Drop the pipeline and free cached CUDA memory; later renders raise."""
        async with self._load_lock, self._device_lock:
            self._state = _State.CLOSED
            had_pipeline = self._pipeline is not None
            self._pipeline = None
            if had_pipeline:
                await anyio.to_thread.run_sync(_free_device_memory)
