"""Starting the simulated backends in a child process for the bench."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import Process

from ..sim import SimConfig

__all__ = ["sim_process"]


@asynccontextmanager
async def sim_process(config: SimConfig) -> AsyncIterator[dict[str, Any]]:
    """Run ``python -m genevolve_async.sim`` and yield its URLs; stop it on exit."""
    process: Process = await anyio.open_process(
        [
            sys.executable,
            "-m",
            "genevolve_async.sim",
            "--json",
            "--until-stdin-closes",
            "--config-json",
            json.dumps(config.to_dict()),
        ],
        stdin=-1,
        stdout=-1,
        stderr=None,
    )
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(60):
            async for chunk in process.stdout:
                line += chunk
                if b"\n" in line:
                    break
        yield json.loads(line.split(b"\n", 1)[0])
    finally:
        with anyio.move_on_after(10, shield=True):
            if process.stdin is not None:
                await process.stdin.aclose()
            await process.wait()
        if process.returncode is None:
            process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()
