"""Joining a cluster's limiter service from any process (say, each web-app worker)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from .._limits import RateGateFactory
from ._limiter import LimiterService, gate_factory
from ._ray import NAMESPACE, connect, import_ray

__all__ = ["join_limits", "limiter_actor"]

DEFAULT_SERVICE = "genevolve-limits"


def limiter_actor(name: str, *, detached: bool = True) -> Any:
    """The named limiter service in our namespace, made if nobody has (blocking)."""
    ray = import_ray()
    actor = ray.remote(LimiterService).options(
        name=name,
        namespace=NAMESPACE,
        # Detached, it outlives any one process: the others keep sharing it.
        lifetime="detached" if detached else None,
        get_if_exists=True,
        num_cpus=0,
        max_concurrency=1000,
    )
    return actor.remote()


async def join_limits(
    address: str | None = "auto", *, name: str = DEFAULT_SERVICE
) -> RateGateFactory:
    """Rate gates leasing from the named limiter service, made on first use.

    Every process that joins the same service (same Ray cluster, same name)
    shares each provider's rate. Pass the result as ``RuntimeConfig.rate_gates``::

        gates = await join_limits("auto")
        runtime = Runtime(RuntimeConfig(limits={"serper": ProviderLimits(rate=10)},
                                        rate_gates=gates))

    Args:
        address: The Ray cluster (``None``: start a local one; ``auto``: the
            one ``ray start`` runs on this machine).
        name: The service's actor name in the ``genevolve`` namespace.

    Raises:
        ConfigurationError: Ray is missing, or nothing answers at ``address``.
    """
    await connect(address)
    service = await anyio.to_thread.run_sync(limiter_actor, name)
    return gate_factory(service.lease.remote)
