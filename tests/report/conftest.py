"""One simulated, sampled pipeline run per session, with hostile text in its rows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from genevolve_async.pipeline._cli import build_parser
from genevolve_async.pipeline._commands import run_command

from ..pipeline._sims import bench_rows, start_sims, write_bench

INJECTED = "<script>window.__pwned = 1</script> a lighthouse"
INJECTED_CATEGORY = 'x"><img src=nope onerror="window.__pwned=2">'
PROMPTS, SAMPLES = 6, 2


def hostile_rows() -> list[dict[str, Any]]:
    rows = bench_rows(PROMPTS)
    rows[1]["question"] = INJECTED
    rows[2]["category"] = INJECTED_CATEGORY
    return rows


async def _pipeline(tmp: Path) -> None:
    saved = dict(os.environ)
    try:
        async with start_sims() as sims:
            os.environ.update(sims.env(tmp / "cache"))
            data = write_bench(tmp / "bench", hostile_rows())
            argv = [
                "pipeline", "--input", str(data), "--output-dir", str(tmp / "out"),
                "--base-url", sims.policy_url, "--service-url", sims.qwen_url,
                "--render-option", "long_side=64", "--samples-per-prompt", str(SAMPLES),
                "--seed", "5", "--quiet",
            ]  # fmt: skip
            assert await run_command(build_parser().parse_args(argv)) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder of a finished pipeline run: 6 prompts x 2 samples, judged."""
    tmp = tmp_path_factory.mktemp("report-run")
    anyio.run(_pipeline, tmp)
    yield tmp
