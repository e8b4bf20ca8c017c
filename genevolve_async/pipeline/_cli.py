"""The command line: ``python -m genevolve_async <command>`` (also ``genevolve-async``).

Commands: ``run`` (rollouts), ``render``, ``evaluate`` (the judge),
``pipeline`` (all three, streaming), ``merge`` (join shard checkpoints),
``export`` (trajectories as a training dataset), ``finalize`` (rewrite
results files from checkpoints) and ``report`` (one HTML file to look at a run). Option groups are
shared, so the original's scripts (``scripts/run_agent.py`` and friends)
are thin wrappers passing their flags through.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ._cli_original import add_original_flags, apply_original_flags

__all__ = ["build_parser", "main"]

DEFAULT_PARALLEL = {"run": 128, "render": 32, "evaluate": 16}
_BACKENDS = ("qwen-image-edit-service", "nano-banana-pro", "qwen-image-edit")
_EPILOG = """\
environment: OPENAI_BASE_URL / OPENAI_API_KEY (policy), SERPER_API_KEY / SERPER_BASE_URL
(search), IMAGE_DOWNLOAD_DIR (reference images), GOOGLE_API_KEY / GEMINI_API_KEY (Nano Banana
Pro), GENEVOLVE_JUDGE_BASE_URL / GENEVOLVE_JUDGE_API_KEY, else OPENAI_API_BASE / OPENAI_API_KEY
(judge). Keys never appear in logs or results.
"""


def _batch_options(p: argparse.ArgumentParser, stage: str, *, prompts: bool) -> None:
    g = p.add_argument_group("input and output")
    if prompts:
        g.add_argument("--input", type=Path, help="JSONL, JSON array, or a dataset folder")
        g.add_argument(
            "--prompt",
            action="append",
            default=[],
            help="a request (repeatable), instead of --input",
        )
    elif stage == "evaluate":
        g.add_argument(
            "--results",
            "-r",
            "--input",
            dest="input",
            type=Path,
            required=True,
            help="the rendered results.json (or its render.jsonl folder)",
        )
    else:
        g.add_argument("--input", type=Path, required=True, help="results.json of the run stage")
    g.add_argument(
        "--output-dir",
        type=Path,
        required=stage != "evaluate",
        help="checkpoints, results files and images go here"
        + (" (default: the results file's folder)" if stage == "evaluate" else ""),
    )
    g.add_argument("--max-samples", type=int, help="take at most this many rows")
    g.add_argument("--shard", help="K/N: take the K-th of N deterministic parts (merge them later)")
    g.add_argument(
        "--gt-root",
        type=Path,
        action="append",
        default=[],
        help="folder that relative gt_image paths resolve against (repeatable: tried in turn "
        "after the data file's folder and the working folder)",
    )
    g = p.add_argument_group("batch")
    g.add_argument(
        "--parallel",
        "--max-workers",
        dest="parallel",
        type=int,
        default=DEFAULT_PARALLEL.get(stage, DEFAULT_PARALLEL["run"]),
        help="items in flight (default: %(default)s)",
    )
    g.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="skip finished ids (default: on when a checkpoint exists); "
        "--no-resume sets the old checkpoint aside",
    )
    g.add_argument("--force", action="store_true", help="resume even if the settings changed")
    g.add_argument(
        "--retry-failed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="redo items that failed in an earlier session (default: yes)",
    )
    g.add_argument("--fsync", action="store_true", help="fsync every checkpoint line")
    g.add_argument(
        "--preflight",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check that every endpoint answers before the first item (default: yes)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress line, no summary")
    g.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")
    g.add_argument(
        "--otel",
        action="store_true",
        help="export OpenTelemetry traces and metrics as the OTEL_* variables say "
        "(needs the otel extra)",
    )


def _policy_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("policy (agent rollouts)")
    g.add_argument(
        "--base-url",
        action="append",
        default=[],
        help="policy endpoint ending in /v1; repeat for data-parallel replicas "
        "(default: OPENAI_BASE_URL or http://localhost:8000/v1)",
    )
    g.add_argument("--model", default="GenEvolve", help="served model name (default: %(default)s)")
    g.add_argument("--api-key", help="policy key (default: OPENAI_API_KEY or EMPTY)")
    g.add_argument("--max-rounds", type=int, default=11)
    g.add_argument("--max-tokens-per-round", type=int, default=4096)
    g.add_argument("--temperature", type=float, default=0.6)
    g.add_argument("--top-p", type=float, default=0.9)
    g.add_argument("--n-max-reference-images", type=int, default=2)
    g.add_argument(
        "--system-prompt-file", type=Path, help="use this system prompt (e.g. the original's)"
    )
    g.add_argument("--skills-dir", type=Path, help="use these eight skill files")
    g.add_argument(
        "--prompts-dir",
        type=Path,
        help="use the system.md, final_step.md, format_error.md, truncated.md found here, "
        "verbatim (e.g. the original's texts)",
    )
    g.add_argument("--tool-mode", choices=("text", "native"), default="text")
    g.add_argument("--policy-route", choices=("lean", "openai"), default="lean")
    g.add_argument(
        "--tools",
        default="search,image_search,query_knowledge",
        help="comma-separated tools to offer (default: %(default)s)",
    )
    g.add_argument("--search-rps", type=float, help="cap Serper requests per second")
    g.add_argument(
        "--seed",
        type=int,
        help="sampling seed for every rollout (with --samples-per-prompt: the base "
        "each sample's seed is derived from, 0 when unset)",
    )
    g.add_argument("--rollout-timeout", type=float, help="seconds per rollout")
    g.add_argument(
        "--samples-per-prompt",
        type=int,
        default=1,
        metavar="K",
        help="K independent rollouts per input row, ids ID#0..ID#K-1, each with its own "
        "seed, sampled at --temperature; judged runs also write groups.json and "
        "groups_summary.json (best-of-K, mean-of-K) (default: %(default)s)",
    )


def _render_options(p: argparse.ArgumentParser, *, pipeline: bool) -> None:
    g = p.add_argument_group("renderer")
    g.add_argument("--backend", choices=_BACKENDS, default="qwen-image-edit-service")
    g.add_argument(
        "--service-url",
        action="append",
        default=[],
        help="Qwen-Image-Edit service URL (repeatable: shared round the services)",
    )
    # Standalone, --seed is the renderer's (the policy's --seed exists only with rollouts).
    seeds = ["--render-seed"] if pipeline else ["--render-seed", "--seed"]
    g.add_argument(*seeds, dest="render_seed", type=int, help="seed sent to the renderer")
    g.add_argument(
        "--render-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword of the backend (e.g. num_inference_steps=30, long_side=768, "
        "true_cfg_scale=4.0); values are read as JSON when they parse (repeatable)",
    )
    if pipeline:
        g.add_argument("--render-parallel", type=int, default=DEFAULT_PARALLEL["render"])


def _judge_options(p: argparse.ArgumentParser, *, pipeline: bool) -> None:
    g = p.add_argument_group("judge")
    flags = ["--judge-model"] if pipeline else ["--model", "--judge-model"]
    g.add_argument(
        *flags,
        dest="judge_model",
        default="gemini-3.1-pro-preview",
        help="judge model (default: %(default)s)",
    )
    g.add_argument(
        "--judge-base-url",
        help="judge endpoint (else GENEVOLVE_JUDGE_BASE_URL, else OPENAI_API_BASE)",
    )
    g.add_argument(
        "--judge-api-key", help="judge key (else GENEVOLVE_JUDGE_API_KEY, else OPENAI_API_KEY)"
    )
    g.add_argument("--rpm", type=float, help="judge requests per minute, all items together")
    g.add_argument(
        "--judge-in-flight", type=int, default=16, help="judge requests under way at once"
    )
    g.add_argument("--max-tries", type=int, default=20, help="judge tries per sample")
    g.add_argument("--judge-timeout", type=float, default=300.0, help="seconds per judge request")
    g.add_argument(
        "--rubric-file", type=Path, help="judge rubric (e.g. the original's) instead of ours"
    )
    g.add_argument(
        "--judge-user-template",
        type=Path,
        help="file with the judge's user text, {sample_id} and {request} filled, verbatim "
        "otherwise (with --rubric-file: the original's request byte for byte)",
    )
    if pipeline:
        g.add_argument("--judge-parallel", type=int, default=DEFAULT_PARALLEL["evaluate"])


def _cluster_options(p: argparse.ArgumentParser) -> None:
    from ..cluster._cli import add_cluster_options  # argparse only: Ray is imported later

    add_cluster_options(p)


def _export_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="answered trajectories -> a GenEvolve-Data-SFT style dataset folder",
        allow_abbrev=False,
    )
    p.add_argument(
        "--results",
        type=Path,
        required=True,
        help="an output folder, or its results.json (scores come from results_eval.json beside it)",
    )
    p.add_argument("--out", type=Path, required=True, help="the dataset folder to create")
    p.add_argument("--min-overall", type=float, help="keep trajectories judged at least this")
    p.add_argument(
        "--best-of-group",
        action="store_true",
        help="keep the best judged sample of each prompt (runs with --samples-per-prompt)",
    )
    p.add_argument(
        "--rewrite-paths",
        action="store_true",
        help="point the observations' local_path lines at the exported images",
    )
    p.add_argument("--jpeg-quality", type=int, default=95)
    p.add_argument("--workers", type=int, default=8, help="image conversions at once")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--log-level", default="WARNING")


def _report_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="a run folder (or two, compared) as one self-contained HTML file",
        allow_abbrev=False,
    )
    p.add_argument("run_dir", type=Path, help="a folder run, render, evaluate or pipeline wrote")
    p.add_argument("run_b", type=Path, nargs="?", help="a second run over the same rows, compared")
    p.add_argument("--output", type=Path, help="the HTML file (default: RUN_DIR/report.html)")
    p.add_argument(
        "--gt-root", type=Path, help="folder that relative gt_image paths resolve against"
    )
    p.add_argument(
        "--images",
        choices=("embed", "files"),
        default="embed",
        help="thumbnails inside the page, or as files in OUTPUT_files/ beside it "
        "(default: %(default)s)",
    )
    p.add_argument("--workers", type=int, help="threads making thumbnails")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--log-level", default="WARNING")


def build_parser() -> argparse.ArgumentParser:
    """The ``genevolve-async`` argument parser."""
    # No abbreviations: a flag works only under its full name, never by accident.
    parser = argparse.ArgumentParser(
        prog="genevolve-async",
        description="Batch rollouts, rendering and judging for GenEvolve agents.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    add = functools.partial(sub.add_parser, allow_abbrev=False)
    p = add("run", help="agent rollouts -> results.json")
    _batch_options(p, "run", prompts=True)
    _policy_options(p)
    add_original_flags(p, "run")
    _cluster_options(p)
    p = add("render", help="render results.json -> images and results.json")
    _batch_options(p, "render", prompts=False)
    _render_options(p, pipeline=False)
    add_original_flags(p, "render")
    p = add("evaluate", help="judge rendered images -> results_eval.json, summary.*")
    _batch_options(p, "evaluate", prompts=False)
    _judge_options(p, pipeline=False)
    add_original_flags(p, "evaluate")
    p = add("pipeline", help="rollouts, renders and judgements, streaming")
    _batch_options(p, "run", prompts=True)
    _policy_options(p)
    _render_options(p, pipeline=True)
    _judge_options(p, pipeline=True)
    add_original_flags(p, "pipeline")
    _cluster_options(p)
    p = add("merge", help="join the checkpoints of shards into one output folder")
    p.add_argument(
        "sources", nargs="+", type=Path, help="shard output folders (or checkpoint files)"
    )
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--force", action="store_true", help="merge even if the settings differ")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--log-level", default="WARNING")
    _export_parser(sub)
    _report_parser(sub)
    p = add("finalize", help="rewrite results files from an output folder's checkpoints")
    p.add_argument("output_dir", type=Path)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    Status: 0 done, 1 refused or stopped by an error (the message says why,
    an endpoint where nothing answers included), 2 bad arguments, 3 a stage
    in which no item succeeded, 130 interrupted (rerun the same command to
    resume).
    """
    args = build_parser().parse_args(argv)
    apply_original_flags(args)
    logging.basicConfig(
        level=str(args.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from ._commands import run_command

    return _with_otel(args, lambda: _run_async(run_command, args))


def _with_otel(args: argparse.Namespace, run: Callable[[], int]) -> int:
    """``--otel``: the SDK from the ``OTEL_*`` variables for the command, flushed at exit."""
    if not getattr(args, "otel", False):
        return run()
    from .._errors import ConfigurationError
    from ..telemetry import configure_from_env

    try:
        setup = configure_from_env()
    except ConfigurationError as exc:
        print(f"genevolve-async: {exc}", file=sys.stderr)
        return 1
    try:
        return run()
    finally:
        setup.shutdown()


def _run_async(
    func: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace
) -> int:
    import anyio

    options: dict[str, object] = {}
    try:
        import uvloop  # noqa: F401  # a core dependency, but not on Windows or PyPy
    except ImportError:
        pass
    else:
        options["use_uvloop"] = True
    try:
        return anyio.run(func, args, backend_options=options)
    except KeyboardInterrupt:
        print("genevolve-async: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
