"""``GENEVOLVE_WEB_SIM=1``: the app's backends simulated in-process, for a demo anywhere.

A scripted policy, a Serper, an image host and a two-slot Qwen service start
on loopback ports in the app's lifespan; the settings the app then runs with
point at them. Model rounds and renders take ``sim_latency`` seconds so the
page shows the events arriving one by one.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio.to_thread

from genevolve_async.sim import (
    Latency,
    SimImageHost,
    SimPolicy,
    SimQwenService,
    SimSerper,
    SimServer,
)

from .settings import WebSettings

__all__ = ["simulated_backends"]


@asynccontextmanager
async def simulated_backends(settings: WebSettings) -> AsyncIterator[WebSettings]:
    """Start the simulated services; yield ``settings`` pointed at them."""
    latency = Latency(mean=settings.sim_latency, spread=0.2)
    async with AsyncExitStack() as stack:
        images = await stack.enter_async_context(SimServer(SimImageHost().app))
        serper = await stack.enter_async_context(
            SimServer(SimSerper(image_host=images.url, latency=Latency(mean=0.1)).app)
        )
        policy = await stack.enter_async_context(SimServer(SimPolicy(latency=latency).app))
        qwen = await stack.enter_async_context(
            SimServer(SimQwenService(gpus=2, latency=latency).app)
        )
        image_dir = settings.image_dir
        if image_dir is None:
            folder = tempfile.TemporaryDirectory(prefix="genevolve-webapp-")
            # Removing a folder of downloads is blocking I/O: off the loop.
            stack.push_async_callback(anyio.to_thread.run_sync, folder.cleanup)
            image_dir = folder.name
        yield dataclasses.replace(
            settings,
            policy_urls=(policy.url + "/v1",),
            policy_api_key="sim",
            serper_url=serper.url,
            serper_api_key="sim",
            qwen_urls=(qwen.url,),
            renderer="qwen-image-edit-service",
            image_dir=image_dir,
            allow_private_hosts=True,
        )
