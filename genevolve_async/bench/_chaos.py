"""The chaos run: the whole pipeline against faulty simulated services, audited.

:func:`run_chaos` starts the simulated services in this process with every
fault switched on together (429 with ``Retry-After``, 500, connection
resets, slow bodies past the per-call timeout, corrupt or non-image
downloads, Qwen ``success: false``, and a policy replica that dies mid-run
and comes back), runs a batch through the pipeline's runner (rollout,
render, judge) at a fixed number in flight, then audits what is left:

- every input id ends exactly once, with its output or a classified error;
- no limiter's rate is exceeded in any one-second window, retries included;
- no task, connection, file descriptor or temp file outlives the run;
- no API key appears in any output file or log line;
- the event loop's worst stall, measured throughout.

``tests/chaos`` runs it scaled down; ``python -m genevolve_async.bench
--chaos`` runs the full size (2,000 rollouts at 500 in flight).
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from .._endpoints import Endpoint, Probe
from .._limits import ProviderLimits
from .._retry import RetryPolicy
from .._runtime import Runtime, RuntimeConfig
from ..agent import GenEvolveAgent
from ..judge import JudgeClient
from ..renderers import QwenServiceRenderer
from ..tools import (
    ImageCache,
    ImageCacheSettings,
    ImageSearch,
    QueryKnowledge,
    SerperBackend,
    WebSearch,
)
from ._chaos_audit import (
    Census,
    ChaosReport,
    OutputAudit,
    audit_outputs,
    check_limiter,
    find_secrets,
    find_temp_files,
)
from ._chaos_config import ChaosConfig
from ._chaos_sims import ChaosKeys, ChaosSims, start_chaos_sims, write_chaos_input
from ._drive import LoopLagProbe

if TYPE_CHECKING:
    from ..pipeline import Stage

__all__ = ["ChaosConfig", "ChaosReport", "run_chaos"]

_ROUNDS = 4  # the simulated policy's script: search, image_search, query_knowledge, answer


class _LogWatch(logging.Handler):
    """Keeps WARNING+ lines (scanned for keys) and ERROR+ lines of our code and the loop."""

    _WATCHED = ("genevolve_async", "asyncio")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        except Exception:  # a broken record must not break the run it watches
            text = f"{record.name}: <unformattable record>"
        self.lines.append(text)
        if record.levelno >= logging.ERROR and record.name.startswith(self._WATCHED):
            self.errors.append(text[:500])


@contextmanager
def _watching_logs() -> Iterator[_LogWatch]:
    watch = _LogWatch()
    root = logging.getLogger()
    root.addHandler(watch)
    try:
        yield watch
    finally:
        root.removeHandler(watch)


async def run_chaos(config: ChaosConfig | None = None) -> ChaosReport:
    """Run the pipeline against faulty simulated services and audit what it leaves.

    Runs on the caller's event loop (the simulated services share it).

    Args:
        config: The run's size and fault mix (default: the full-size run).

    Returns:
        The figures; ``report.problems()`` lists every invariant that broke.
    """
    cfg = config or ChaosConfig()
    keys = ChaosKeys.make()
    before = Census.take()
    started = time.monotonic()
    tmp = None
    if cfg.work_dir is None:
        tmp = await anyio.to_thread.run_sync(partial(tempfile.mkdtemp, prefix="genevolve-chaos-"))
    root = cfg.work_dir if cfg.work_dir is not None else Path(str(tmp))
    try:
        with _watching_logs() as logs:
            data, ids = await anyio.to_thread.run_sync(
                write_chaos_input, root / "data", cfg.rollouts
            )
            report = ChaosReport(
                rollouts=cfg.rollouts,
                in_flight=cfg.in_flight,
                outputs=OutputAudit(attempted=cfg.rollouts),
                fault_mix=cfg.fault_mix(),
            )
            probe = LoopLagProbe()
            async with anyio.create_task_group() as tg:
                tg.start_soon(probe.run)
                async with start_chaos_sims(cfg, keys) as sims:
                    await _run_pipeline(cfg, sims, keys, data, root, report)
                    report.faults = sims.faults()
                tg.cancel_scope.cancel()
            report.loop_lag_max_s = probe.worst
            report.loop_cpu_max_s = probe.worst_cpu
            report.duration_s = time.monotonic() - started
            # Everything is closed now: the process must hold what it held before.
            after = await Census.settle(before)
            report.leaked_tasks = max(0, after.tasks - before.tasks)
            report.leaked_fds = max(0, after.fds - before.fds)
            report.leaked_sockets = max(0, after.sockets - before.sockets)
            report.leaked_fd_names = after.new_fds(before)
            await anyio.to_thread.run_sync(_audit_files, report, root, ids, keys, logs)
    finally:
        if tmp is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(partial(shutil.rmtree, tmp, ignore_errors=True))
    return report


def _audit_files(
    report: ChaosReport, root: Path, ids: list[str], keys: ChaosKeys, logs: _LogWatch
) -> None:
    """The output folder's audit, temp files and key leaks (blocking)."""
    out, cache = root / "out", root / "cache"
    report.outputs = audit_outputs(out, ids)
    report.temp_files = [str(p) for p in find_temp_files(out, cache)]
    report.secret_leaks = find_secrets(keys.all(), [out, cache], [*logs.lines, report.table()])
    report.error_logs = list(logs.errors)


async def _run_pipeline(
    cfg: ChaosConfig,
    sims: ChaosSims,
    keys: ChaosKeys,
    data: Path,
    root: Path,
    report: ChaosReport,
) -> None:
    """The batch, rollout through judge, with the replica killer alongside."""
    # Imported here: the pipeline imports the bench's arithmetic when it loads.
    from ..pipeline import BatchOptions, InputSource, run_batch

    limits = {
        "policy": ProviderLimits(rate=cfg.policy_rate),
        "serper": ProviderLimits(rate=cfg.serper_rate, max_in_flight=cfg.serper_in_flight),
        ImageCache.provider: ProviderLimits(rate=cfg.image_rate),
        "qwen_service": ProviderLimits(rate=cfg.render_rate),
    }
    retry = RetryPolicy(
        attempts=6, initial=0.1, max_delay=2.0, jitter=0.1, rng=random.Random(cfg.seed)
    )
    config = RuntimeConfig(limits=limits, retry=retry, record_grants=True)
    async with Runtime(config) as runtime:
        # A short quarantine, so the replica that comes back serves again within the run.
        runtime.endpoint_pool(
            "policy", sims.policy_urls, cooldown=cfg.cooldown, probe=_policy_probe(runtime)
        )
        settings = ImageCacheSettings(
            folder=root / "cache", allow_private=True, timeout=cfg.call_timeout
        )
        stages, renderer, _judge = _stages(cfg, sims, keys, runtime, settings, root / "out")
        async with renderer, anyio.create_task_group() as tg:
            tg.start_soon(_kill_replica, cfg, sims, report)
            options = BatchOptions(quiet=True)
            await run_batch(InputSource(path=data), root / "out", stages, options=options)
            tg.cancel_scope.cancel()
        # Before the runtime closes: what the batch left checked out, and what it did.
        report.connections_in_use = _connections_in_use(runtime)
        # One registry: the judge's limiter is among them.
        report.limiters = [check_limiter(lim) for lim in runtime.limiters.values()]
        report.retries = dict(sorted(runtime.stats.retries.items()))
        image_cache = await ImageCache.for_runtime(runtime, settings)
        report.image_drops = dict(sorted(image_cache.stats.dropped.items()))
        victim = sims.policies[0]
        report.replica["served_after_revival"] = victim.stats.requests - report.replica.pop(
            "requests_at_revival", victim.stats.requests
        )


def _stages(
    cfg: ChaosConfig,
    sims: ChaosSims,
    keys: ChaosKeys,
    runtime: Runtime,
    settings: ImageCacheSettings,
    out: Path,
) -> tuple[list[Stage], QwenServiceRenderer, JudgeClient]:
    """Rollout, render and judge stages on the simulated services, every timeout short."""
    from ..pipeline import JudgeStage, RenderStage, RolloutStage

    backend = SerperBackend(base_url=sims.serper_url, api_key=keys.serper, timeout=cfg.call_timeout)
    agent = GenEvolveAgent(
        runtime=runtime,
        base_url=sims.policy_urls,
        api_key=keys.policy,
        request_timeout=cfg.call_timeout,
        tools=[WebSearch(backend), ImageSearch(backend, cache=settings), QueryKnowledge()],
    )
    renderer = QwenServiceRenderer(
        sims.qwen_url,
        runtime=runtime,
        timeout=cfg.call_timeout,
        cooldown=cfg.cooldown,
        long_side=128,  # small images: the figures are about the runtime, not PNG codecs
    )
    judge = JudgeClient(
        runtime,
        base_url=sims.judge_url,
        api_key=keys.judge,
        rpm=cfg.judge_rate * 60,
        max_in_flight=cfg.judge_parallel,
        timeout=cfg.call_timeout,
        max_tries=8,
    )
    stages: list[Stage] = [
        RolloutStage(agent, parallel=cfg.in_flight, timeout=cfg.rollout_timeout),
        RenderStage(renderer, out_dir=out, parallel=cfg.render_parallel),
        JudgeStage(judge, image_root=out, parallel=cfg.judge_parallel),
    ]
    return stages, renderer, judge


async def _kill_replica(cfg: ChaosConfig, sims: ChaosSims, report: ChaosReport) -> None:
    """Kill the first replica once a share of the policy calls was made; revive it later."""
    victim = sims.policies[0]
    target = int(cfg.kill_after * cfg.rollouts * _ROUNDS)
    # Polled: the sims keep counters, not events, and a kill 20 ms late changes nothing.
    while True:
        if sum(p.stats.requests for p in sims.policies) >= target:
            break
        await anyio.sleep(0.02)
    report.replica["dropped_in_flight"] = victim.kill()
    await anyio.sleep(cfg.down_seconds)
    victim.revive()
    report.replica["dropped_while_dead"] = victim.kills - report.replica["dropped_in_flight"]
    report.replica["down_s"] = cfg.down_seconds
    report.replica["requests_at_revival"] = victim.stats.requests


def _policy_probe(runtime: Runtime) -> Probe:
    """``GET /models`` on the replica: is it back?"""

    async def probe(endpoint: Endpoint) -> bool:
        try:
            async with runtime.http.get(endpoint.url + "/models") as resp:
                await resp.read()
                return resp.status < 500
        except Exception:  # any failure means: not back yet
            return False

    return probe


def _connections_in_use(runtime: Runtime) -> int:
    """Connections of the runtime's pool still checked out (0 once every request ended)."""
    connector = runtime.http.connector
    # aiohttp keeps no public count of checked-out connections.
    acquired = getattr(connector, "_acquired", ())
    return len(acquired)
