from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import anyio
import pytest

from genevolve_async import GenEvolveAgent, RetryPolicy, Runtime
from genevolve_async.policy import PolicyAffinity, PolicyClient
from genevolve_async.sim import Latency, PolicyScript, SimPolicy, SimServer
from genevolve_async.tools import QueryKnowledge

KNOWLEDGE_ONLY = PolicyScript(rounds=3, tools=("query_knowledge",))


@pytest.fixture
async def replicas() -> AsyncIterator[list[tuple[SimPolicy, str]]]:
    async with AsyncExitStack() as stack:
        out = []
        for i in range(2):
            policy = SimPolicy(
                script=KNOWLEDGE_ONLY, latency=Latency(mean=0.01, spread=0.5), seed=i
            )
            server = await stack.enter_async_context(SimServer(policy.app))
            out.append((policy, server.url + "/v1"))
        yield out


def _fast_retry() -> RetryPolicy:
    return RetryPolicy(initial=0.01, jitter=0.0, max_delay=0.05)


async def test_two_replicas_share_rollouts_and_each_rollout_sticks(
    replicas: list[tuple[SimPolicy, str]],
) -> None:
    async with Runtime() as runtime:
        agent = GenEvolveAgent(
            runtime=runtime, base_url=[u for _, u in replicas], tools=[QueryKnowledge()]
        )
        results = []

        async def one(i: int) -> None:
            results.append(await agent.arun(f"request number {i}"))

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(one, i)
    assert all(r.termination == "answer" and r.rounds == 3 for r in results)
    a, b = (set(p.prompts) for p, _ in replicas)
    assert not a & b, "a rollout moved between healthy replicas"
    assert len(a) + len(b) == 200
    assert abs(len(a) - len(b)) <= 20, (len(a), len(b))
    for policy, _ in replicas:
        assert all(count == 3 for count in policy.prompts.values())


async def test_failing_replica_is_quarantined_and_rollouts_finish_elsewhere(
    replicas: list[tuple[SimPolicy, str]],
) -> None:
    (good, good_url), (bad, bad_url) = replicas
    bad.latency = Latency(mean=0.05)
    async with Runtime(retry=_fast_retry()) as runtime:
        agent = GenEvolveAgent(
            runtime=runtime, base_url=[good_url, bad_url], tools=[QueryKnowledge()]
        )
        results = []

        async def one(i: int) -> None:
            results.append(await agent.arun(f"quarantine case {i}"))

        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(one, i)
            with anyio.fail_after(10):  # until some rollouts are bound to the bad replica
                while not bad.prompts:  # noqa: ASYNC110 - the sim exposes a count, no event
                    await anyio.sleep(0.005)
            bad.down = True
        pool = agent._policy(runtime).pool
    assert [r.termination for r in results] == ["answer"] * 40
    bad_endpoint = next(e for e in pool.endpoints if e.url == bad_url)
    assert bad_endpoint.stats.quarantines >= 1
    assert bad_endpoint.quarantined_until is not None
    moved = [p for p in bad.prompts if p in good.prompts]
    assert moved, "no rollout moved from the failing replica"
    assert runtime.stats.retries["policy"] >= 1


async def test_429_retry_after_is_honoured() -> None:
    policy = SimPolicy(record_times=True)
    async with SimServer(policy.app) as server, Runtime(retry=RetryPolicy(initial=5.0)) as runtime:
        policy.fail_next(1, 429, retry_after=0.3)
        client = PolicyClient(runtime, base_urls=server.url + "/v1", model="GenEvolve")
        reply = await client.complete(
            [{"role": "user", "content": "hi"}], affinity=PolicyAffinity()
        )
    assert reply.content
    first, second = policy.stats.request_times
    assert second - first >= 0.29  # the Retry-After delay, not the 5 s formula
    assert second - first < 4.0
    assert runtime.stats.rate_limited["policy"] == 1
    assert runtime.stats.retries["policy"] == 1


async def test_auth_failure_is_not_retried_and_hides_the_key() -> None:
    policy = SimPolicy()
    async with SimServer(policy.app) as server:
        policy.fail_next(5, 401)
        agent = GenEvolveAgent(
            base_url=server.url + "/v1", api_key="sk-very-secret-123", tools=[QueryKnowledge()]
        )
        result = await agent.arun("a cat")
    assert result.termination == "error"
    assert result.error is not None and result.error.kind == "authentication"
    assert "sk-very-secret" not in str(result.to_dict())
    assert "sk-very-secret" not in repr(agent)
    assert policy.stats.requests == 1


async def test_server_errors_are_retried(sim_policy: tuple[SimPolicy, str]) -> None:
    policy, url = sim_policy
    policy.fail_next(2, 500)
    async with Runtime(retry=_fast_retry()) as runtime:
        result = await GenEvolveAgent(runtime=runtime, base_url=url, tools=[QueryKnowledge()]).arun(
            "x [sim:rounds=1]"
        )
    assert result.termination == "answer"
    assert runtime.stats.retries["policy"] == 2


async def test_openai_sdk_route(sim_policy: tuple[SimPolicy, str]) -> None:
    _, url = sim_policy
    async with Runtime() as runtime:
        agent = GenEvolveAgent(
            runtime=runtime, base_url=url, policy_route="openai", tools=[QueryKnowledge()]
        )
        result = await agent.arun("a harbour at dusk [sim:rounds=2]")
    assert result.termination == "answer" and result.rounds == 2
    assert result.usage.completion_tokens > 0


async def test_openai_sdk_route_maps_errors(sim_policy: tuple[SimPolicy, str]) -> None:
    policy, url = sim_policy
    policy.fail_next(1, 429, retry_after=0.05)
    policy.fail_next(1, 403)
    async with Runtime(retry=_fast_retry()) as runtime:
        client = PolicyClient(
            runtime, base_urls=url, model="GenEvolve", route="openai", api_key="sk-x"
        )
        with pytest.raises(Exception) as info:
            await client.complete([{"role": "user", "content": "hi"}])
    assert type(info.value).__name__ == "AuthenticationError"
    assert runtime.stats.rate_limited["policy"] == 1
