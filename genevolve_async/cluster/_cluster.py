"""``Cluster``: rollouts on Ray workers, as an async context manager.

One cluster session joins (or starts) Ray, runs one limiter service for its
provider rates, and starts a set of workers per job: ``map`` streams
records back in the order they finish, ``run_batch`` is the checkpointed
batch of :func:`genevolve_async.pipeline.run_batch` with its rollouts on the
workers (the driver alone writes the checkpoint).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from .._errors import ConfigurationError, classify_exception
from .._limits import ProviderLimits
from .._runtime import Runtime
from ..agent import AgentConfig, GenEvolveAgent
from ..pipeline._inputs import BadRow, InputRow, InputSource, check_rows
from ..pipeline._runner import BatchOptions, BatchReport, run_batch
from ..pipeline._stages import RolloutStage, Stage, is_fatal
from ..tools import Tool
from ._dispatch import Dispatcher
from ._join import limiter_actor
from ._ray import connect, disconnect, import_ray
from ._stage import ClusterRolloutStage
from ._worker import WorkerSpec

__all__ = ["Cluster", "forwarded_env"]

logger = logging.getLogger("genevolve_async.cluster")

# Environment the tools and clients read, forwarded to workers on other machines.
_FORWARDED = ("SERPER_", "OPENAI_", "GENEVOLVE_", "GOOGLE_", "GEMINI_", "IMAGE_DOWNLOAD_DIR")


def forwarded_env(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables a worker needs to act like this process (keys included, never logged)."""
    return {k: v for k, v in env.items() if k.startswith(_FORWARDED)}


def rollout_stage_on(
    config: AgentConfig,
    tools: Sequence[Tool] | None,
    timeout: float | None,
    samples_per_prompt: int,
    runtime: Runtime,
) -> RolloutStage:
    """The rollout stage a worker runs for :meth:`Cluster.map` and :meth:`Cluster.run_batch`."""
    agent = GenEvolveAgent(config, runtime=runtime, tools=tools)
    return RolloutStage(agent, timeout=timeout, samples_per_prompt=samples_per_prompt)


class Cluster:
    """Rollouts on a Ray cluster: many workers, one budget per provider, one checkpoint.

    Example::

        async with Cluster(workers=4) as cluster:
            async for record in cluster.map(rows, AgentConfig(base_url=urls)):
                print(record["id"], record["termination"])

    Args:
        workers: Worker actors per job (default: the cluster's CPUs).
        address: A Ray head (``host:port``, ``ray://host:port``, ``auto``);
            ``None`` starts a local instance (or uses the one this process
            is already connected to).
        parallel: Items in flight over all workers together.
        batch: Most items a worker pulls at once.
        limits: Provider limits (``serper``, ``policy``...): rates hold over
            the whole cluster, in-flight caps are split among the workers.
        limiter: Name of a limiter service to share (a detached actor in the
            ``genevolve`` namespace that web-app workers join too); default:
            a private one that ends with this session.
        max_restarts: Replacements per worker after it dies.
        worker_cpus: CPUs each worker reserves.
        record_grants: Keep rate-grant timestamps (bench and tests).
        ray_options: More ``ray.init`` keywords for a local instance.
    """

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        *,
        parallel: int = 128,
        batch: int = 4,
        limits: Mapping[str, ProviderLimits] | None = None,
        limiter: str | None = None,
        max_restarts: int = 1,
        worker_cpus: float = 1.0,
        record_grants: bool = False,
        ray_options: Mapping[str, Any] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ConfigurationError("a cluster needs at least one worker")
        if parallel < 1:
            raise ConfigurationError("parallel must be at least 1")
        self.workers = workers or 0
        self.address = address
        self.parallel = parallel
        self.batch = batch
        self.limits = dict(limits or {})
        self.limiter_name = limiter
        self.max_restarts = max_restarts
        self.worker_cpus = worker_cpus
        self.record_grants = record_grants
        self.ray_options = dict(ray_options or {})
        self.bad_rows: list[BadRow] = []
        """Rows :meth:`map` skipped, with the reason."""
        self.service: Any = None
        """The limiter service's actor handle."""
        self.dispatcher: Dispatcher | None = None
        """The latest job's dispatcher: its ``live`` workers, ``deaths`` and ``final_stats``."""
        self._connected = False

    async def __aenter__(self) -> Self:
        self._connected = await connect(self.address, **self.ray_options)
        try:
            ray = import_ray()
            if not self.workers:
                resources = await anyio.to_thread.run_sync(ray.cluster_resources)
                self.workers = max(1, int(resources.get("CPU", 1) // max(self.worker_cpus, 1e-9)))
            name = self.limiter_name or f"genevolve-limits-{uuid.uuid4().hex[:8]}"
            self.service = await anyio.to_thread.run_sync(
                functools.partial(limiter_actor, name, detached=self.limiter_name is not None)
            )
        except BaseException:
            await self._leave()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._leave()

    async def _leave(self) -> None:
        with anyio.CancelScope(shield=True):
            if self.service is not None and self.limiter_name is None:
                import_ray().kill(self.service)
            self.service = None
            if self._connected:
                self._connected = False
                await disconnect()

    @asynccontextmanager
    async def job(self, build: Callable[[Runtime], RolloutStage]) -> AsyncIterator[Dispatcher]:
        """Workers built by ``build`` for the block's duration, fed by one dispatcher."""
        if self.service is None:
            raise ConfigurationError("use the Cluster inside 'async with'")
        spec = WorkerSpec(
            build=build,
            limits=self.limits,
            workers=self.workers,
            env=forwarded_env(),
            service=self.service,
            record_grants=self.record_grants,
        )
        dispatcher = Dispatcher(
            spec,
            workers=self.workers,
            per_worker=math.ceil(self.parallel / self.workers),
            batch=self.batch,
            max_restarts=self.max_restarts,
            actor_options={"num_cpus": self.worker_cpus},
        )
        async with anyio.create_task_group() as tg:
            self.dispatcher = dispatcher
            await tg.start(dispatcher.serve)
            try:
                yield dispatcher
            finally:
                tg.cancel_scope.cancel()

    async def map(
        self,
        rows: Iterable[Mapping[str, Any] | str],
        config: AgentConfig,
        *,
        tools: Sequence[Tool] | None = None,
        timeout: float | None = None,
        samples_per_prompt: int = 1,
    ) -> AsyncIterator[dict[str, Any]]:
        """Roll out every row on the workers; yield each record as it finishes.

        Rows are dicts as in a JSONL input (``id``, ``prompt`` or
        ``question``, extra fields) or plain requests. Bad rows are skipped and
        kept in :attr:`bad_rows`. No checkpoint is written (see :meth:`run_batch`).
        To stop before the end, close the iterator in the task that reads it
        (``async with contextlib.aclosing(cluster.map(...)) as records:``): it
        holds the job's workers and task group until closed.

        Raises:
            BatchAborted: A failure every rollout would share (a refused key),
                or every worker died.
        """
        local = RolloutStage(
            GenEvolveAgent(config, tools=tools),
            timeout=timeout,
            samples_per_prompt=samples_per_prompt,
        )
        build = functools.partial(rollout_stage_on, config, tools, timeout, samples_per_prompt)
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](self.parallel)
        failed: list[BaseException] = []
        async with self.job(build) as dispatcher, anyio.create_task_group() as tg:
            tg.start_soon(self._feed_map, dispatcher, local, list(rows), send, failed)
            async with receive:
                async for record in receive:
                    yield record
        if failed:
            raise failed[0]

    async def _feed_map(
        self,
        dispatcher: Dispatcher,
        local: RolloutStage,
        rows: list[Mapping[str, Any] | str],
        send: MemoryObjectSendStream[dict[str, Any]],
        failed: list[BaseException],
    ) -> None:
        room = anyio.Semaphore(self.parallel + self.workers * self.batch)

        async def one(row: InputRow) -> None:
            try:
                try:
                    outcome = await dispatcher.submit(row)
                except Exception as exc:
                    if is_fatal(exc):
                        failed.append(exc)
                        tg.cancel_scope.cancel()
                        return
                    outcome = local.failure(row, classify_exception(exc))
                await send.send(outcome.record)
            finally:
                room.release()

        with send:
            async with anyio.create_task_group() as tg:
                for entry in check_rows(rows):
                    if isinstance(entry, BadRow):
                        self.bad_rows.append(entry)
                        logger.warning("skipping %s", entry)
                        continue
                    for item in local.expand(entry):
                        await room.acquire()
                        tg.start_soon(one, item)

    async def run_batch(
        self,
        source: InputSource,
        out_dir: str | os.PathLike[str],
        config: AgentConfig,
        *,
        tools: Sequence[Tool] | None = None,
        timeout: float | None = None,
        samples_per_prompt: int = 1,
        after: Sequence[Stage] = (),
        options: BatchOptions | None = None,
    ) -> BatchReport:
        """:func:`~genevolve_async.pipeline.run_batch` with the rollouts on the workers.

        Args:
            source: The input rows.
            out_dir: The output folder (checkpoints and results, written here only).
            config: The agent's configuration.
            tools: The agent's tools (default: the config's).
            timeout: Seconds per rollout.
            samples_per_prompt: K rollouts per row.
            after: Stages chained after the rollouts, run in this process
                (a renderer and judge, as ``pipeline`` does).
            options: Resume, retry and display settings.
        """
        local = RolloutStage(
            GenEvolveAgent(config, tools=tools),
            timeout=timeout,
            samples_per_prompt=samples_per_prompt,
        )
        build = functools.partial(rollout_stage_on, config, tools, timeout, samples_per_prompt)
        return await self.run_stages(source, Path(out_dir), local, build, after, options)

    async def run_stages(
        self,
        source: InputSource,
        out_dir: Path,
        local: RolloutStage,
        build: Callable[[Runtime], RolloutStage],
        after: Sequence[Stage] = (),
        options: BatchOptions | None = None,
    ) -> BatchReport:
        """The batch runner over ``local``'s rollouts done by workers made with ``build``."""
        async with self.job(build) as dispatcher:
            stage = ClusterRolloutStage(local, dispatcher)
            return await run_batch(source, out_dir, [stage, *after], options=options)

    async def limiter_stats(self) -> dict[str, dict[str, Any]]:
        """The limiter service's grants and leases per provider."""
        stats: dict[str, dict[str, Any]] = await self.service.stats.remote()
        return stats
