"""Building a renderer by backend name (the CLI's and the pipeline's entry point)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

from .._errors import ConfigurationError
from .._runtime import Runtime
from ._base import ClosableRenderer
from .diffusers import DiffusersRenderer
from .nano_banana import NanoBananaRenderer
from .qwen_service import QwenServiceRenderer

__all__ = ["RendererBackend", "make_renderer"]

RendererBackend = Literal["qwen-image-edit-service", "nano-banana-pro", "qwen-image-edit"]
"""Backend names :func:`make_renderer` understands."""


def make_renderer(
    backend: RendererBackend,
    *,
    runtime: Runtime | None = None,
    service_urls: str | Sequence[str] = (),
    **options: Any,
) -> ClosableRenderer:
    """Build a renderer by backend name.

    Args:
        backend: ``qwen-image-edit-service`` (HTTP services at ``service_urls``),
            ``nano-banana-pro`` (Google's API) or ``qwen-image-edit`` (local diffusers).
        runtime: Shared runtime for the HTTP backends; ``None``: the renderer
            opens its own when used as ``async with``. The local backend needs none.
        service_urls: Service URLs, for ``qwen-image-edit-service`` only.
        **options: Keyword arguments of the backend's class.

    Returns:
        The renderer; use it as ``async with`` (or call ``aclose``).

    Raises:
        ConfigurationError: Unknown backend, missing or misplaced service URLs,
            or an option the backend does not take.
    """
    urls = [service_urls] if isinstance(service_urls, str) else list(service_urls)
    if backend not in get_args(RendererBackend):
        choices = ", ".join(get_args(RendererBackend))
        raise ConfigurationError(f"unknown renderer backend {backend!r}; choose one of {choices}")
    if backend != "qwen-image-edit-service" and urls:
        raise ConfigurationError(
            f"service_urls apply to 'qwen-image-edit-service', not {backend!r}"
        )
    try:
        if backend == "qwen-image-edit-service":
            if not urls:
                raise ConfigurationError(
                    "backend 'qwen-image-edit-service' needs service_urls (one or more http(s) URLs)"
                )
            return QwenServiceRenderer(urls, runtime=runtime, **options)
        if backend == "nano-banana-pro":
            return NanoBananaRenderer(runtime=runtime, **options)
        return DiffusersRenderer(**options)
    except TypeError as exc:
        # An unknown keyword: say which backend refused it rather than a bare TypeError.
        raise ConfigurationError(f"renderer {backend!r}: {exc}") from exc
