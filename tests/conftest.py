from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from genevolve_async import Runtime
from genevolve_async.sim import Latency, SimImageHost, SimPolicy, SimServer

# The suite never writes under ~/.cache (or any per-user cache): every
# default cache folder points into one temporary folder for the session,
# set before anything reads them, and inherited by the processes tests start.
# A test that wants a variable unset or elsewhere uses monkeypatch.
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="genevolve-tests-cache-"))
CACHE_VARIABLES = {
    "IMAGE_DOWNLOAD_DIR": SESSION_CACHE / "images",
    "XDG_CACHE_HOME": SESSION_CACHE / "xdg",
    "HF_HOME": SESSION_CACHE / "huggingface",
    "TORCH_HOME": SESSION_CACHE / "torch",
    "MPLCONFIGDIR": SESSION_CACHE / "matplotlib",
}
for _name, _folder in CACHE_VARIABLES.items():
    os.environ[_name] = str(_folder)
atexit.register(shutil.rmtree, SESSION_CACHE, ignore_errors=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim_policy() -> AsyncIterator[tuple[SimPolicy, str]]:
    """A simulated policy; yields (server object, base URL ending in /v1)."""
    policy = SimPolicy()
    async with SimServer(policy.app) as server:
        yield policy, server.url + "/v1"


@pytest.fixture
async def image_host() -> AsyncIterator[tuple[SimImageHost, str]]:
    """A simulated image host whose downloads finish in shuffled order."""
    host = SimImageHost(latency=Latency(mean=0.02), shuffle=True)
    async with SimServer(host.app) as server:
        yield host, server.url


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime() as rt:
        yield rt


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    return folder
