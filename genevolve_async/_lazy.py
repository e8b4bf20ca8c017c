"""Heavy optional imports, done in a worker thread instead of on the event loop.

``import openai`` runs about half a second of module code, and the SDK loads
its chat resources lazily on first use. Done on the loop, the first judge
call (or the first call on the SDK policy route) stalls every task of the
process, which an agent embedded in a web server feels as a frozen server.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import anyio.to_thread

__all__ = ["import_off_loop"]


def _import_all(names: tuple[str, ...]) -> ModuleType:
    modules = [importlib.import_module(name) for name in names]
    return modules[0]


async def import_off_loop(name: str, *also: str) -> ModuleType:
    """Import ``name`` (and the modules in ``also``) in a worker thread; return ``name``.

    Once imported, a module is a dictionary lookup away: later plain
    ``import`` statements cost nothing.
    """
    return await anyio.to_thread.run_sync(_import_all, (name, *also))
