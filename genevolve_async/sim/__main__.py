"""``python -m genevolve_async.sim``: run the simulated backends in their own process.

Prints one JSON line with the servers' URLs, then serves until standard input
closes or the process is terminated. The bench starts it this way so the
simulated services do not share our event loop's CPU.
"""

from __future__ import annotations

import argparse
import json
import sys

import anyio

from .._gc import tune_gc_for_throughput
from ._stack import SimConfig, SimStack


def _parse(argv: list[str] | None) -> SimConfig:
    parser = argparse.ArgumentParser(prog="python -m genevolve_async.sim", description=__doc__)
    parser.add_argument("--config-json", default="{}", help="SimConfig fields as a JSON object")
    args = parser.parse_args(argv)
    return SimConfig.from_dict(json.loads(args.config_json))


async def _serve(config: SimConfig) -> None:
    async with SimStack(config) as stack:
        print(json.dumps(stack.urls), flush=True)
        # Serve until our parent closes stdin (it exits or is done with us).
        await anyio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


def main(argv: list[str] | None = None) -> None:
    config = _parse(argv)
    # Thousands of requests a second: full collections would stall every
    # simulated service at once and show up as our latency.
    tune_gc_for_throughput()
    try:
        import uvloop  # noqa: F401  # the sim's CPU is not what we measure; make it cheap

        anyio.run(_serve, config, backend_options={"use_uvloop": True})
    except ImportError:
        anyio.run(_serve, config)


if __name__ == "__main__":
    main()
