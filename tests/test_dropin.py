"""The original README's Python example, with only its imports and service URLs changed.

It is sync code, so the simulated backends (policy, Serper, image host, Qwen
service, Gemini) run on an event loop in a background thread, and the
agent's tools find Serper through the environment, as the original's did.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio.from_thread
import pytest
from PIL import Image

from genevolve_async.sim import SimGemini, SimServer

from .pipeline._sims import Sims, start_sims


@pytest.fixture
def sims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sims, str]]:
    """The simulated stack in a background thread, and a Gemini URL template."""
    gemini = SimGemini(image_size=(64, 48))
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(start_sims()) as started,
        portal.wrap_async_context_manager(SimServer(gemini.app)) as gemini_server,
    ):
        for key, value in started.env(tmp_path / "image-cache").items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("GOOGLE_API_KEY", "sim-key")
        monkeypatch.chdir(tmp_path)
        yield started, gemini_server.url + "/v1beta/models/{model}:generateContent"


def test_the_original_readme_example(
    sims: tuple[Sims, str], capsys: pytest.CaptureFixture[str]
) -> None:
    POLICY_URL, QWEN_URL = sims[0].policy_url, sims[0].qwen_url

    # ---- the original README's example: imports and URLs changed, nothing else ----
    from genevolve_async import GenEvolveAgent
    from genevolve_async.generator import (
        QwenImageEditServiceGenerator,  # or NanoBananaProGenerator
    )

    agent = GenEvolveAgent(
        model="GenEvolve",
        base_url=POLICY_URL,
        api_key="EMPTY",
    )
    result = agent.run("A cyberpunk version of the Sydney Opera House at sunset.")

    # z = (gen_prompt, reference_images)
    print(result.gen_prompt)
    for r in result.reference_images:
        print(r["img_id"], r["local_path"], r["note"])

    backend = QwenImageEditServiceGenerator([QWEN_URL])
    image = backend.generate(
        result.gen_prompt,
        [r["local_path"] for r in result.reference_images if r.get("local_path")],
    )
    image.save("opera.png")
    # ---- end of the example ----

    agent.close()
    backend.close()
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == result.gen_prompt and result.termination == "answer"
    assert [line.split()[0] for line in printed[1:]] == ["IMG_001", "IMG_002"]
    with Image.open("opera.png") as saved:
        assert saved.format == "PNG" and max(saved.size) == 1024
    assert sims[0].qwen.received[0]["image_count"] == 2
    assert result.to_dict()["gen_prompt"] == result.gen_prompt


def test_the_quickstart_flow_with_nano_banana_pro(sims: tuple[Sims, str]) -> None:
    from genevolve_async import GenEvolveAgent
    from genevolve_async.generator import NanoBananaProGenerator

    agent = GenEvolveAgent(model="GenEvolve", base_url=sims[0].policy_url, api_key="EMPTY")
    result = agent.run("A 1990s travel-magazine cover of two backpackers at the Eiffel Tower.")
    if not result.gen_prompt or not result.reference_images:
        pytest.fail("the agent did not produce a usable program")
    backend = NanoBananaProGenerator(endpoint_template=sims[1])
    refs = [r["local_path"] for r in result.reference_images if r.get("local_path")]
    image = backend.generate(result.gen_prompt, refs)
    image.save("paris.png")
    agent.close()
    backend.close()
    assert Path("paris.png").stat().st_size > 0 and image.size == (64, 48)
