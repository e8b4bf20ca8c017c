"""Command line of the bench (first version: the agent stage on simulated backends)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import anyio

from ..sim import SimConfig
from ._backends import sim_process
from ._report import Scenario
from ._run import run_rollouts

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m genevolve_async.bench", description=__doc__)
    p.add_argument("--num-rollouts", type=int, default=640)
    p.add_argument("--max-concurrency", type=int, default=64)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--model-latency", type=float, default=0.5)
    p.add_argument("--search-latency", type=float, default=0.3)
    p.add_argument("--download-latency", type=float, default=0.1)
    p.add_argument("--spread", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--result-dir", type=Path, default=Path("bench-results"))
    p.add_argument("--save-result", action=argparse.BooleanOptionalAction, default=True)
    return p


def _table(report: dict[str, Any]) -> str:
    keys = [
        "completed", "failed", "duration_s", "rollouts_per_s", "theoretical_rollouts_per_s",
        "efficiency", "steady_efficiency", "critical_path_s", "latency_mean_s", "latency_p50_s",
        "latency_p90_s", "latency_p99_s", "first_rollout_latency_s", "cpu_ms_per_rollout",
        "peak_rss_mb", "loop_lag_max_ms",
    ]  # fmt: skip
    width = max(len(k) for k in keys)
    lines = [f"{'=' * 20} genevolve-async bench {'=' * 20}"]
    lines += [f"{k:<{width}}  {report.get(k)}" for k in keys]
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    tools = ("query_knowledge",)
    scenario = Scenario(
        rounds=args.rounds,
        model_latency=args.model_latency,
        search_latency=args.search_latency,
        download_latency=args.download_latency,
        tools=tools,
    )
    config = SimConfig(
        model_latency=args.model_latency,
        search_latency=args.search_latency,
        download_latency=args.download_latency,
        spread=args.spread,
        rounds=args.rounds,
        tools=tools,
        seed=args.seed,
    )
    async with sim_process(config) as urls:
        result = await run_rollouts(
            policy_urls=urls["policy"],
            tools=None,
            num_rollouts=args.num_rollouts,
            concurrency=args.max_concurrency,
            scenario=scenario,
        )
    return result.to_dict()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    report = anyio.run(_main, args)
    print(_table(report))
    if args.save_result:
        args.result_dir.mkdir(parents=True, exist_ok=True)
        path = args.result_dir / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(report, indent=2))
        print(f"report written to {path}")
