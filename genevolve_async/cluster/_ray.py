"""Ray, imported lazily, and joined or started with errors that say what to do.

The core install has no Ray: everything here imports it on first use, and
turns a missing package or a cluster that does not answer into a
:class:`ConfigurationError` within seconds (``ray.init`` itself would keep
retrying an address for a minute or more).
"""

from __future__ import annotations

import socket
from types import ModuleType
from typing import Any

import anyio.to_thread

from .._errors import ConfigurationError

__all__ = ["NAMESPACE", "connect", "import_ray"]

NAMESPACE = "genevolve"
"""The Ray namespace our named actors live in (web-app workers find them there)."""
_PROBE_TIMEOUT = 3.0


def import_ray() -> ModuleType:
    """The ``ray`` module.

    Raises:
        ConfigurationError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise ConfigurationError(
            "running on Ray needs the ray extra: pip install 'genevolve-async[ray]'"
        ) from None
    return ray


def _probe(address: str) -> None:
    """Fail fast when ``host:port`` takes no TCP connection (blocking)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local" and friends: Ray resolves those itself, quickly
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), _PROBE_TIMEOUT):
            pass
    except OSError as exc:
        raise ConfigurationError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
            "'ray start --head' or pass --ray without an address for a local instance"
        ) from None


def _init(address: str | None, options: dict[str, Any]) -> bool:
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address is not None:
        _probe(address)
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, **options)
    except ConnectionError as exc:
        raise ConfigurationError(f"could not join the Ray cluster at {address}: {exc}") from None
    return True


async def connect(address: str | None = None, **options: Any) -> bool:
    """Join the Ray cluster at ``address``, or start a local instance (``None``).

    A process already connected to Ray keeps its connection.

    Args:
        address: ``host:port`` of a head node, ``ray://host:port``, ``auto``,
            or ``None`` for a local instance.
        options: More ``ray.init`` keywords (a local instance's ``num_cpus``...).

    Returns:
        Whether this call connected (and so should disconnect when done).

    Raises:
        ConfigurationError: Ray is missing, or nothing answers at ``address``.
    """
    return await anyio.to_thread.run_sync(_init, address, options)


async def disconnect() -> None:
    """Leave Ray (stops a local instance this process started)."""
    ray = import_ray()
    await anyio.to_thread.run_sync(ray.shutdown)
