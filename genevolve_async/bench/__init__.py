"""``python -m genevolve_async.bench``: throughput of the agent runtime on simulated backends."""

from __future__ import annotations

from ._chaos import ChaosConfig as ChaosConfig
from ._chaos import run_chaos as run_chaos
from ._chaos_audit import ChaosReport as ChaosReport
from ._drive import DriveResult as DriveResult
from ._drive import LoopLagProbe as LoopLagProbe
from ._drive import drive as drive
from ._report import Scenario as Scenario
from ._report import efficiency as efficiency
from ._report import percentile as percentile
from ._report import steady_rate as steady_rate
from ._report import theoretical_throughput as theoretical_throughput
from ._run import BenchResult as BenchResult
from ._run import bench_tools as bench_tools
from ._run import run_rollouts as run_rollouts

__all__ = [
    "BenchResult",
    "ChaosConfig",
    "ChaosReport",
    "DriveResult",
    "LoopLagProbe",
    "Scenario",
    "bench_tools",
    "drive",
    "efficiency",
    "percentile",
    "run_chaos",
    "run_rollouts",
    "steady_rate",
    "theoretical_throughput",
]
