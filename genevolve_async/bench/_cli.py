"""Command line of the bench: ``python -m genevolve_async.bench``.

With no arguments it starts the simulated backends in a child process, runs
the default scenario (4-round rollouts: search with 2 queries, image_search
with 5 downloads, query_knowledge, answer; model 0.5 s, search 0.3 s,
download 0.1 s) at 256 in flight, prints a table and writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import Any

import anyio

from .._errors import ConfigurationError
from .._gc import tune_gc_for_throughput
from .._progress import ProgressDisplay, StageProgress
from ..sim import SimConfig
from ._backends import sim_process
from ._chaos import ChaosConfig, run_chaos
from ._chart import THEORETICAL, ChartUnavailable, SweepPoint, draw_sweep_chart
from ._compare import REFERENCE_RUNNERS, run_reference
from ._report import Scenario, theoretical_throughput
from ._run import run_rollouts
from ._summary import MEDIAN_KEYS, medians, ratios

__all__ = ["main"]

_TABLE_KEYS = [
    "completed", "failed", "duration_s", "rollouts_per_s", "theoretical_rollouts_per_s",
    "efficiency", "steady_rollouts_per_s", "steady_efficiency", "critical_path_s",
    "latency_mean_s", "latency_efficiency", "latency_p50_s", "latency_p90_s", "latency_p99_s",
    "first_rollout_latency_s", "model_calls_per_s", "tool_calls_per_s", "cpu_ms_per_rollout",
    "peak_rss_mb", "rss_kb_per_in_flight", "peak_in_flight", "loop_lag_max_ms",
]  # fmt: skip

# What each figure is, with its unit, as the table prints it.
_LABELS = {
    "completed": "completed (rollouts)",
    "failed": "failed (rollouts)",
    "duration_s": "duration (s)",
    "rollouts_per_s": "throughput (rollouts/s)",
    "theoretical_rollouts_per_s": "theoretical bound (rollouts/s)",
    "efficiency": "efficiency (throughput/bound) [1]",
    "steady_rollouts_per_s": "steady throughput (rollouts/s) [2]",
    "steady_efficiency": "steady efficiency (steady/bound) [2]",
    "critical_path_s": "critical path (s)",
    "latency_mean_s": "latency mean (s)",
    "latency_efficiency": "latency efficiency (critical path/mean)",
    "latency_p50_s": "latency p50 (s)",
    "latency_p90_s": "latency p90 (s)",
    "latency_p99_s": "latency p99 (s)",
    "first_rollout_latency_s": "first rollout latency (s)",
    "model_calls_per_s": "model calls (calls/s)",
    "cpu_ms_per_rollout": "CPU per rollout (ms)",
    "peak_rss_mb": "peak RSS (MB)",
    "rss_kb_per_in_flight": "RSS per rollout in flight (KB)",
    "peak_in_flight": "peak in flight (rollouts)",
    "loop_lag_max_ms": "worst event-loop stall (ms)",
}
_NOTES = """[1] efficiency: achieved throughput over the bound (rollouts in flight / critical path);
    at most 1 up to timing noise.
[2] steady: completions per second from the end of the first wave (the first in-flight's
    worth of rollouts, which start together) to the last completion. It leaves out start-up,
    so it reads above efficiency; the latency spread can take it a little past 1."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m genevolve_async.bench",
        description="Throughput of genevolve-async against simulated (or real) backends.",
    )
    p.add_argument(
        "--num-rollouts",
        type=int,
        default=None,
        help="rollouts per run, a count (default: 10 x the rollouts in flight)",
    )
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=256,
        help="rollouts in flight at once, a count (default: %(default)s)",
    )
    p.add_argument(
        "--request-rate",
        type=float,
        default=math.inf,
        help="Poisson arrivals in rollouts per second (default: inf, all at once)",
    )
    p.add_argument(
        "--sweep",
        default=None,
        help="comma-separated levels of rollouts in flight, e.g. 16,64,256,1024 (one run each)",
    )
    p.add_argument(
        "--rounds", type=int, default=4, help="model turns per rollout, a count (default: 4)"
    )
    p.add_argument(
        "--parallel-tool-calls",
        type=int,
        default=1,
        help="tool calls per model turn, a count (default: 1)",
    )
    p.add_argument(
        "--model-latency",
        type=float,
        default=0.5,
        help="seconds per simulated model turn (default: %(default)s)",
    )
    p.add_argument(
        "--search-latency",
        type=float,
        default=0.3,
        help="seconds per simulated Serper request (default: %(default)s)",
    )
    p.add_argument(
        "--download-latency",
        type=float,
        default=0.1,
        help="seconds per simulated image download (default: %(default)s)",
    )
    p.add_argument(
        "--spread",
        type=float,
        default=0.1,
        help="relative +- spread of every latency, a fraction (default: 0.1, i.e. 10%%)",
    )
    p.add_argument(
        "--policy-429",
        type=float,
        default=0.0,
        help="fraction of policy calls answered 429, 0-1 (default: 0)",
    )
    p.add_argument(
        "--policy-500",
        type=float,
        default=0.0,
        help="fraction of policy calls answered 500, 0-1 (default: 0)",
    )
    p.add_argument(
        "--serper-rate",
        type=float,
        default=None,
        help="Serper limit in requests per second (default: none)",
    )
    p.add_argument(
        "--replicas", type=int, default=1, help="simulated vLLM replicas, a count (default: 1)"
    )
    p.add_argument(
        "--policy-route",
        choices=("lean", "openai", "both"),
        default="lean",
        help=(
            "lean: direct POST on the runtime's aiohttp session; openai: AsyncOpenAI "
            "on the same session; both: one run each"
        ),
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the latency, fault and arrival draws"
    )
    p.add_argument(
        "--compare",
        default="",
        help="comma-separated reference runners to run after ours: bare (a minimal aiohttp "
        "loop), threaded (the original's thread-pool design)",
    )
    p.add_argument(
        "--compare-seconds",
        type=float,
        default=60.0,
        help="seconds a reference runner may admit new rollouts (default: %(default)s)",
    )
    p.add_argument(
        "--base-url",
        action="append",
        default=None,
        help="real policy endpoint(s) instead of the sim",
    )
    p.add_argument(
        "--serper-base-url", default=None, help="real Serper-compatible endpoint (a URL)"
    )
    p.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="use uvloop when installed",
    )
    p.add_argument(
        "--gc-tuning",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="collect the old GC generation rarely (see genevolve_async.tune_gc_for_throughput)",
    )
    p.add_argument(
        "--chaos",
        action="store_true",
        help="the reliability run instead: every fault at once, audited (2,000 rollouts at 500 "
        "in flight; GENEVOLVE_CHAOS_ROLLOUTS and GENEVOLVE_CHAOS_IN_FLIGHT scale it)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every runner N times, a count, interleaved, and report medians "
        "(timings here move 10%% run to run)",
    )
    p.add_argument(
        "--image-dir",
        type=Path,
        default=None,
        help="where the runs' throw-away image folders go (default: /dev/shm when there is one, so the "
        "figures measure the runtime rather than this machine's disk; name a disk folder to include it)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="after the single-process run, the same load on Ray workers (a local instance "
        "without ADDRESS), the limiter alone, and a Serper-limited run over 2 workers",
    )
    p.add_argument(
        "--workers", default="1,2", help="worker counts of the --ray runs (default: %(default)s)"
    )
    p.add_argument(
        "--cluster-serper-rate",
        type=float,
        default=20.0,
        help="Serper limit of the rate-limited --ray run (default: %(default)s/s)",
    )
    p.add_argument(
        "--otel",
        action="store_true",
        help="trace and measure with the OpenTelemetry SDK as the OTEL_* variables say "
        "(OTEL_TRACES_EXPORTER=memory keeps spans in the process)",
    )
    p.add_argument(
        "--result-dir",
        type=Path,
        default=Path("bench-results"),
        help="folder for the JSON report and the chart (default: %(default)s)",
    )
    p.add_argument(
        "--save-result",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write the JSON report and the chart (default: yes)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress while the runs go (the table stays)"
    )
    return p


def _levels(args: argparse.Namespace) -> list[int]:
    if args.sweep:
        return [int(v) for v in args.sweep.split(",") if v.strip()]
    return [args.max_concurrency]


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _label(key: str) -> str:
    if key in _LABELS:
        return _LABELS[key]
    if "_ratio_vs_" in key:  # e.g. cpu_ratio_vs_bare: ours over theirs
        figure, _, versus = key.partition("_ratio_vs_")
        return f"{figure} ratio, ours/{versus} (x)"
    return key


def _table(rows: list[dict[str, Any]], keys: Sequence[str] = _TABLE_KEYS) -> str:
    """The runs side by side, one column each, one figure (with its unit) per line."""
    labelled: list[tuple[str, list[Any]]] = [
        ("rollouts in flight", [r["max_concurrency"] for r in rows])
    ]
    for key in keys:
        if not any(key in r for r in rows):
            continue
        if any(isinstance(r.get(key), dict) for r in rows):  # tool_calls_per_s, by tool
            names = sorted({name for r in rows for name in (r.get(key) or {})})
            labelled += [
                (f"{name} calls (calls/s)", [(r.get(key) or {}).get(name) for r in rows])
                for name in names
            ]
            continue
        labelled.append((_label(key), [r.get(key) for r in rows]))
    width = max(len(label) for label, _ in labelled)
    columns = [max(12, len(r["runner"])) for r in rows]
    header = f"{'':<{width}}  " + "  ".join(
        f"{r['runner']:>{c}}" for r, c in zip(rows, columns, strict=True)
    )
    lines = [header]
    for label, values in labelled:
        cells = "  ".join(f"{_cell(v):>{c}}" for v, c in zip(values, columns, strict=True))
        lines.append(f"{label:<{width}}  {cells}")
    if any(k in keys for k in ("efficiency", "steady_efficiency")):
        lines.append(_NOTES)
    return "\n".join(lines)


async def _run(args: argparse.Namespace, report: dict[str, Any]) -> None:
    tools = ("search", "image_search", "query_knowledge")
    scenario = Scenario(
        rounds=args.rounds,
        model_latency=args.model_latency,
        search_latency=args.search_latency,
        download_latency=args.download_latency,
        tools=tools,
    )
    faults = {k: v for k, v in (("rate_429", args.policy_429), ("rate_500", args.policy_500)) if v}
    config = SimConfig(
        replicas=args.replicas,
        model_latency=args.model_latency,
        search_latency=args.search_latency,
        download_latency=args.download_latency,
        spread=args.spread,
        rounds=args.rounds,
        parallel_tool_calls=args.parallel_tool_calls,
        tools=tools,
        policy_faults=faults,
        seed=args.seed,
    )
    compare = [c for c in args.compare.split(",") if c]
    image_root = _image_root(args.image_dir)
    report["machine"]["image_dir"] = str(image_root or tempfile.gettempdir())
    for name in compare:
        if name not in REFERENCE_RUNNERS:
            raise SystemExit(
                f"--compare: unknown runner {name!r}; choose from {', '.join(REFERENCE_RUNNERS)}"
            )
    async with sim_process(config) as sim_urls:
        urls = dict(sim_urls)
        if args.base_url:
            urls["policy"] = args.base_url
        if args.serper_base_url:
            urls["serper"] = args.serper_base_url
        report["scenario"] = {
            **config.to_dict(),
            "critical_path_s": round(scenario.critical_path, 3),
        }
        for level in _levels(args):
            n = args.num_rollouts or 10 * level
            routes = ("lean", "openai") if args.policy_route == "both" else (args.policy_route,)
            for repeat in range(max(1, args.repeat)):
                tag = {"repeat": repeat} if args.repeat > 1 else {}
                for route in routes:
                    runner = "genevolve-async" if route == "lean" else f"genevolve-async[{route}]"
                    progress = StageProgress(name=f"{runner} at {level} in flight", total=n)
                    async with _showing(progress, args.quiet):
                        ours = await run_rollouts(
                            policy_urls=urls["policy"],
                            serper_url=urls["serper"],
                            num_rollouts=n,
                            concurrency=level,
                            scenario=scenario,
                            request_rate=args.request_rate,
                            seed=args.seed,
                            serper_rate=args.serper_rate,
                            policy_route=route,
                            image_root=image_root,
                            progress=progress,
                        )
                    row = ours.to_dict()
                    duration = max(ours.drive.duration, 1e-9)
                    row["model_calls_per_s"] = round(ours.model_calls / duration, 2)
                    row["tool_calls_per_s"] = {
                        k: round(v / duration, 2) for k, v in sorted(ours.tool_calls.items())
                    }
                    report["runs"].append({**row, **tag})
                for name in compare:
                    progress = StageProgress(name=f"{name} at {level} in flight", total=n)
                    if name == "threaded" and not args.quiet:  # its threads keep no live counts
                        print(
                            f"{name}: {n} rollouts at {level} in flight "
                            f"(up to {args.compare_seconds:g} s of arrivals)...",
                            file=sys.stderr,
                            flush=True,
                        )
                    async with _showing(progress, args.quiet or name == "threaded"):
                        ref = await run_reference(
                            name,
                            urls=urls,
                            num_rollouts=n,
                            concurrency=level,
                            critical_path=scenario.critical_path,
                            rounds=args.rounds,
                            stop_after=args.compare_seconds,
                            image_root=image_root,
                            progress=progress,
                        )
                    report["runs"].append({**ref, **tag})
        if args.ray is not None:
            from ._cluster import run_cluster_suite

            level = _levels(args)[0]
            report["cluster"] = await run_cluster_suite(
                address=args.ray or None,
                worker_counts=[int(v) for v in args.workers.split(",") if v.strip()],
                policy_urls=urls["policy"],
                serper_url=urls["serper"],
                num_rollouts=args.num_rollouts or 10 * level,
                concurrency=level,
                scenario=scenario,
                serper_rate=args.cluster_serper_rate,
                image_root=image_root,
            )


def _showing(progress: StageProgress, quiet: bool) -> AbstractAsyncContextManager[None]:
    """Show one run's progress while the block runs (a live line, or plain lines in a log)."""
    return ProgressDisplay([progress], quiet=quiet, plain_interval=10.0).shown()


def _image_root(chosen: Path | None) -> Path | None:
    """The folder for the runs' image folders: ``chosen``, else /dev/shm if usable, else the temp dir."""
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        return chosen
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


@contextmanager
def _otel(enabled: bool, report: dict[str, Any]) -> Iterator[None]:
    """``--otel``: the SDK from the ``OTEL_*`` variables for the run, flushed at exit."""
    if not enabled:
        yield
        return
    from ..telemetry import configure_from_env

    try:
        setup = configure_from_env()
    except ConfigurationError as exc:
        raise SystemExit(f"--otel: {exc}") from None
    report["otel"] = {
        "traces": [type(e).__name__ for e in setup.span_exporters],
        "metrics": [type(r).__name__ for r in setup.metric_readers],
    }
    try:
        yield
    finally:
        setup.shutdown()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.gc_tuning:
        tune_gc_for_throughput()
    backend_options: dict[str, Any] = {}
    loop = "asyncio"
    if args.uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            pass
        else:
            backend_options["use_uvloop"] = True
            loop = "uvloop"
    if args.chaos:
        chaos = anyio.run(
            run_chaos, ChaosConfig.from_env(seed=args.seed), backend_options=backend_options
        )
        print(chaos.table())
        raise SystemExit(0 if chaos.ok else 1)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count() or 0,
            "python": platform.python_version(),
            "event_loop": loop,
        },
        "command": "python -m genevolve_async.bench "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "runs": [],
    }
    if args.repeat < 1:
        raise SystemExit("--repeat: at least 1")
    with _otel(args.otel, report):
        anyio.run(_run, args, report, backend_options=backend_options)
    report["ratios"] = ratios(report["runs"])
    print(_table(report["runs"]))
    for ratio in report["ratios"]:
        print(_ratio_line(ratio))
    for row in report.get("cluster", ()):
        print(json.dumps(row))
    if args.repeat > 1:
        report["medians"] = medians(report["runs"], report["ratios"])
        ratio_keys = sorted({k for m in report["medians"] for k in m if "_ratio_vs_" in k})
        print(f"\nmedians over {args.repeat} interleaved repetitions (ranges in the report):")
        print(_table(report["medians"], [*MEDIAN_KEYS, *ratio_keys]))
    if args.save_result:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.result_dir.mkdir(parents=True, exist_ok=True)
        path = args.result_dir / f"bench-{stamp}.json"
        path.write_text(json.dumps(report, indent=2))
        print(f"report: {path}")
        chart_rows = report["medians"] if args.repeat > 1 else report["runs"]
        try:
            chart = draw_sweep_chart(
                _chart_points(chart_rows, report["scenario"]["critical_path_s"]),
                args.result_dir / f"bench-{stamp}.png",
                title=f"genevolve-async bench, critical path {report['scenario']['critical_path_s']:g} s",
            )
        except ChartUnavailable as exc:
            print(f"chart: not drawn ({exc})")
        else:
            print(f"chart: {chart}")


def _ratio_line(ratio: dict[str, Any]) -> str:
    parts = []
    if "throughput_ratio" in ratio:
        parts.append(f"throughput x{ratio['throughput_ratio']}")
    if "cpu_ratio" in ratio:
        parts.append(f"CPU per rollout x{ratio['cpu_ratio']}")
    repeat = f", repetition {ratio['repeat']}" if "repeat" in ratio else ""
    return f"ours vs {ratio['versus']} at {ratio['max_concurrency']} in flight{repeat}: " + (
        ", ".join(parts) or "no figures to compare"
    )


def _chart_points(rows: list[dict[str, Any]], critical_path: float) -> list[SweepPoint]:
    points = [
        SweepPoint(
            runner=r["runner"],
            concurrency=r["max_concurrency"],
            throughput=r["rollouts_per_s"],
            efficiency=r.get("efficiency"),
        )
        for r in rows
        if isinstance(r.get("rollouts_per_s"), (int, float))
    ]
    levels = sorted({p.concurrency for p in points})
    return points + [
        SweepPoint(
            runner=THEORETICAL,
            concurrency=c,
            throughput=theoretical_throughput(c, critical_path),
        )
        for c in levels
    ]
