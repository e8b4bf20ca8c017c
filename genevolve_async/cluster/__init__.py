"""Rollouts past one process: batch runs on a Ray cluster (the ``ray`` extra).

``Cluster`` runs each job on worker actors, each owning one ``Runtime`` and
one event loop; the driver alone reads the input and writes the checkpoint.
Provider rates hold over every worker (and over web-app workers that
:func:`join_limits`), and a replica one worker quarantines is out for all.
Ray is imported only when a cluster starts: the core install stays light.
"""

from __future__ import annotations

from ._cluster import Cluster as Cluster
from ._dispatch import WorkerLost as WorkerLost
from ._join import join_limits as join_limits
from ._limiter import Lease as Lease
from ._limiter import LeasedRateGate as LeasedRateGate
from ._limiter import LimiterService as LimiterService
from ._stage import ClusterRolloutStage as ClusterRolloutStage

__all__ = [
    "Cluster",
    "ClusterRolloutStage",
    "Lease",
    "LeasedRateGate",
    "LimiterService",
    "WorkerLost",
    "join_limits",
]
