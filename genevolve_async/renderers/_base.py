"""The renderer seam: the `Renderer` protocol, SPEC's program fallback, and a base class.

Every backend (the Qwen-Image-Edit service client, Nano Banana Pro, local
diffusers) answers `await renderer.render(prompt, reference_paths, seed=...)`
with a PIL image. `render_program` applies SPEC section 4's render-stage rule
on top of any renderer: a program with a `gen_prompt` and at least one
existing reference file renders the program, anything else renders the
original request without references, and a renderer that cannot work without
a reference says so with `ReferenceRequiredError`.

`RendererBase` gives the HTTP renderers their runtime handling: use the
`Runtime` you pass in, or open (and later close) a private one when used as
`async with renderer:`.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import anyio
from PIL import Image

from .._errors import ConfigurationError, RuntimeClosedError
from .._runtime import Runtime
from ..protocol import Program

__all__ = [
    "ClosableRenderer",
    "ReferenceRequiredError",
    "Renderer",
    "RendererBase",
    "render_program",
]

PathLike = str | os.PathLike[str]


class ReferenceRequiredError(ConfigurationError):
    """A renderer that needs a reference image (Qwen-Image-Edit) got none usable.

    A :class:`~genevolve_async.ConfigurationError`: retrying will not help;
    render such rows with a reference-free backend (Nano Banana Pro) instead.
    """


@runtime_checkable
class Renderer(Protocol):
    """What the render stage needs from an image backend."""

    name: str
    """Short backend name, e.g. ``qwen-image-edit-service``."""
    needs_reference: bool
    """True when the backend cannot render without at least one reference image."""

    async def render(
        self,
        prompt: str,
        reference_paths: Sequence[PathLike],
        *,
        seed: int | None = None,
    ) -> Image.Image:
        """Render ``prompt`` conditioned on the reference files, first one first."""
        ...


@runtime_checkable
class ClosableRenderer(Renderer, Protocol):
    """A :class:`Renderer` that owns resources: use it as ``async with`` or call ``aclose``."""

    async def aclose(self) -> None:
        """Release what the renderer holds; later renders raise."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def _program_parts(program: Program | Mapping[str, Any]) -> tuple[str, list[str]]:
    """The program's prompt and candidate reference paths (existence unchecked)."""
    if isinstance(program, Program):
        return program.gen_prompt.strip(), program.reference_paths
    prompt = program.get("gen_prompt")
    refs = program.get("reference_images") or []
    paths: list[str] = []
    for ref in refs if isinstance(refs, list | tuple) else []:
        # Rows carry dicts (or ReferenceImage objects) with local_path; accept bare paths too.
        path = ref if isinstance(ref, str | os.PathLike) else ref.get("local_path")
        if path:
            paths.append(os.fspath(path))
    return (prompt.strip() if isinstance(prompt, str) else ""), paths


async def _existing(paths: Sequence[str]) -> list[str]:
    # stat() is blocking I/O (network filesystems can take a while): off the loop.
    return [p for p in paths if await anyio.Path(p).is_file()]


async def render_program(
    renderer: Renderer,
    program: Program | Mapping[str, Any],
    *,
    request: str,
    seed: int | None = None,
) -> Image.Image:
    """Render a finalized program with SPEC's fallback, on any renderer.

    A program with a non-empty ``gen_prompt`` and at least one reference file
    that exists renders ``gen_prompt`` with the existing references (missing
    files are left out). Otherwise the original ``request`` is rendered with
    no references.

    Args:
        renderer: The backend to render with.
        program: A :class:`~genevolve_async.Program`, or a mapping shaped like
            one (a results row: ``gen_prompt`` and ``reference_images`` entries
            with ``local_path``).
        request: The user's original request (the fallback prompt).
        seed: Passed to the renderer.

    Returns:
        The rendered image.

    Raises:
        ReferenceRequiredError: The renderer needs a reference and the program
            has no usable one.
        ConfigurationError: The fallback request is empty too.
    """
    prompt, candidates = _program_parts(program)
    paths = await _existing(candidates) if prompt and candidates else []
    if prompt and paths:
        return await renderer.render(prompt, paths, seed=seed)
    if renderer.needs_reference:
        why = (
            "the program has no gen_prompt"
            if not prompt
            else f"none of its {len(candidates)} reference files exists"
            if candidates
            else "the program cites no reference image"
        )
        raise ReferenceRequiredError(
            f"renderer {renderer.name!r} needs at least one reference image, but {why}; "
            "render reference-free rows with a backend such as 'nano-banana-pro'"
        )
    if not request.strip():
        raise ConfigurationError("nothing to render: no usable program and an empty request")
    return await renderer.render(request, [], seed=seed)


class _State(enum.Enum):
    UNOPENED = 1
    OPEN = 2
    CLOSED = 3


class RendererBase:
    """Runtime handling and ``render_program`` for renderers built on a :class:`Runtime`.

    Given a runtime, the renderer uses it and never closes it. Without one,
    ``async with renderer:`` opens a private runtime and closes it on exit.
    Subclasses set ``name`` and ``needs_reference`` and implement ``render``.

    Args:
        runtime: The shared runtime; ``None`` means the renderer opens its own
            when entered.
    """

    name: str = "renderer"
    needs_reference: bool = False

    def __init__(self, *, runtime: Runtime | None = None) -> None:
        self._shared_runtime = runtime
        self._own_runtime: Runtime | None = None
        self._state = _State.UNOPENED

    async def __aenter__(self) -> Self:
        if self._state is _State.CLOSED:
            raise RuntimeClosedError(f"renderer {self.name!r} is closed; make a new one")
        if self._state is _State.OPEN:
            raise RuntimeClosedError(f"renderer {self.name!r} is already open")
        if self._shared_runtime is None:
            own = Runtime()
            await own.__aenter__()
            self._own_runtime = own
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the private runtime, if any (a shared one stays open). Idempotent."""
        self._state = _State.CLOSED
        own, self._own_runtime = self._own_runtime, None
        if own is not None:
            await own.aclose()

    @property
    def runtime(self) -> Runtime:
        """The runtime this renderer works in.

        Raises:
            RuntimeClosedError: The renderer is closed, or it has no runtime
                because it was made without one and not entered.
        """
        if self._state is _State.CLOSED:
            raise RuntimeClosedError(f"renderer {self.name!r} is closed; make a new one")
        if self._shared_runtime is not None:
            return self._shared_runtime
        if self._own_runtime is None:
            raise RuntimeClosedError(
                f"renderer {self.name!r} was made without a runtime: pass runtime=... "
                "or use it as 'async with renderer:' so it opens its own"
            )
        return self._own_runtime

    async def render(
        self,
        prompt: str,
        reference_paths: Sequence[PathLike],
        *,
        seed: int | None = None,
    ) -> Image.Image:
        """Render ``prompt`` conditioned on the reference files (subclasses implement)."""
        raise NotImplementedError

    async def render_program(
        self,
        program: Program | Mapping[str, Any],
        *,
        request: str,
        seed: int | None = None,
    ) -> Image.Image:
        """Render a program with SPEC's fallback; see :func:`render_program`.

        Args:
            program: The finalized program or a results row.
            request: The original request, rendered when the program is unusable.
            seed: Passed to ``render``.

        Returns:
            The rendered image.

        Raises:
            ReferenceRequiredError: This renderer needs a reference and has none.
        """
        return await render_program(self, program, request=request, seed=seed)
