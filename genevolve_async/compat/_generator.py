"""``ImageGenerator``: the sync/async machinery under the original's generator classes.

Each generator answers ``generate(prompt, image_paths)`` with a PIL image, as
the original's did. ``generate`` is for sync
code: it renders on an event loop in a daemon thread that lives as long as
the generator, so connections and limits persist across calls; inside a
running event loop it raises and points to ``await generator.agenerate(...)``,
the async twin. Like the original, paths that are empty or missing are
skipped; a backend that needs a reference and is left with none raises
:class:`~genevolve_async.renderers.ReferenceRequiredError` (a ``ValueError``).
Failures after the retries raise the :mod:`genevolve_async` errors
(``ServiceError`` and its kinds), not the original's bare ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.to_thread
from PIL import Image

from .. import _errors, _retry, _runtime, renderers
from ..agent import _portal

__all__ = ["ImageGenerator"]


def _usable_paths(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The paths that name an existing file, in order (blocking: it stats them)."""
    return [os.fspath(p) for p in paths if p and os.path.isfile(p)]


def _shutdown(portal: _portal.PortalThread, closers: list[Any]) -> None:
    for close in closers:
        try:
            portal.call(close)
        except Exception:  # pragma: no cover - best effort at interpreter exit
            pass
    portal.stop()


class ImageGenerator:
    """The shared machinery: ``generate`` on a background loop, ``agenerate`` on yours.

    Subclasses say how to build their renderer. Use a generator from sync
    code (``generate``, then ``close`` or ``with``) or from async code
    (``agenerate``, ideally inside ``async with generator:`` or with a shared
    ``runtime=``, so connections are reused; then ``aclose``). A bare
    ``agenerate`` over HTTP opens a runtime for that call only; a local
    pipeline is loaded once and kept until ``aclose``.

    Args:
        seed: Seed of every render unless a call gives one.
        max_retries: Tries per render (the first included) for the runtimes the
            generator opens itself; a shared runtime keeps its own policy.
        runtime: A shared :class:`~genevolve_async.Runtime` for ``agenerate``.
    """

    needs_runtime = True
    """Whether the renderer talks HTTP through a runtime (the local one does not)."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        max_retries: int = 3,
        runtime: _runtime.Runtime | None = None,
    ) -> None:
        if max_retries < 1:
            raise _errors.ConfigurationError(f"max_retries must be at least 1, got {max_retries}")
        self.seed = seed
        self.max_retries = max_retries
        self._shared = runtime
        self._entered: tuple[_runtime.Runtime | None, renderers.ClosableRenderer] | None = None
        self._shared_renderer: renderers.ClosableRenderer | None = None
        self._portal: _portal.PortalThread | None = None
        self._portal_renderer: renderers.ClosableRenderer | None = None
        self._portal_lock = threading.Lock()
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def _make_renderer(self, runtime: _runtime.Runtime | None) -> renderers.ClosableRenderer:
        raise NotImplementedError

    def _runtime_config(self) -> _runtime.RuntimeConfig:
        return _runtime.RuntimeConfig(retry=_retry.RetryPolicy(attempts=self.max_retries))

    async def _open(self) -> tuple[_runtime.Runtime | None, renderers.ClosableRenderer]:
        runtime = _runtime.Runtime(self._runtime_config()) if self.needs_runtime else None
        if runtime is None:
            return None, self._make_renderer(None)
        await runtime.__aenter__()
        try:
            return runtime, self._make_renderer(runtime)
        except BaseException:
            await runtime.aclose()
            raise

    @staticmethod
    async def _close(opened: tuple[_runtime.Runtime | None, renderers.ClosableRenderer]) -> None:
        runtime, renderer = opened
        with anyio.CancelScope(shield=True):
            await renderer.aclose()
            if runtime is not None:
                await runtime.aclose()

    # -- async use -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._shared is None and self._entered is None:
            self._entered = await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what the async side opened; a shared runtime stays open.

        ``close()`` stops the sync side.
        """
        opened, self._entered = self._entered, None
        if opened is not None:
            await self._close(opened)
        renderer, self._shared_renderer = self._shared_renderer, None
        if renderer is not None:
            await renderer.aclose()

    @asynccontextmanager
    async def _renderer(self) -> AsyncIterator[renderers.ClosableRenderer]:
        if self._portal_renderer is not None and self._on_portal():
            yield self._portal_renderer  # generate(): the background loop's own
        elif self._entered is not None:
            yield self._entered[1]
        elif self._shared is not None or not self.needs_runtime:
            # A shared runtime, or a local pipeline: one renderer, loaded once, kept.
            if self._shared_renderer is None:
                self._shared_renderer = self._make_renderer(self._shared)
            yield self._shared_renderer
        else:
            # A bare agenerate() over HTTP: a runtime for this call only.
            opened = await self._open()
            try:
                yield opened[1]
            finally:
                await self._close(opened)

    def _on_portal(self) -> bool:
        return self._portal is not None and threading.current_thread() is self._portal.thread

    async def agenerate(
        self,
        prompt: str,
        image_paths: Sequence[str | os.PathLike[str]] | None = None,
        *,
        seed: int | None = None,
    ) -> Image.Image:
        """Render ``prompt`` conditioned on the reference images, first one first.

        Args:
            prompt: The generation prompt (the agent's ``gen_prompt``).
            image_paths: Reference files; empty and missing paths are skipped.
            seed: This render's seed (default: the generator's).

        Returns:
            The rendered image.

        Raises:
            ReferenceRequiredError: The backend needs a reference and no path is usable.
            ServiceError: The backend failed after its retries.
        """
        paths = await anyio.to_thread.run_sync(_usable_paths, list(image_paths or []))
        async with self._renderer() as renderer:
            if not paths and renderer.needs_reference:
                given = len(image_paths or [])
                raise renderers.ReferenceRequiredError(
                    f"{type(self).__name__} needs at least one existing reference image; "
                    f"got {given} path(s) and none names a file"
                )
            return await self._render(renderer, prompt, paths, self.seed if seed is None else seed)

    async def _render(
        self, renderer: renderers.ClosableRenderer, prompt: str, paths: list[str], seed: int | None
    ) -> Image.Image:
        return await renderer.render(prompt, paths, seed=seed)

    # -- sync use ------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        image_paths: Sequence[str | os.PathLike[str]] | None = None,
        *,
        seed: int | None = None,
    ) -> Image.Image:
        """``agenerate`` for sync code (the original's name and arguments).

        Raises:
            RuntimeError: Called from a running event loop (use ``await agenerate``).
            ConfigurationError: The generator was given a shared runtime (it
                belongs to another event loop).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                f"{type(self).__name__}.generate() blocks, so it cannot be called from a "
                "running event loop; use 'await generator.agenerate(...)' instead"
            )
        if self._shared is not None:
            raise _errors.ConfigurationError(
                "generate() cannot use a Runtime passed to the generator (it belongs to another "
                "event loop); call 'await generator.agenerate(...)' in that loop"
            )
        portal = self._ensure_portal()
        return portal.call(lambda: self.agenerate(prompt, image_paths, seed=seed))

    def _ensure_portal(self) -> _portal.PortalThread:
        with self._portal_lock:
            if self._portal is None:
                portal = _portal.PortalThread(name=f"genevolve-{type(self).__name__}")
                runtime, renderer = portal.call(self._open)
                closers: list[Any] = [renderer.aclose]
                if runtime is not None:
                    closers.append(runtime.aclose)
                self._portal, self._portal_renderer = portal, renderer
                self._finalizer = weakref.finalize(self, _shutdown, portal, closers)
            return self._portal

    def close(self) -> None:
        """Stop the background loop ``generate`` started and close its connections."""
        with self._portal_lock:
            if self._finalizer is not None:
                self._finalizer()
                self._finalizer = None
            self._portal, self._portal_renderer = None, None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
