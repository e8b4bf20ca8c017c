from __future__ import annotations

import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from PIL import Image

pytest.importorskip("diffusers")

from genevolve_async.renderers import diffusers as diffusers_module
from genevolve_async.renderers.diffusers import (
    DiffusersRenderer,
    open_reference,
)


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    path = tmp_path / "ref.png"
    Image.new("RGB", (80, 60), (200, 30, 30)).save(path)
    return path


class _Output:
    def __init__(self, images: list[Image.Image]) -> None:
        self.images = images


class RecordingPipeline:
    """Stands in for the pipeline: records its keyword arguments, returns a flat image."""

    device = "cpu"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.threads: list[int] = []

    def __call__(self, **kwargs: Any) -> _Output:
        self.calls.append(kwargs)
        self.threads.append(threading.get_ident())
        return _Output([Image.new("RGB", (kwargs["width"], kwargs["height"]))])


class OffLoopProbe:
    """Wraps the real pipeline: records the calling thread, and, mid-call, has the
    event loop run a callback and wait for it to come back."""

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline
        self.threads: list[int] = []
        self.loop_answered: list[int] = []

    def __getattr__(self, name: str) -> Any:  # device, transformer.config, ...
        return getattr(self._pipeline, name)

    def __call__(self, **kwargs: Any) -> Any:
        self.threads.append(threading.get_ident())
        # Only an AnyIO worker thread may call back into the loop, and the loop
        # can only answer while this call is in progress if it is not blocked by it.
        self.loop_answered.append(anyio.from_thread.run_sync(threading.get_ident))
        return self._pipeline(**kwargs)


async def test_renders_off_the_event_loop(tiny_pipeline: Any, reference: Path) -> None:
    probe = OffLoopProbe(tiny_pipeline)
    renderer = DiffusersRenderer(pipeline=probe, num_inference_steps=6)
    loop_thread = threading.get_ident()
    async with renderer:
        image = await renderer.render("make it blue", [reference], seed=1, width=64, height=64)
    assert image.size == (64, 64) and image.mode == "RGB"
    # The pipeline ran in a worker thread while the loop stayed free to serve others.
    assert len(probe.threads) == 1 and probe.threads[0] != loop_thread
    assert probe.loop_answered == [loop_thread]


async def test_same_seed_same_pixels(tiny_pipeline: Any, reference: Path) -> None:
    async with DiffusersRenderer(pipeline=tiny_pipeline, num_inference_steps=2) as renderer:
        first = await renderer.render("a cat", [reference], seed=7, width=64, height=64)
        again = await renderer.render("a cat", [reference], seed=7, width=64, height=64)
        other = await renderer.render("a cat", [reference], seed=8, width=64, height=64)
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


async def test_size_follows_first_reference(tiny_pipeline: Any, reference: Path) -> None:
    async with DiffusersRenderer(pipeline=tiny_pipeline, num_inference_steps=2) as renderer:
        image = await renderer.render("a cat", [reference, reference], width=64)
    assert image.size == (64, 48)  # 80x60 reference, 4:3


async def test_no_reference_is_a_clear_error(tiny_pipeline: Any) -> None:
    async with DiffusersRenderer(pipeline=tiny_pipeline) as renderer:
        with pytest.raises(ValueError, match="needs at least one reference image"):
            await renderer.render("a cat", [])


async def test_spec_defaults_and_reference_cap(reference: Path) -> None:
    pipeline = RecordingPipeline()
    async with DiffusersRenderer(pipeline=pipeline) as renderer:
        image = await renderer.render("a cat", [reference] * 6, seed=3)
    (call,) = pipeline.calls
    assert image.size == (1024, 768)
    assert len(call["image"]) == 4
    assert call["true_cfg_scale"] == 4.0
    assert call["negative_prompt"] == " "
    assert call["num_inference_steps"] == 40
    assert call["guidance_scale"] == 1.0
    assert call["num_images_per_prompt"] == 1
    assert call["generator"].initial_seed() == 3
    assert pipeline.threads[0] != threading.get_ident()


async def test_guidance_scale_only_for_guidance_models(tiny_pipeline: Any) -> None:
    # Qwen-Image-Edit is not guidance-distilled; passing it only makes diffusers warn.
    assert not diffusers_module._uses_guidance(tiny_pipeline)
    assert diffusers_module._uses_guidance(RecordingPipeline())


async def test_concurrent_first_callers_share_one_load(
    monkeypatch: pytest.MonkeyPatch, reference: Path
) -> None:
    loads: list[tuple[str, str | None]] = []
    pipeline = RecordingPipeline()

    def fake_load(model: str, *, device: str | None = None, dtype: str | None = None) -> Any:
        loads.append((model, device))
        time.sleep(0.05)  # long enough for the other callers to arrive
        return pipeline

    monkeypatch.setattr(diffusers_module, "load_pipeline", fake_load)
    renderer = DiffusersRenderer("some/model", device="cpu")
    async with renderer, anyio.create_task_group() as tg:
        for seed in range(3):
            tg.start_soon(partial(renderer.render, "x", [reference], seed=seed))
    assert loads == [("some/model", "cpu")]
    assert len(pipeline.calls) == 3


async def test_one_job_at_a_time_per_device(reference: Path) -> None:
    active, peak = 0, 0
    lock = threading.Lock()

    class SlowPipeline(RecordingPipeline):
        def __call__(self, **kwargs: Any) -> _Output:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            with lock:
                active -= 1
            return super().__call__(**kwargs)

    renderer = DiffusersRenderer(pipeline=SlowPipeline())
    async with renderer, anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(lambda: renderer.render("x", [reference], width=32, height=32))
    assert peak == 1


async def test_closed_renderer_refuses(reference: Path) -> None:
    renderer = DiffusersRenderer(pipeline=RecordingPipeline())
    await renderer.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await renderer.render("x", [reference])
    with pytest.raises(RuntimeError, match="closed"):
        await renderer.__aenter__()


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ImportError, match=r"genevolve-async\[local\]"):
        DiffusersRenderer()


def test_reference_is_upright_rgb(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise
    Image.new("L", (40, 20)).save(path, exif=exif)
    image = open_reference(path)
    assert image.mode == "RGB"
    assert image.size == (20, 40)
