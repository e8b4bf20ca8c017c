"""The original README's Python example, with only its imports and service URLs changed.

It is sync code, so the simulated backends (policy, Serper, image host, Qwen
service, Gemini) run on an event loop in a background thread, and the
agent's tools find Serper through the environment, as the original's did.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest
from PIL import Image

from genevolve_async.__main__ import main
from genevolve_async.pipeline._cli import build_parser
from genevolve_async.pipeline._cli_original import apply_original_flags
from genevolve_async.sim import SimGemini, SimServer

from .pipeline._sims import JUDGE_KEY, Sims, bench_rows, load_json, start_sims, write_bench

ROOT = Path(__file__).resolve().parents[1]


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


# ---- the original's command lines and flags -------------------------------------

_COMMANDS = {
    "run_agent.py": "run",
    "generate_images.py": "render",
    "evaluate_images.py": "evaluate",
}

# Every command line of the original README, as written there.
ORIGINAL_README_LINES = [
    "scripts/run_agent.py --input examples/example_prompts.jsonl --output-dir runs/example"
    " --base-url http://localhost:8000/v1 --model GenEvolve --parallel 4",
    "scripts/generate_images.py --input runs/example/results.json"
    " --output-dir runs/example_qwen_service --backend qwen-image-edit-service"
    " --service-url http://your-qwen-service-1:8001"
    " --service-url http://your-qwen-service-2:8001 --parallel 8",
    "scripts/generate_images.py --input runs/example/results.json --output-dir runs/example_nano"
    " --backend nano-banana-pro --parallel 4",
    "scripts/run_agent.py --input ./GenEvolve-Data-Bench/GenEvolve-Bench/test.jsonl"
    " --output-dir runs/bench_agent --base-url http://localhost:8000/v1 --model GenEvolve"
    " --parallel 16",
    "scripts/generate_images.py --input runs/bench_agent/results.json --output-dir runs/bench_qwen"
    " --backend qwen-image-edit-service --service-url http://your-qwen-service:8001 --parallel 16",
    "scripts/evaluate_images.py --results runs/bench_qwen/results.json"
    " --gt-root ./GenEvolve-Data-Bench/GenEvolve-Bench --model gemini-3.1-pro-preview"
    " --max-workers 16 --rpm 60 --resume",
    "examples/quickstart.py --backend nano-banana-pro --base-url http://localhost:8000/v1"
    " --model GenEvolve --output paris.png",
    "examples/quickstart.py --backend qwen-image-edit-service"
    " --service-url http://your-qwen-service:8001 --base-url http://localhost:8000/v1"
    " --model GenEvolve --output paris_qwen.png",
]


def _parse(script: str, argv: list[str]) -> argparse.Namespace:
    if script.endswith("quickstart.py"):
        return _quickstart().parse_args(argv)
    args = build_parser().parse_args([_COMMANDS[Path(script).name], *argv])
    apply_original_flags(args)
    return args


def _quickstart() -> Any:
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "examples" / "quickstart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GENEVOLVE_MODEL", "GENEVOLVE_EVAL_MODEL", "GENEVOLVE_EVAL_MAX_TRY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GENEVOLVE_EVAL_TIMEOUT_SEC", raising=False)


@pytest.mark.parametrize("line", ORIGINAL_README_LINES)
def test_every_command_line_of_the_original_readme_parses(
    line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    script, *argv = shlex.split(line)
    args = _parse(script, argv)
    given = dict(zip(argv[::2], argv[1::2], strict=False))
    if "--parallel" in given:
        assert args.parallel == int(given["--parallel"])
    if "--max-workers" in given:
        assert args.parallel == int(given["--max-workers"])
    if "--model" in given:
        assert given["--model"] in (
            getattr(args, "model", None),
            getattr(args, "judge_model", None),
        )
    if "--service-url" in given:
        assert args.service_url == [v for k, v in itertools.pairwise(argv) if k == "--service-url"]
    if script.endswith("evaluate_images.py"):
        assert args.input == Path(given["--results"]) and args.resume is True
        assert args.gt_root == [Path(given["--gt-root"])] and args.rpm == 60


def test_run_agent_flags_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    args = _parse("run_agent.py", ["--output-dir", "o", "--prompt", "p"])
    # The original's defaults (its --parallel was 4; ours is larger, see the README).
    assert (args.model, args.max_rounds, args.max_tokens_per_round) == ("GenEvolve", 11, 4096)
    assert (args.temperature, args.top_p, args.n_max_reference_images) == (0.6, 0.9, 2)
    assert (args.max_prompt_length, args.max_response_length) == (6144, 30000)
    argv = (
        "--prompt p --input i.jsonl --max-samples 3 --output-dir o --model M --base-url http://b/v1"
        " --api-key K --max-rounds 5 --max-tokens 100 --temperature 0.1 --top-p 0.5"
        " --max-prompt-length 7 --max-response-length 8 --n-max-reference-images 3 --parallel 2"
    )
    args = _parse("run_agent.py", argv.split())
    assert (args.prompt, args.input, args.max_samples) == (["p"], Path("i.jsonl"), 3)
    assert (args.model, args.base_url, args.api_key) == ("M", ["http://b/v1"], "K")
    assert (args.max_rounds, args.max_tokens_per_round, args.temperature) == (5, 100, 0.1)
    assert (args.top_p, args.max_prompt_length, args.max_response_length) == (0.5, 7, 8)
    assert (args.n_max_reference_images, args.parallel) == (3, 2)


def test_generate_images_flags_reach_the_backend_that_reads_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    base = ["--input", "r.json", "--output-dir", "o"]
    local = (
        "--backend qwen-image-edit --qwen-model-id Qwen/Other --device cpu"
        " --num-inference-steps 30 --true-cfg-scale 3.5 --seed 7 --parallel 1"
    )
    args = _parse("generate_images.py", [*base, *local.split()])
    assert args.original_render_options == {
        "model": "Qwen/Other",
        "device": "cpu",
        "num_inference_steps": 30,
        "true_cfg_scale": 3.5,
    }
    assert args.render_seed == 7 and args.render_secrets == {}
    nano = "--backend nano-banana-pro --nano-model gemini-x --google-api-key secret-k"
    args = _parse("generate_images.py", [*base, *nano.split()])
    assert args.original_render_options == {"model": "gemini-x"}
    assert args.render_secrets == {"api_key": "secret-k"}  # never among the recorded options
    service = (
        "--backend qwen-image-edit-service --service-url http://q:8001 --num-inference-steps 9"
    )
    args = _parse("generate_images.py", [*base, *service.split()])
    assert args.original_render_options == {} and "qwen-image-edit only" in caplog.text
    # Unset, the renderers' own defaults are the original's: nothing is added.
    assert _parse("generate_images.py", base).original_render_options == {}


def test_evaluate_images_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    args = _parse("evaluate_images.py", ["--results", "r.json"])
    assert (args.judge_model, args.max_tries, args.judge_timeout) == (
        "gemini-3.1-pro-preview",
        20,
        300.0,
    )
    assert (args.rpm, args.total_cases, args.resume, args.gt_root) == (None, 0, None, [])
    argv = (
        "-r r.json -o e.json --summary-json s.json --summary-csv s.csv --gt-root a --gt-root b"
        " --api-key K --api-base http://j/v1 --model M --max-workers 3 --rpm 0"
        " --total-cases 594 --resume"
    )
    args = _parse("evaluate_images.py", argv.split())
    assert (args.input, args.output_json) == (Path("r.json"), Path("e.json"))
    assert (args.summary_json, args.summary_csv) == (Path("s.json"), Path("s.csv"))
    assert args.gt_root == [Path("a"), Path("b")]
    assert (args.judge_api_key, args.judge_base_url, args.judge_model) == ("K", "http://j/v1", "M")
    assert (args.parallel, args.rpm, args.total_cases, args.resume) == (3, None, 594, True)
    assert _parse("evaluate_images.py", ["--results", "r", "--parallel", "5"]).parallel == 5


def test_quickstart_flags() -> None:
    argv = "--backend nano-banana-pro --base-url http://b/v1 --api-key K --model M --output x.png"
    args = _parse("examples/quickstart.py", argv.split())
    assert (args.api_key, args.base_url, args.output) == ("K", ["http://b/v1"], Path("x.png"))
    assert _parse("examples/quickstart.py", []).output == Path("quickstart_output.png")


def test_the_original_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENEVOLVE_MODEL", "Policy-X")
    monkeypatch.setenv("GENEVOLVE_EVAL_MODEL", "judge-x")
    monkeypatch.setenv("GENEVOLVE_EVAL_MAX_TRY", "3")
    monkeypatch.setenv("GENEVOLVE_EVAL_TIMEOUT_SEC", "12.5")
    args = _parse("run_agent.py", ["--output-dir", "o", "--prompt", "p"])
    assert args.model == "Policy-X"
    args = _parse("evaluate_images.py", ["--results", "r"])
    assert (args.judge_model, args.max_tries, args.judge_timeout) == ("judge-x", 3, 12.5)
    assert _parse("evaluate_images.py", ["--results", "r", "--model", "m"]).judge_model == "m"
    monkeypatch.setenv("GENEVOLVE_EVAL_MAX_TRY", "many")
    with pytest.raises(SystemExit) as stopped:
        _parse("evaluate_images.py", ["--results", "r"])
    assert stopped.value.code == 2


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("run_agent.py", ["--output-dir", "o", "--prompt", "p", "--max-tok", "5"]),
        ("run_agent.py", ["--output-dir", "o", "--prompt", "p", "--temp", "0.1"]),
        ("evaluate_images.py", ["--results", "r.json", "--summary", "s.json"]),
        ("generate_images.py", ["--input", "r", "--output-dir", "o", "--serv", "http://q"]),
        ("examples/quickstart.py", ["--out", "x.png"]),
    ],
)
def test_no_flag_works_as_an_abbreviation(
    script: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        _parse(script, argv)
    assert stopped.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_serve_vllm_reads_the_original_variables(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "vllm"
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "MODEL_PATH": "/ckpt",
        "SERVED_MODEL_NAME": "Served-X",
        "MEM_FRACTION": "0.7",
        "DP": "2",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "serve_vllm.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    argv = done.stdout.splitlines()
    flags = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert argv[:2] == ["serve", "/ckpt"]
    assert flags["--served-model-name"] == "Served-X"
    assert flags["--gpu-memory-utilization"] == "0.7"
    assert (flags["--data-parallel-size"], flags["--max-model-len"]) == ("2", "65536")


def test_the_original_readme_chain_with_the_originals_evaluate_flags(
    sims: tuple[Sims, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The judge is reached through the original's --api-base / --api-key only.
    monkeypatch.delenv("GENEVOLVE_JUDGE_BASE_URL")
    monkeypatch.delenv("GENEVOLVE_JUDGE_API_KEY")
    started = sims[0]
    data = write_bench(tmp_path / "bench", bench_rows(6))
    run, render, out = tmp_path / "runs" / "a", tmp_path / "runs" / "q", tmp_path / "eval"
    steps = [
        f"run --input {data} --output-dir {run} --base-url {started.policy_url}"
        " --model GenEvolve --parallel 4 --quiet",
        f"render --input {run / 'results.json'} --output-dir {render}"
        f" --backend qwen-image-edit-service --service-url {started.qwen_url}"
        f" --service-url {started.qwen_url} --parallel 8 --render-option long_side=64 --quiet",
        f"evaluate -r {render / 'results.json'} -o {out / 'e.json'}"
        f" --summary-json {out / 's.json'} --summary-csv {out / 's.csv'}"
        f" --gt-root {tmp_path / 'nowhere'} --gt-root {data.parent}"
        f" --api-key {JUDGE_KEY} --api-base {started.judge_url}"
        " --model gemini-3.1-pro-preview --max-workers 16 --rpm 0 --total-cases 10 --resume",
    ]
    for step in steps:
        assert main(shlex.split(step)) == 0, step
    rows = load_json(out / "e.json")
    samples = [row for row in rows if "summary_type" not in row]
    assert [row["id"] for row in samples] == [str(i) for i in range(6)]
    assert all(row["eval_success"] for row in samples)
    assert [row["summary_type"] for row in rows[6:]] == [
        "eval_type:Knowledge-Anchored",
        "eval_type:Quality-Anchored",
        "overall_avg",
    ]
    layout = load_json(out / "s.json")
    assert layout["eval_json"] == str(out / "e.json") and layout["total_cases"] == 10
    overalls = [row["scores"]["overall"] for row in samples]
    assert layout["all"]["overall"] == round(sum(overalls) / 6, 4)
    assert layout["all"]["overall_missing_zero"] == round(layout["all"]["overall"] * 6 / 10, 4)
    assert (layout["missing_case_ids"], layout["failed_case_ids"]) == ([], [])
    assert (out / "s.csv").read_text().splitlines()[1].startswith("all,6,10,4,")
    rendered = load_json(render / "results.json")
    assert all(Path(row["image_path"]).is_absolute() for row in rendered)


def test_a_policy_401_keeps_what_finished_and_fails_clearly(
    sims: tuple[Sims, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = sims[0]
    data = write_bench(tmp_path / "bench", bench_rows(40))
    out = tmp_path / "run"
    checkpoint = out / "rollouts.jsonl"

    def refuse_after_three() -> None:
        # The key is revoked mid-run: every later chat request gets a 401.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # A header line, then one line per finished rollout.
            if checkpoint.exists() and checkpoint.read_bytes().count(b"\n") >= 4:
                started.policy.fail_next(10_000, 401)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=refuse_after_three)
    watcher.start()
    argv = f"run --input {data} --output-dir {out} --base-url {started.policy_url} --parallel 1"
    status = main(shlex.split(argv))
    watcher.join()
    err = capsys.readouterr().err
    assert status == 1 and "authentication" in err.lower()
    done = load_json(out / "results.json")
    assert len(done) >= 3 and all(row["termination"] == "answer" for row in done)
    assert [row["id"] for row in done] == [str(i) for i in range(len(done))]
