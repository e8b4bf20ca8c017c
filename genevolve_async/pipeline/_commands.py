"""What each command does: build the runtime, agent, renderer and judge from flags, then run.

Everything a run needs is checked before the first item starts: a missing
judge endpoint, a missing Serper key or service URL, an endpoint where
nothing answers, or a judged run without any ground-truth image stops the
command with a message saying what to set, instead of failing every item.

Exit status: 0 done; 1 refused or stopped by an error (the message says
why); 2 bad arguments; 3 a stage finished without a single item that
succeeded; 130 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .._errors import ConfigurationError, GenEvolveError
from .._limits import ProviderLimits
from .._progress import ProgressDisplay, StageProgress
from .._runtime import Runtime
from ..agent import AgentConfig, GenEvolveAgent
from ..judge import JudgeClient, load_judge_text, load_rubric
from ..renderers import make_renderer
from ..tools import ImageSearch, QueryKnowledge, SerperBackend, Tool, WebSearch
from ._export import ExportOptions, export_trajectories
from ._ids import Shard
from ._inputs import InputSource
from ._merge import merge_checkpoints
from ._preflight import Endpoint, batch_endpoints, check_endpoints, check_ground_truth
from ._runner import BatchOptions, run_batch
from ._stages import EvalOutputs, JudgeStage, RenderStage, RolloutStage, Stage, StageKind
from ._summary import StageSummary, finalize_stage
from ._text import plural

__all__ = [
    "EXIT_NOTHING_SUCCEEDED",
    "finalize_folder",
    "judge_endpoint",
    "render_options",
    "rollout_stage",
    "run_command",
]

EXIT_NOTHING_SUCCEEDED = 3
"""Exit status of a batch in which some stage had items and not one succeeded."""

# Checkpoint file of each stage, in chain order, and the results file it feeds.
_CHECKPOINTS: tuple[tuple[str, StageKind, str], ...] = (
    ("rollouts.jsonl", "run", "results.json"),
    ("render.jsonl", "render", "results.json"),
    ("eval.jsonl", "evaluate", "results_eval.json"),
)
_SEARCH_TOOLS = frozenset({"search", "image_search"})


async def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; print what went wrong as one line and return a status."""
    try:
        _check_output_dir(getattr(args, "output_dir", None))
        if args.command == "merge":
            return await _merge(args)
        if args.command == "finalize":
            return await _finalize(args)
        if args.command == "export":
            return await _export(args)
        if args.command == "report":
            return await _report(args)
        return await _batch(args)
    except (GenEvolveError, ValueError) as exc:
        print(f"genevolve-async: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # The disk refused (a folder that is a file, no permission, disk full):
        # the user's to fix, so one line that names the path, not a traceback.
        print(
            f"genevolve-async: error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr
        )
        return 1


def _check_output_dir(path: Path | None) -> None:
    if path is not None and path.exists() and not path.is_dir():
        raise ConfigurationError(f"--output-dir {path} is a file, not a folder")


async def _report(args: argparse.Namespace) -> int:
    from ..report import build_report  # the report is not needed by the batch commands

    info = await anyio.to_thread.run_sync(
        functools.partial(
            build_report,
            args.run_dir,
            args.output,
            compare=args.run_b,
            gt_root=args.gt_root,
            images=args.images,
            workers=args.workers,
        )
    )
    if not args.quiet:
        print(
            f"wrote {info.path}: {info.items} items, {info.thumbnails} thumbnails, "
            f"{info.html_bytes / 1e6:.1f} MB page, {info.seconds:.1f} s"
        )
    return 0


def judge_endpoint(
    base_url: str | None, api_key: str | None, env: Mapping[str, str] = os.environ
) -> tuple[str, str]:
    """The judge's endpoint and key: flags, else ``GENEVOLVE_JUDGE_*``, else the original's variables.

    ``OPENAI_BASE_URL`` is never used: it names the policy's server.

    Raises:
        ConfigurationError: No endpoint anywhere.
    """
    url = base_url or env.get("GENEVOLVE_JUDGE_BASE_URL") or env.get("OPENAI_API_BASE")
    if not url:
        raise ConfigurationError(
            "evaluating needs a judge endpoint (an OpenAI-compatible chat-completions URL): "
            "pass --judge-base-url, or set GENEVOLVE_JUDGE_BASE_URL (or OPENAI_API_BASE, as the "
            "original did). OPENAI_BASE_URL is the policy's server and is not used for the judge"
        )
    key = api_key or env.get("GENEVOLVE_JUDGE_API_KEY") or env.get("OPENAI_API_KEY") or "EMPTY"
    return url, key


def render_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` flags as renderer keywords (values parsed as JSON when they parse).

    Raises:
        ConfigurationError: An item without ``=``.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigurationError(f"--render-option wants KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text
    return options


def _source(args: argparse.Namespace) -> InputSource:
    prompts = tuple(getattr(args, "prompt", None) or ())
    if args.input is None and not prompts:
        raise ConfigurationError("give --input (a JSONL/JSON file or dataset folder) or --prompt")
    return InputSource(
        path=args.input if not prompts else None,
        prompts=prompts if args.input is None else (),
        max_samples=args.max_samples,
        shard=Shard.parse(args.shard) if args.shard else None,
        gt_root=tuple(args.gt_root or ()),
    )


def _tools(args: argparse.Namespace) -> list[Tool]:
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    unknown = set(names) - {"search", "image_search", "query_knowledge"}
    if unknown:
        raise ConfigurationError(f"--tools: unknown tool(s) {sorted(unknown)}")
    if _SEARCH_TOOLS & set(names) and not os.environ.get("SERPER_API_KEY", "").strip():
        raise ConfigurationError(
            "the search tools need SERPER_API_KEY (and SERPER_BASE_URL for a compatible "
            "gateway); set it, or pass --tools query_knowledge to run without search"
        )
    tools: list[Tool] = []
    for name in names:
        if name == "search":
            tools.append(WebSearch())
        elif name == "image_search":
            tools.append(ImageSearch())
        else:
            tools.append(QueryKnowledge(args.skills_dir))
    return tools


def _agent(args: argparse.Namespace, runtime: Runtime) -> GenEvolveAgent:
    options: dict[str, Any] = {
        "model": args.model,
        "max_rounds": args.max_rounds,
        "max_tokens_per_round": args.max_tokens_per_round,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "n_max_reference_images": args.n_max_reference_images,
        "max_prompt_tokens": args.max_prompt_length,
        "max_response_tokens": args.max_response_length,
        "tool_mode": args.tool_mode,
        "policy_route": args.policy_route,
        "seed": args.seed,
        "system_prompt_file": args.system_prompt_file,
        "skills_dir": args.skills_dir,
        "prompts_dir": args.prompts_dir,
    }
    if args.base_url:
        options["base_url"] = list(args.base_url)
    if args.api_key:
        options["api_key"] = args.api_key
    return GenEvolveAgent(AgentConfig(**options), runtime=runtime, tools=_tools(args))


async def _judge(args: argparse.Namespace, runtime: Runtime) -> JudgeClient:
    url, key = judge_endpoint(args.judge_base_url, args.judge_api_key)
    rubric = await anyio.to_thread.run_sync(load_rubric, args.rubric_file)
    template = (
        await anyio.to_thread.run_sync(load_judge_text, args.judge_user_template, "judge template")
        if args.judge_user_template is not None
        else None
    )
    return JudgeClient(
        runtime,
        base_url=url,
        api_key=key,
        model=args.judge_model,
        rpm=args.rpm,
        max_in_flight=args.judge_in_flight,
        timeout=args.judge_timeout,
        max_tries=args.max_tries,
        rubric=rubric,
        user_template=template,
    )


def _eval_outputs(args: argparse.Namespace) -> EvalOutputs:
    """The original's ``-o``, ``--summary-json``, ``--summary-csv`` and ``--total-cases``."""
    return EvalOutputs(
        results_eval=getattr(args, "output_json", None),
        summary_json=getattr(args, "summary_json", None),
        summary_csv=getattr(args, "summary_csv", None),
        total_cases=getattr(args, "total_cases", None) or None,
    )


def rollout_stage(args: argparse.Namespace, runtime: Runtime) -> RolloutStage:
    """The rollout stage the flags describe (cluster workers build theirs with it too)."""
    return RolloutStage(
        _agent(args, runtime),
        parallel=args.parallel,
        timeout=args.rollout_timeout,
        samples_per_prompt=args.samples_per_prompt,
    )


def _kinds(command: str) -> tuple[StageKind, ...]:
    if command == "pipeline":
        return ("run", "render", "evaluate")
    if command in ("run", "render", "evaluate"):
        return (command,)  # type: ignore[return-value]
    raise ConfigurationError(f"unknown command {command!r}")


async def _batch(args: argparse.Namespace) -> int:
    kinds = _kinds(args.command)
    source = _source(args)
    data_file = (await anyio.to_thread.run_sync(source.resolve))[0] if source.path else None
    out_dir: Path = args.output_dir or (data_file.parent if data_file else Path.cwd())
    if "evaluate" in kinds:
        judge_endpoint(args.judge_base_url, args.judge_api_key)  # refuse before any work
        await check_ground_truth(source)
    limits = (
        {"serper": ProviderLimits(rate=args.search_rps)}
        if getattr(args, "search_rps", None)
        else {}
    )
    async with Runtime(limits=limits) as runtime, AsyncExitStack() as stack:
        stages: list[Stage] = []
        if "run" in kinds:
            stages.append(rollout_stage(args, runtime))
        if "render" in kinds:
            keywords = {
                **render_options(args.render_option),
                **getattr(args, "original_render_options", {}),
            }
            renderer = make_renderer(
                args.backend,
                runtime=runtime,
                service_urls=args.service_url,
                **keywords,
                **getattr(args, "render_secrets", {}),
            )
            await stack.enter_async_context(renderer)
            parallel = args.render_parallel if args.command == "pipeline" else args.parallel
            stages.append(
                RenderStage(
                    renderer,
                    out_dir=out_dir,
                    parallel=parallel,
                    seed=args.render_seed,
                    options=keywords,
                )
            )
        if "evaluate" in kinds:
            judge = await _judge(args, runtime)
            parallel = args.judge_parallel if args.command == "pipeline" else args.parallel
            # Standalone, images are named relative to the results file; in a chain, to our folder.
            image_root = out_dir if len(kinds) > 1 or data_file is None else data_file.parent
            stages.append(
                JudgeStage(
                    judge, image_root=image_root, parallel=parallel, outputs=_eval_outputs(args)
                )
            )
        if getattr(args, "preflight", True):
            await check_endpoints(runtime, _endpoints(args, kinds, stages))
        options = BatchOptions(
            resume=args.resume,
            force=args.force,
            retry_failed=args.retry_failed,
            fsync=args.fsync,
            quiet=args.quiet,
            handle_signals=True,
        )
        if getattr(args, "ray", None) is not None:
            from ..cluster._cli import run_on_cluster

            report = await run_on_cluster(
                args, source, out_dir, stages, options, limits, rollout_stage
            )
        else:
            report = await run_batch(source, out_dir, stages, options=options)
    if not args.quiet:
        print(report.text())
    if report.interrupted:
        return 130
    empty = [s.kind for s in report.summaries if s.items and not s.ok]
    if empty:
        print(
            f"genevolve-async: no item succeeded in stage {', '.join(empty)} "
            f"(exit status {EXIT_NOTHING_SUCCEEDED}); the errors above say why",
            file=sys.stderr,
        )
        return EXIT_NOTHING_SUCCEEDED
    return 0


def _endpoints(
    args: argparse.Namespace, kinds: tuple[StageKind, ...], stages: list[Stage]
) -> list[Endpoint]:
    """The endpoints the stages will use, to check before the first item."""
    policy_urls: list[str] = []
    policy_key = "EMPTY"
    serper_url: str | None = None
    for stage in stages:
        if isinstance(stage, RolloutStage):
            policy_urls = stage.agent.config.base_urls
            policy_key = stage.agent.config.api_key
            names = {n.strip() for n in args.tools.split(",")}
            if _SEARCH_TOOLS & names:
                serper_url = SerperBackend().base_url
    service_urls = (
        list(args.service_url)
        if "render" in kinds and args.backend == "qwen-image-edit-service"
        else []
    )
    judge = judge_endpoint(args.judge_base_url, args.judge_api_key) if "evaluate" in kinds else None
    return batch_endpoints(
        policy_urls=policy_urls,
        policy_key=policy_key,
        service_urls=service_urls,
        judge=judge,
        serper_url=serper_url,
    )


def finalize_folder(out_dir: Path) -> list[StageSummary]:
    """Rewrite an output folder's results files from its checkpoints (blocking)."""
    present = [
        (name, kind, results) for name, kind, results in _CHECKPOINTS if (out_dir / name).is_file()
    ]
    if not present:
        raise ConfigurationError(
            f"no checkpoint (rollouts.jsonl, render.jsonl, eval.jsonl) in {out_dir}"
        )
    summaries = []
    for i, (name, kind, results) in enumerate(present):
        later = [r for _, _, r in present[i + 1 :]]
        summaries.append(
            finalize_stage(kind, out_dir, out_dir / name, None if results in later else results)
        )
    return summaries


async def _export(args: argparse.Namespace) -> int:
    options = ExportOptions(
        min_overall=args.min_overall,
        best_of_group=args.best_of_group,
        rewrite_paths=args.rewrite_paths,
        jpeg_quality=args.jpeg_quality,
        workers=args.workers,
    )
    progress = StageProgress(name="export")
    async with ProgressDisplay([progress], quiet=args.quiet).shown():
        report = await export_trajectories(
            args.results, args.out, options=options, progress=progress
        )
    if not args.quiet:
        print(report.text())
    return 0


async def _finalize(args: argparse.Namespace) -> int:
    summaries = await anyio.to_thread.run_sync(finalize_folder, args.output_dir)
    if not args.quiet:
        print("\n".join(line for summary in summaries for line in summary.lines()))
    return 0


def _merge_folder(sources: list[Path], out_dir: Path, force: bool) -> list[str]:
    folders = [s if s.is_dir() else s.parent for s in sources]
    notes: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, _, _ in _CHECKPOINTS:
        paths = [s if s.is_file() and s.name == name else s / name for s in sources]
        paths = [p for p in paths if p.is_file()]
        if paths:
            report = merge_checkpoints(paths, out_dir / name, force=force)
            notes.append(
                f"{name}: {plural(report.items, 'item')} from {plural(report.sources, 'checkpoint')}"
                + (
                    f" ({report.duplicates} ids in several; the success, else the last, kept)"
                    if report.duplicates
                    else ""
                )
            )
    if not notes:
        raise ConfigurationError("merge found no checkpoint in the sources given")
    # Rendered images travel with their records (hard links where the disk allows).
    images = out_dir / "images"
    for folder in folders:
        for image in (
            sorted((folder / "images").glob("*.png")) if (folder / "images").is_dir() else ()
        ):
            images.mkdir(exist_ok=True)
            target = images / image.name
            if not target.exists():
                try:
                    os.link(image, target)
                except OSError:
                    shutil.copy2(image, target)
    return notes


async def _merge(args: argparse.Namespace) -> int:
    notes = await anyio.to_thread.run_sync(
        _merge_folder, list(args.sources), args.output_dir, args.force
    )
    summaries = await anyio.to_thread.run_sync(finalize_folder, args.output_dir)
    if not args.quiet:
        print("\n".join([*notes, *(line for s in summaries for line in s.lines())]))
    return 0
