"""``genevolve_async.generator``: the original's generator classes, sync and async."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from PIL import Image

import genevolve_async.generator as generator
from genevolve_async import ConfigurationError, Runtime, ServiceError
from genevolve_async.generator import (
    NanoBananaProGenerator,
    QwenImageEditGenerator,
    QwenImageEditServiceGenerator,
)
from genevolve_async.renderers import ReferenceRequiredError
from genevolve_async.sim import SimGemini, SimQwenService, SimServer, make_png


class Served:
    """A simulated Qwen service and Gemini API on an event loop in another thread."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, stack: ExitStack) -> None:
        self.qwen = SimQwenService(gpus=4)
        self.gemini = SimGemini(image_size=(48, 32))
        self.qwen_url = stack.enter_context(
            portal.wrap_async_context_manager(SimServer(self.qwen.app))
        ).url
        self.gemini_url = stack.enter_context(
            portal.wrap_async_context_manager(SimServer(self.gemini.app))
        ).url


@pytest.fixture
def served() -> Iterator[Served]:
    with anyio.from_thread.start_blocking_portal() as portal, ExitStack() as stack:
        yield Served(portal, stack)


@pytest.fixture(scope="module")
def tiny_pipeline() -> Iterator[Any]:
    """A random-weight Qwen-Image-Edit pipeline (needs the local extra)."""
    pytest.importorskip("diffusers")
    from tests._tiny_qwen import tiny_pipeline_context

    with tiny_pipeline_context() as pipeline:
        yield pipeline


@pytest.fixture
def refs(tmp_path: Path) -> list[str]:
    wide = tmp_path / "wide.png"
    wide.write_bytes(make_png((10, 120, 200), size=(64, 32)))
    return [str(wide), str(tmp_path / "gone.png"), ""]


def test_generate_returns_a_pil_image_from_sync_code(served: Served, refs: list[str]) -> None:
    with QwenImageEditServiceGenerator([served.qwen_url], long_side=128) as backend:
        first = backend.generate("the first reference image at dusk", refs)
        second = backend.generate("again", refs[:1], seed=9)
        thread = backend._portal.thread if backend._portal else None
    assert isinstance(first, Image.Image) and first.size == (128, 64)
    assert isinstance(second, Image.Image)
    # Missing and empty paths were skipped, as the original did; one loop served both calls.
    assert [r["image_count"] for r in served.qwen.received] == [1, 1]
    assert [r["seed"] for r in served.qwen.received] == [0, 9]
    assert thread is not None and not thread.is_alive()
    assert backend.urls == [served.qwen_url]


def test_no_usable_reference_is_a_value_error(served: Served, tmp_path: Path) -> None:
    backend = QwenImageEditServiceGenerator(served.qwen_url)
    try:
        with pytest.raises(ReferenceRequiredError, match="none names a file") as info:
            backend.generate("p", [str(tmp_path / "nope.png")])
        assert isinstance(info.value, ValueError)
    finally:
        backend.close()
    assert served.qwen.received == []


async def test_generate_inside_a_loop_points_to_agenerate(tmp_path: Path) -> None:
    backend = QwenImageEditServiceGenerator(["http://127.0.0.1:9"])
    with pytest.raises(RuntimeError, match=r"await generator\.agenerate"):
        backend.generate("p", [])
    async with Runtime() as runtime:
        shared = QwenImageEditServiceGenerator(["http://127.0.0.1:9"], runtime=runtime)
        await anyio.to_thread.run_sync(_refused, shared)


def _refused(backend: QwenImageEditServiceGenerator) -> None:
    with pytest.raises(ConfigurationError, match="another event loop"):
        backend.generate("p", [])


async def test_agenerate_bare_entered_and_on_a_shared_runtime(refs: list[str]) -> None:
    qwen = SimQwenService(gpus=4)
    async with SimServer(qwen.app) as server:
        backend = QwenImageEditServiceGenerator([server.url], long_side=64)
        bare = await backend.agenerate("p", refs)  # a runtime for this call only
        async with backend:
            entered = [await backend.agenerate("p", refs, seed=s) for s in (1, 2)]
        async with Runtime() as runtime:
            shared = QwenImageEditServiceGenerator(server.url, long_side=64, runtime=runtime)
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(shared.agenerate, "p", refs)
            await shared.aclose()
            assert runtime.is_open
    assert bare.size == entered[0].size == (64, 32)
    assert [r["seed"] for r in qwen.received[:3]] == [0, 1, 2] and len(qwen.received) == 6


def test_constructor_checks_name_the_problem() -> None:
    with pytest.raises(ConfigurationError, match="at least one URL"):
        QwenImageEditServiceGenerator([])
    with pytest.raises(ConfigurationError, match="POST /generate only"):
        QwenImageEditServiceGenerator(["http://h:1"], path="/edit")
    with pytest.raises(ConfigurationError, match="multiples of 16"):
        QwenImageEditServiceGenerator(["http://h:1"], size_multiple=8)
    with pytest.raises(ConfigurationError, match="no_such_option"):
        QwenImageEditServiceGenerator(["http://h:1"], no_such_option=1)
    with pytest.raises(ConfigurationError, match="max_retries"):
        QwenImageEditServiceGenerator(["http://h:1"], max_retries=0)
    assert QwenImageEditServiceGenerator("http://h:1/generate/").urls == ["http://h:1"]


def test_max_retries_bounds_the_tries(served: Served, refs: list[str]) -> None:
    served.qwen.fail_next(5, 500)
    with (
        QwenImageEditServiceGenerator([served.qwen_url], max_retries=2) as backend,
        pytest.raises(ServiceError, match="500"),
    ):
        backend.generate("p", refs)
    assert served.qwen.stats.routes["POST /generate"].requests == 2


def test_nano_banana_renders_without_references(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="GOOGLE_API_KEY"):
        NanoBananaProGenerator()
    with pytest.raises(ConfigurationError, match="endpoint_template"):
        NanoBananaProGenerator(api_key="k", endpoint_template="http://h/generate")
    monkeypatch.setenv("GEMINI_API_KEY", "sim-key")
    template = served.gemini_url + "/v1beta/models/{model}:generateContent"
    with NanoBananaProGenerator(endpoint_template=template) as backend:
        image = backend.generate("a red fox in snow")
    assert image.size == (48, 32)
    assert served.gemini.requests[0].model == "gemini-3-pro-image-preview"


def test_local_generator_on_a_tiny_pipeline(tiny_pipeline: Any, refs: list[str]) -> None:
    backend = QwenImageEditGenerator(pipeline=tiny_pipeline, num_inference_steps=2, long_side=64)
    with backend:
        image = backend.generate("the first reference image", refs)
    assert image.size == (64, 32)
    with (
        QwenImageEditGenerator(pipeline=tiny_pipeline) as empty,
        pytest.raises(ReferenceRequiredError),
    ):
        empty.generate("p", [])


async def test_local_agenerate_keeps_one_renderer(refs: list[str]) -> None:
    pytest.importorskip("torch")
    from tests.renderers.test_diffusers import RecordingPipeline

    pipeline = RecordingPipeline()
    backend = QwenImageEditGenerator(pipeline=pipeline, long_side=96, size_multiple=32, seed=4)
    images = [await backend.agenerate("p", refs) for _ in range(2)]
    kept = backend._shared_renderer
    await backend.aclose()
    assert kept is not None and backend._shared_renderer is None
    assert [i.size for i in images] == [(96, 64)] * 2  # 96 x 48 rounded to multiples of 32
    assert [c["generator"].initial_seed() for c in pipeline.calls] == [4, 4]


def test_the_module_exports_exactly_its_all() -> None:
    public = {
        name
        for name, value in vars(generator).items()
        if not name.startswith("_") and not isinstance(value, type(generator))
    }
    assert public - {"annotations"} == set(generator.__all__)
    assert all(
        getattr(generator, n).__module__ == "genevolve_async.generator" for n in generator.__all__
    )
    assert threading.active_count() >= 1
