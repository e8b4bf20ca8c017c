"""Before a batch: dead endpoints and a judge without ground truth stop it at once; after it,
a stage without one success says so in the exit status."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from genevolve_async import Runtime
from genevolve_async.__main__ import main
from genevolve_async.pipeline._preflight import Endpoint, PreflightError, check_endpoints
from genevolve_async.sim import QwenFaults, SimPolicy, SimServer

from ._sims import bench_rows, start_sims, write_bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A loopback port where nothing listens (bound, so no one else takes it, but not listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "GENEVOLVE_", "SERPER_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IMAGE_DOWNLOAD_DIR", str(tmp_path / "cache"))


def _rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.usefixtures("clean_env")
def test_a_dead_policy_url_stops_run_at_once_naming_it(
    dead_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["run", "--prompt", "a lighthouse", "--output-dir", str(out)]
    status = main([*argv, "--base-url", dead_url + "/v1", "--tools", "query_knowledge"])
    error = capsys.readouterr().err
    assert status == 1
    assert f"policy endpoint {dead_url}/v1/models: nothing answered (connection refused)" in error
    assert "--base-url" in error
    assert not (out / "rollouts.jsonl").exists()  # nothing was started


@pytest.mark.usefixtures("clean_env")
def test_a_dead_service_url_stops_render_naming_it(
    dead_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"id": "0", "prompt": "x", "gen_prompt": "x"}]))
    status = main(
        [
            *("render", "--input", str(results), "--output-dir", str(tmp_path / "out")),
            *("--service-url", dead_url),
        ]
    )
    error = capsys.readouterr().err
    assert status == 1
    assert f"Qwen service endpoint {dead_url}/health: nothing answered" in error
    assert "--service-url" in error


async def test_a_policy_url_without_v1_is_named_with_the_hint() -> None:
    async with SimServer(SimPolicy().app) as server, Runtime() as runtime:
        await check_endpoints(runtime, [Endpoint.policy(server.url + "/v1", "EMPTY")])
        with pytest.raises(PreflightError) as info:
            await check_endpoints(runtime, [Endpoint.policy(server.url, "EMPTY")])
    message = str(info.value)
    assert f"policy endpoint {server.url}/models answered HTTP 404" in message
    assert "ends in /v1" in message


async def test_every_dead_endpoint_is_listed_at_once(dead_url: str) -> None:
    async with Runtime() as runtime:
        with pytest.raises(PreflightError) as info:
            with anyio.fail_after(30):  # a hang detector: refusals come back at once
                await check_endpoints(
                    runtime,
                    [
                        Endpoint.policy(dead_url + "/v1", "EMPTY"),
                        Endpoint.qwen(dead_url),
                        Endpoint.judge(dead_url + "/v1", "sk-secret-judge-key"),
                    ],
                )
    lines = str(info.value).splitlines()
    assert [line.split(" endpoint ")[0].strip() for line in lines[1:4]] == [
        "policy",
        "Qwen service",
        "judge",
    ]
    assert "sk-secret-judge-key" not in str(info.value)


@pytest.mark.usefixtures("clean_env")
def test_pipeline_without_any_gt_image_is_refused_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dead_url: str
) -> None:
    data = _rows(tmp_path / "rows.jsonl", [{"id": str(i), "prompt": "x"} for i in range(3)])
    out = tmp_path / "out"
    status = main(
        [
            *("pipeline", "--input", str(data), "--output-dir", str(out), "--base-url", dead_url),
            *("--service-url", dead_url, "--judge-base-url", dead_url),
            *("--tools", "query_knowledge"),
        ]
    )
    error = capsys.readouterr().err
    assert status == 1
    assert "none of the 3 rows" in error and "gt_image" in error and "--gt-root" in error
    assert not out.exists()


@pytest.mark.usefixtures("clean_env")
def test_gt_images_that_do_not_resolve_point_at_gt_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dead_url: str
) -> None:
    data = _rows(tmp_path / "rows.jsonl", [{"id": "0", "prompt": "x", "gt_image": "gt/0.png"}])
    status = main(
        [
            *("evaluate", "--results", str(data), "--judge-base-url", dead_url),
            *("--gt-root", str(tmp_path / "elsewhere")),
        ]
    )
    error = capsys.readouterr().err
    assert status == 1
    assert "none of the ground-truth images named by 1 row" in error
    assert "point --gt-root at the dataset folder" in error


async def test_a_stage_in_which_nothing_succeeded_exits_3(tmp_path: Path) -> None:
    data = write_bench(tmp_path / "bench", bench_rows(3))
    async with start_sims() as sims:
        sims.qwen.faults = QwenFaults(success_false=1.0)
        argv = ["-m", "genevolve_async", "pipeline", "--input", str(data)]
        argv += ["--output-dir", str(tmp_path / "out"), "--base-url", sims.policy_url]
        argv += [
            "--service-url",
            sims.qwen_url,
            "--rpm",
            "60000",
            "--render-option",
            "long_side=64",
        ]
        result = await anyio.run_process(
            [sys.executable, *argv],
            env=sims.process_env(tmp_path / "cache", ROOT),
            cwd=ROOT,
            check=False,
        )
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 3, output
    assert "[run] 3 items, 3 ok" in output and "[render] 3 items, 0 ok, 3 not ok" in output
    assert "no item succeeded in stage render, evaluate (exit status 3)" in output
    # The judge's failures name their real reason, not only a kind.
    assert "missing_image, e.g.: no generated image:" in output
