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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from .._gc import tune_gc_for_throughput
from ..sim import SimConfig
from ._backends import sim_process
from ._chaos import ChaosConfig, run_chaos
from ._chart import SweepPoint, draw_sweep_chart
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m genevolve_async.bench",
        description="Throughput of genevolve-async against simulated (or real) backends.",
    )
    p.add_argument("--num-rollouts", type=int, default=None, help="default: 10 x max-concurrency")
    p.add_argument("--max-concurrency", type=int, default=256, help="rollouts in flight")
    p.add_argument(
        "--request-rate", type=float, default=math.inf, help="Poisson arrivals/s (inf: all at once)"
    )
    p.add_argument(
        "--sweep", default=None, help="concurrency levels, e.g. 16,64,256,1024 (draws a chart)"
    )
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--parallel-tool-calls", type=int, default=1)
    p.add_argument("--model-latency", type=float, default=0.5)
    p.add_argument("--search-latency", type=float, default=0.3)
    p.add_argument("--download-latency", type=float, default=0.1)
    p.add_argument("--spread", type=float, default=0.1, help="relative +- spread of every latency")
    p.add_argument(
        "--policy-429", type=float, default=0.0, help="share of policy calls answered 429"
    )
    p.add_argument(
        "--policy-500", type=float, default=0.0, help="share of policy calls answered 500"
    )
    p.add_argument("--serper-rate", type=float, default=None, help="Serper limit, requests/s")
    p.add_argument("--replicas", type=int, default=1, help="simulated vLLM replicas")
    p.add_argument(
        "--policy-route",
        choices=("lean", "openai", "both"),
        default="lean",
        help="lean: direct POST on aiohttp; openai: through AsyncOpenAI; both: one run each",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--compare", default="", help="reference runners to run after ours: bare,threaded"
    )
    p.add_argument(
        "--compare-seconds", type=float, default=60.0, help="measuring window of a reference runner"
    )
    p.add_argument(
        "--base-url",
        action="append",
        default=None,
        help="real policy endpoint(s) instead of the sim",
    )
    p.add_argument("--serper-base-url", default=None, help="real Serper-compatible endpoint")
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
        help="run every runner N times, interleaved, and report medians (timings here move 10%% run to run)",
    )
    p.add_argument(
        "--image-dir",
        type=Path,
        default=None,
        help="where the runs' throw-away image folders go (default: /dev/shm when there is one, so the "
        "figures measure the runtime rather than this machine's disk; name a disk folder to include it)",
    )
    p.add_argument("--result-dir", type=Path, default=Path("bench-results"))
    p.add_argument("--save-result", action=argparse.BooleanOptionalAction, default=True)
    return p


def _levels(args: argparse.Namespace) -> list[int]:
    if args.sweep:
        return [int(v) for v in args.sweep.split(",") if v.strip()]
    return [args.max_concurrency]


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k[:6]}={v}" for k, v in value.items())
    return str(value)


def _table(rows: list[dict[str, Any]], keys: Sequence[str] = _TABLE_KEYS) -> str:
    width = max(len(k) for k in [*keys, "in flight"])
    header = f"{'':<{width}}  " + "  ".join(f"{r['runner'][:16]:>16}" for r in rows)
    lines = [
        header,
        f"{'in flight':<{width}}  " + "  ".join(f"{r['max_concurrency']:>16}" for r in rows),
    ]
    for key in keys:
        if not any(key in r for r in rows):
            continue
        cells = "  ".join(f"{_cell(r.get(key, '')):>16}" for r in rows)
        lines.append(f"{key:<{width}}  {cells}")
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
                    )
                    row = ours.to_dict()
                    duration = max(ours.drive.duration, 1e-9)
                    row["model_calls_per_s"] = round(ours.model_calls / duration, 2)
                    row["tool_calls_per_s"] = {
                        k: round(v / duration, 2) for k, v in sorted(ours.tool_calls.items())
                    }
                    report["runs"].append({**row, **tag})
                for name in compare:
                    ref = await run_reference(
                        name,
                        urls=urls,
                        num_rollouts=n,
                        concurrency=level,
                        critical_path=scenario.critical_path,
                        rounds=args.rounds,
                        stop_after=args.compare_seconds,
                        image_root=image_root,
                    )
                    report["runs"].append({**ref, **tag})


def _image_root(chosen: Path | None) -> Path | None:
    """The folder for the runs' image folders: ``chosen``, else /dev/shm if usable, else the temp dir."""
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        return chosen
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


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
    anyio.run(_run, args, report, backend_options=backend_options)
    report["ratios"] = ratios(report["runs"])
    print(_table(report["runs"]))
    for ratio in report["ratios"]:
        print(f"vs {ratio['versus']} at {ratio['max_concurrency']} in flight: {ratio}")
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
        if len(_levels(args)) > 1:
            points = [
                SweepPoint(
                    runner=r["runner"],
                    concurrency=r["max_concurrency"],
                    throughput=r["rollouts_per_s"],
                )
                for r in report["runs"]
            ]
            critical = report["scenario"]["critical_path_s"]
            points += [
                SweepPoint(
                    runner="theoretical",
                    concurrency=c,
                    throughput=theoretical_throughput(c, critical),
                )
                for c in _levels(args)
            ]
            chart = draw_sweep_chart(
                points,
                args.result_dir / f"sweep-{stamp}.png",
                title="rollouts/s vs rollouts in flight",
            )
            print(f"chart: {chart}")
