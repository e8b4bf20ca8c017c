"""The command line's cluster flags (``run`` and ``pipeline``): ``--ray [ADDRESS]``, ``--workers N``."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .._limits import ProviderLimits
from .._runtime import Runtime
from ..pipeline._inputs import InputSource
from ..pipeline._runner import BatchOptions, BatchReport
from ..pipeline._stages import RolloutStage, Stage

__all__ = ["add_cluster_options", "run_on_cluster"]


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Add the cluster flags to a ``run`` or ``pipeline`` parser."""
    g = parser.add_argument_group("cluster (needs the ray extra)")
    g.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the rollouts on Ray workers: join the cluster at ADDRESS (host:port, "
        "ray://host:port, auto), or start a local instance without one; --parallel is "
        "then the total over all workers, and --search-rps holds over all of them",
    )
    g.add_argument(
        "--workers", type=int, help="worker actors with --ray (default: the cluster's CPUs)"
    )


async def run_on_cluster(
    args: argparse.Namespace,
    source: InputSource,
    out_dir: Path,
    stages: Sequence[Stage],
    options: BatchOptions,
    limits: Mapping[str, ProviderLimits],
    build: Callable[[argparse.Namespace, Runtime], RolloutStage],
) -> BatchReport:
    """The batch with its rollout stage (``stages[0]``) on Ray workers, the rest here.

    ``build(args, runtime)`` makes the rollout stage; each worker calls it on
    its own runtime, so a worker's agent is the one this process would run.
    """
    from ._cluster import Cluster

    first = stages[0]
    assert isinstance(first, RolloutStage), "the cluster runs the rollout stage"
    async with Cluster(
        workers=args.workers, address=args.ray or None, parallel=args.parallel, limits=limits
    ) as cluster:
        return await cluster.run_stages(
            source, out_dir, first, functools.partial(build, args), stages[1:], options
        )
