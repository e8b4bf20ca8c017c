from __future__ import annotations

from pathlib import Path

import pytest

from genevolve_async import GenEvolveAgent, Runtime
from genevolve_async.sim import SimImageHost, SimPolicy
from genevolve_async.tools import QueryKnowledge
from tests._support import EchoSearchTool, SimImageTool


@pytest.fixture
def make_agent(
    sim_policy: tuple[SimPolicy, str],
    image_host: tuple[SimImageHost, str],
    runtime: Runtime,
    image_dir: Path,
):  # type: ignore[no-untyped-def]
    """Build agents against the simulated policy and image host."""

    def make(**options: object) -> GenEvolveAgent:
        options.setdefault("runtime", runtime)
        tools = [EchoSearchTool(), SimImageTool(image_host[1], image_dir), QueryKnowledge()]
        return GenEvolveAgent(base_url=sim_policy[1], tools=tools, **options)  # type: ignore[arg-type]

    return make
