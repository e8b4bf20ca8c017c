"""The command line and the original's scripts, in real processes against loopback sims."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from genevolve_async.__main__ import main
from genevolve_async.sim import JudgeFaults

from .pipeline._sims import Sims, bench_rows, checkpoint_lines, load_json, start_sims, write_bench

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


@pytest.fixture
async def sims() -> AsyncIterator[Sims]:
    async with start_sims(model_latency=0.03, judge_faults=JudgeFaults(fenced=0.3)) as started:
        yield started


def _env(sims: Sims, tmp_path: Path) -> dict[str, str]:
    return sims.process_env(tmp_path / "cache", ROOT)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def _wait_for_lines(path: Path, count: int, process: Process) -> None:
    """Wait until another process has written ``count`` lines to ``path``."""
    with anyio.fail_after(60):
        # Nothing to wait on but the file itself: poll it.
        while _lines(path) < count:
            assert process.returncode is None, "the run ended before the signal could land"
            await anyio.sleep(0.01)


async def _run(argv: list[str], env: dict[str, str]) -> str:
    result = await anyio.run_process([sys.executable, *argv], env=env, check=False, cwd=ROOT)
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, output
    return output


async def test_the_scripts_chain_and_the_pipeline_over_200_rows(sims: Sims, tmp_path: Path) -> None:
    data = write_bench(tmp_path / "bench", bench_rows(200), extra_lines=["not json"])
    env = _env(sims, tmp_path)
    run, render, pipe = tmp_path / "run", tmp_path / "render", tmp_path / "pipe"
    out = await _run(
        [
            str(SCRIPTS / "run_agent.py"),
            "--input",
            str(data.parent),
            "--output-dir",
            str(run),
            "--base-url",
            sims.policy_url,
            "--parallel",
            "64",
        ],
        env,
    )
    assert "line 201: not valid JSON" in out and "terminations: answer 200" in out
    await _run(
        [
            str(SCRIPTS / "generate_images.py"),
            "--input",
            str(run / "results.json"),
            "--output-dir",
            str(render),
            "--backend",
            "qwen-image-edit-service",
            "--service-url",
            sims.qwen_url,
            "--parallel",
            "16",
            "--render-option",
            "long_side=128",
        ],
        env,
    )
    out = await _run(
        [
            str(SCRIPTS / "evaluate_images.py"),
            "--results",
            str(render / "results.json"),
            "--gt-root",
            str(data.parent),
            "--max-workers",
            "16",
            "--rpm",
            "60000",
            "--resume",
        ],
        env,
    )
    assert "\nall " in out and "eval_type:Knowledge-Anchored" in out
    await _run(
        [
            "-m",
            "genevolve_async",
            "pipeline",
            "--input",
            str(data),
            "--output-dir",
            str(pipe),
            "--base-url",
            sims.policy_url,
            "--service-url",
            sims.qwen_url,
            "--rpm",
            "60000",
            "--quiet",
            "--render-option",
            "long_side=128",
        ],
        env,
    )

    assert [r["id"] for r in load_json(run / "results.json")] == [str(i) for i in range(200)]
    for name in ("results.json", "results_eval.json", "summary.json"):
        chained, streamed = load_json(render / name), load_json(pipe / name)
        if name == "summary.json":  # each names its own results_eval.json
            chained, streamed = {**chained, "eval_json": ""}, {**streamed, "eval_json": ""}
        if isinstance(chained, list):
            volatile = {"timings", "output_path", "image_path"}
            chained = [{k: v for k, v in r.items() if k not in volatile} for r in chained]
            streamed = [{k: v for k, v in r.items() if k not in volatile} for r in streamed]
        assert chained == streamed, name
    assert (render / "summary.csv").read_text() == (pipe / "summary.csv").read_text()
    assert len(load_json(render / "results_eval.json")) > 200  # summary rows follow the samples


async def test_a_killed_run_resumes_with_every_id_once(sims: Sims, tmp_path: Path) -> None:
    data = write_bench(tmp_path / "bench", bench_rows(150))
    out = tmp_path / "out"
    checkpoint = out / "rollouts.jsonl"
    argv = [
        sys.executable,
        "-m",
        "genevolve_async",
        "run",
        "--input",
        str(data),
        "--output-dir",
        str(out),
        "--base-url",
        sims.policy_url,
        "--parallel",
        "12",
        "--quiet",
    ]
    process = await anyio.open_process(argv, env=_env(sims, tmp_path), cwd=ROOT)
    try:
        await _wait_for_lines(checkpoint, 31, process)  # the header and 30 items
        process.send_signal(signal.SIGKILL)
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    killed = checkpoint.read_bytes()
    complete = killed[: killed.rfind(b"\n") + 1]
    done_before = len(complete.splitlines()) - 1
    assert 30 <= done_before < 150, "the kill did not land mid-run"
    assert not (out / "results.json").exists()

    result = await anyio.run_process(argv, env=_env(sims, tmp_path), cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr.decode()
    final = checkpoint.read_bytes()
    assert final.startswith(complete)  # lines finished before the kill are untouched
    ids = [line["id"] for line in checkpoint_lines(checkpoint)]
    assert sorted(ids, key=int) == [str(i) for i in range(150)]  # every id exactly once
    results = load_json(out / "results.json")
    assert [r["id"] for r in results] == [str(i) for i in range(150)]
    assert all(r["termination"] == "answer" for r in results)


async def test_sigterm_stops_cleanly_and_writes_results(sims: Sims, tmp_path: Path) -> None:
    data = write_bench(tmp_path / "bench", bench_rows(150))
    out = tmp_path / "out"
    argv = [
        sys.executable,
        "-m",
        "genevolve_async",
        "run",
        "--input",
        str(data),
        "--output-dir",
        str(out),
        "--base-url",
        sims.policy_url,
        "--parallel",
        "8",
    ]
    process = await anyio.open_process(argv, env=_env(sims, tmp_path), cwd=ROOT)
    await _wait_for_lines(out / "rollouts.jsonl", 10, process)
    process.send_signal(signal.SIGTERM)
    with anyio.fail_after(30):
        assert await process.wait() == 130
    finished = [line["id"] for line in checkpoint_lines(out / "rollouts.jsonl")]
    assert sorted(r["id"] for r in load_json(out / "results.json")) == sorted(finished)


def test_evaluate_refuses_to_start_without_a_judge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("GENEVOLVE_JUDGE_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    results = tmp_path / "results.json"
    results.write_text("[]")
    assert main(["evaluate", "--results", str(results)]) == 1
    error = capsys.readouterr().err
    assert "needs a judge endpoint" in error and "--judge-base-url" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_run_refuses_without_a_search_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    assert main(["run", "--prompt", "a fox", "--output-dir", str(tmp_path / "o")]) == 1
    assert "SERPER_API_KEY" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "render", "evaluate", "pipeline"])
def test_an_output_dir_that_is_a_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": 1, "prompt": "a fox"}\n')
    assert main([command, "--input", str(rows), "--output-dir", str(taken)]) == 1
    error = capsys.readouterr().err
    assert "is a file, not a folder" in error and "Traceback" not in error
    assert taken.read_text() == "not a folder"


def test_bad_arguments_and_bad_inputs_give_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--output-dir", str(tmp_path), "--backend", "x"])
    assert info.value.code == 2
    code = main(
        [
            "run",
            "--input",
            str(tmp_path / "missing.jsonl"),
            "--output-dir",
            str(tmp_path / "o"),
            "--tools",
            "query_knowledge",
        ]
    )
    assert code == 1 and "input not found" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "--prompt",
                "x",
                "--output-dir",
                str(tmp_path),
                "--shard",
                "4/3",
                "--tools",
                "query_knowledge",
            ]
        )
        == 1
    )


def test_merge_and_finalize_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for k, ids in ((1, ["0", "2"]), (2, ["1"])):
        part = tmp_path / f"p{k}"
        part.mkdir()
        header = {
            "genevolve_checkpoint": 1,
            "stage": "run",
            "settings": {"model": "m", "shard": f"{k}/2"},
        }
        lines = [json.dumps(header)] + [
            json.dumps(
                {"id": i, "index": int(i), "ok": True, "record": {"id": i, "termination": "answer"}}
            )
            for i in ids
        ]
        (part / "rollouts.jsonl").write_text("\n".join(lines) + "\n")
    assert (
        main(
            [
                "merge",
                str(tmp_path / "p1"),
                str(tmp_path / "p2"),
                "--output-dir",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    assert "rollouts.jsonl: 3 items from 2 checkpoints" in capsys.readouterr().out
    assert [r["id"] for r in load_json(tmp_path / "m" / "results.json")] == ["0", "1", "2"]
    (tmp_path / "m" / "results.json").unlink()
    assert main(["finalize", str(tmp_path / "m"), "--quiet"]) == 0
    assert (tmp_path / "m" / "results.json").is_file()


async def test_the_scripts_and_the_console_command_answer_help(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for script, flag in (
        ("run_agent.py", "--base-url"),
        ("generate_images.py", "--service-url"),
        ("evaluate_images.py", "--gt-root"),
    ):
        result = await anyio.run_process([sys.executable, str(SCRIPTS / script), "--help"], env=env)
        assert flag in result.stdout.decode()
    console = shutil.which("genevolve-async", path=str(Path(sys.executable).parent))
    if console is not None:
        result = await anyio.run_process([console, "--help"], env=env)
        assert "pipeline" in result.stdout.decode()
    result = await anyio.run_process(["bash", "-n", str(SCRIPTS / "serve_vllm.sh")])
    assert result.returncode == 0


async def test_the_quickstart_runs_on_simulated_services(tmp_path: Path) -> None:
    output = tmp_path / "fox.png"
    result = await anyio.run_process(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "--sim",
            "--example",
            "ex08",
            "--output",
            str(output),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    text = result.stdout.decode()
    assert "termination: answer" in text and "IMG_001" in text and output.is_file()
    assert "genevolve-quickstart-" not in text  # no path into the folder it deletes


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from genevolve_async import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"genevolve-async {__version__}"


async def test_a_clean_run_leaves_no_lock_and_files_of_one_mode(sims: Sims, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["-m", "genevolve_async", "run", "--prompt", "a lighthouse at dusk"]
    output = await _run(
        [*argv, "--output-dir", str(out), "--base-url", sims.policy_url], _env(sims, tmp_path)
    )
    assert "[run] 1 item, 1 ok, 0 not ok" in output and "1 items" not in output
    assert not (out / ".genevolve.lock").exists()  # removed on a clean exit
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()}
    assert set(modes) == {"rollouts.jsonl", "results.json"}
    assert modes["results.json"] == modes["rollouts.jsonl"], modes
