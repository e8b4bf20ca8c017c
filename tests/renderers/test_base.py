"""The Renderer protocol, SPEC's program fallback, RendererBase's runtime, make_renderer."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import genevolve_async.renderers as renderers
from genevolve_async import (
    ConfigurationError,
    Program,
    ReferenceImage,
    Runtime,
    RuntimeClosedError,
)
from genevolve_async.renderers import (
    ClosableRenderer,
    DiffusersRenderer,
    NanoBananaRenderer,
    QwenServiceRenderer,
    ReferenceRequiredError,
    Renderer,
    RendererBase,
    make_renderer,
    render_program,
)

Call = tuple[str, list[str], int | None]


class Recording(RendererBase):
    """Records what it was asked to render."""

    name = "recording"

    def __init__(self, *, needs_reference: bool = False, runtime: Runtime | None = None) -> None:
        super().__init__(runtime=runtime)
        self.needs_reference = needs_reference
        self.calls: list[Call] = []

    async def render(
        self,
        prompt: str,
        reference_paths: Sequence[str | os.PathLike[str]],
        *,
        seed: int | None = None,
    ) -> Image.Image:
        self.calls.append((prompt, [os.fspath(p) for p in reference_paths], seed))
        return Image.new("RGB", (8, 8))


class Plain:
    """A renderer that only satisfies the protocol (no base class)."""

    name = "plain"
    needs_reference = True

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def render(
        self,
        prompt: str,
        reference_paths: Sequence[str | os.PathLike[str]],
        *,
        seed: int | None = None,
    ) -> Image.Image:
        self.calls.append((prompt, [os.fspath(p) for p in reference_paths], seed))
        return Image.new("RGB", (4, 4))


@pytest.fixture
def refs(tmp_path: Path) -> list[str]:
    paths = []
    for name in ("a.png", "b.png"):
        path = tmp_path / name
        Image.new("RGB", (8, 8)).save(path)
        paths.append(str(path))
    return paths


def program(gen_prompt: str, paths: list[str]) -> Program:
    return Program(
        gen_prompt=gen_prompt,
        reference_images=tuple(
            ReferenceImage(img_id=f"IMG_{i:03d}", local_path=p) for i, p in enumerate(paths, 1)
        ),
    )


async def test_program_with_existing_references_renders_the_program(refs: list[str]) -> None:
    renderer = Recording()
    await renderer.render_program(program("edit the first", refs), request="a fox", seed=3)
    assert renderer.calls == [("edit the first", refs, 3)]


async def test_missing_files_are_left_out(refs: list[str], tmp_path: Path) -> None:
    renderer = Recording()
    missing = str(tmp_path / "gone.png")
    await renderer.render_program(program("edit", [missing, refs[1]]), request="a fox")
    assert renderer.calls == [("edit", [refs[1]], None)]


@pytest.mark.parametrize("case", ["no_files", "no_refs", "no_prompt"])
async def test_fallback_renders_the_request_without_references(
    case: str, refs: list[str], tmp_path: Path
) -> None:
    prog = {
        "no_files": program("edit", [str(tmp_path / "x.png")]),
        "no_refs": program("edit", []),
        "no_prompt": program("  ", refs),
    }[case]
    renderer = Recording()
    await renderer.render_program(prog, request="a red fox", seed=1)
    assert renderer.calls == [("a red fox", [], 1)]


async def test_mapping_rows_are_accepted(refs: list[str]) -> None:
    row = {
        "gen_prompt": "combine them",
        "reference_images": [
            {"img_id": "IMG_001", "local_path": refs[0]},
            ReferenceImage(img_id="IMG_002", local_path=refs[1]),
            Path(refs[0]),
            {"img_id": "IMG_003"},  # no local file: ignored
        ],
    }
    renderer = Recording()
    await renderer.render_program(row, request="x")
    assert renderer.calls == [("combine them", [refs[0], refs[1], refs[0]], None)]


async def test_mapping_without_program_falls_back() -> None:
    renderer = Recording()
    await renderer.render_program({"gen_prompt": None, "reference_images": "junk"}, request="r")
    assert renderer.calls == [("r", [], None)]


@pytest.mark.parametrize("prog", [program("edit", []), program("", []), program("edit", ["/nope"])])
async def test_reference_needing_renderer_says_so(prog: Program) -> None:
    renderer = Recording(needs_reference=True)
    with pytest.raises(ReferenceRequiredError, match="'recording' needs at least one reference"):
        await renderer.render_program(prog, request="a fox")
    assert not renderer.calls
    assert issubclass(ReferenceRequiredError, ConfigurationError)


async def test_empty_request_fallback_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="nothing to render"):
        await Recording().render_program(program("", []), request="  ")


async def test_free_function_works_on_any_protocol_renderer(refs: list[str]) -> None:
    plain = Plain()
    assert isinstance(plain, Renderer)
    await render_program(plain, program("p", refs[:1]), request="r")
    assert plain.calls == [("p", refs[:1], None)]
    with pytest.raises(ReferenceRequiredError, match="'plain'"):
        await render_program(plain, program("p", []), request="r")


async def test_own_runtime_lifecycle() -> None:
    renderer = Recording()
    with pytest.raises(RuntimeClosedError, match="without a runtime"):
        _ = renderer.runtime
    async with renderer as entered:
        assert entered is renderer
        runtime = renderer.runtime
        opened = runtime.is_open
    assert opened and not runtime.is_open
    with pytest.raises(RuntimeClosedError, match="closed"):
        _ = renderer.runtime
    with pytest.raises(RuntimeClosedError):
        await renderer.__aenter__()


async def test_shared_runtime_is_not_closed(runtime: Runtime) -> None:
    renderer = Recording(runtime=runtime)
    assert renderer.runtime is runtime  # usable without entering
    async with renderer:
        assert renderer.runtime is runtime
    assert runtime.is_open
    await renderer.aclose()  # idempotent


async def test_entering_twice_is_refused(runtime: Runtime) -> None:
    async with Recording(runtime=runtime) as renderer:
        with pytest.raises(RuntimeClosedError, match="already open"):
            await renderer.__aenter__()


async def test_make_renderer_builds_each_backend(runtime: Runtime) -> None:
    qwen = make_renderer(
        "qwen-image-edit-service", runtime=runtime, service_urls="http://h:1/", seed=4
    )
    assert isinstance(qwen, QwenServiceRenderer)
    assert qwen.urls == ["http://h:1"] and qwen.defaults["seed"] == 4
    nano = make_renderer("nano-banana-pro", runtime=runtime, rpm=30)
    assert isinstance(nano, NanoBananaRenderer) and nano.rpm == 30
    local = make_renderer("qwen-image-edit", pipeline=object())
    assert isinstance(local, DiffusersRenderer)
    for renderer in (qwen, nano, local):
        assert isinstance(renderer, ClosableRenderer)
        assert renderer.needs_reference is (renderer is not nano)
    await local.aclose()


@pytest.mark.parametrize(
    ("backend", "kwargs", "match"),
    [
        ("dall-e", {}, "unknown renderer backend"),
        ("qwen-image-edit-service", {}, "needs service_urls"),
        ("nano-banana-pro", {"service_urls": ["http://h"]}, "service_urls apply"),
        ("nano-banana-pro", {"colour": "red"}, "'nano-banana-pro'.*colour"),
    ],
)
def test_make_renderer_errors(backend: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        make_renderer(backend, **kwargs)


def test_all_names_exist() -> None:
    for name in renderers.__all__:
        assert hasattr(renderers, name), name
    assert sorted(renderers.__all__) == sorted(set(renderers.__all__))
