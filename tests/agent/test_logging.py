from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from genevolve_async import GenEvolveAgent, Runtime
from genevolve_async.bench import LoopLagProbe
from genevolve_async.sim import SimPolicy
from genevolve_async.tools import QueryKnowledge


async def test_log_records_carry_the_rollout_id_and_no_key(
    sim_policy: tuple[SimPolicy, str], runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    policy, url = sim_policy
    policy.fail_next(1, 403)
    agent = GenEvolveAgent(
        runtime=runtime, base_url=url, api_key="sk-log-secret", tools=[QueryKnowledge()]
    )
    with caplog.at_level(logging.DEBUG, logger="genevolve_async"):
        result = await agent.arun("logged", rollout_id="rid-42")
    records = [r for r in caplog.records if r.name.startswith("genevolve_async.agent")]
    assert records, "the failed rollout logs a warning"
    assert all(getattr(r, "rollout_id", None) == "rid-42" for r in records)
    assert all("rid-42" in r.getMessage() for r in records)
    assert "sk-log-secret" not in caplog.text
    assert result.error is not None and result.error.kind == "authentication"


async def test_many_rollouts_do_not_stall_the_loop(make_agent: Any) -> None:
    agent: GenEvolveAgent = make_agent()
    probe = LoopLagProbe(interval=0.005)
    results = []

    async def one(i: int) -> None:
        results.append(await agent.arun(f"stall check {i}"))

    async with anyio.create_task_group() as outer:
        outer.start_soon(probe.run)
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(one, i)
        outer.cancel_scope.cancel()
    assert [r.termination for r in results] == ["answer"] * 100
    # A blocking call (a sync file read, a PIL decode) is CPU the loop's thread
    # spends between wake-ups, however busy the machine is. 100 rollouts started
    # at once legitimately share one loop pass (0.18-0.25 s of CPU on an idle
    # 2-core VM, 0.50 s once beside the bench), so the bound is ten times the
    # idle figure: a hang detector, as the quadratic parsers this catches took
    # seconds to minutes.
    assert probe.worst_cpu < 2.5, f"the loop's thread ran {probe.worst_cpu:.3f}s without a break"
    assert probe.worst < 5.0, f"event loop stalled for {probe.worst:.3f}s"  # a hang detector
