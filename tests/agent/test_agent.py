from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from genevolve_async import (
    AgentConfig,
    Answered,
    ConfigurationError,
    Finished,
    GenEvolveAgent,
    ModelReplied,
    RoundStarted,
    Runtime,
    ToolCallFinished,
    ToolCallStarted,
)
from genevolve_async.sim import Latency, SimPolicy, SimServer
from genevolve_async.tools import QueryKnowledge


def _acquired_connections(runtime: Runtime) -> int:
    # aiohttp has no public counter of checked-out connections.
    connector = runtime.http.connector
    assert connector is not None
    return len(connector._acquired)  # type: ignore[attr-defined]


def _other_tasks() -> set[asyncio.Task[Any]]:
    """Live tasks on our side: the in-process sim server's own handlers are left out."""
    current = asyncio.current_task()
    return {
        t
        for t in asyncio.all_tasks()
        if t is not current
        and not t.done()
        and not t.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
    }


async def test_stream_yields_events_in_order(make_agent: Any) -> None:
    agent: GenEvolveAgent = make_agent()
    kinds: list[str] = []
    async with agent.stream("a red bicycle [sim:rounds=3]") as events:
        async for event in events:
            kinds.append(event.kind)
            last = event
    assert isinstance(last, Finished) and last.result.termination == "answer"
    assert kinds == [
        "round_started", "model_replied", "tool_call_started", "tool_call_finished",
        "round_started", "model_replied", "tool_call_started", "tool_call_finished",
        "round_started", "model_replied", "answered", "finished",
    ]  # fmt: skip


async def test_leaving_stream_early_cancels_the_rollout(runtime: Runtime) -> None:
    policy = SimPolicy(latency=Latency(mean=0.05))
    async with SimServer(policy.app) as server:
        agent = GenEvolveAgent(
            runtime=runtime, base_url=server.url + "/v1", tools=[QueryKnowledge()]
        )
        before = _other_tasks()
        async with agent.stream("walk away [sim:rounds=8]") as events:
            async for event in events:
                if isinstance(event, ModelReplied) and event.round == 2:
                    break
        assert _other_tasks() <= before
        # No task of the rollout is left to send another round; a request written
        # just before the cancel may still land, so give it time (ten 0.05 s rounds).
        await anyio.sleep(0.5)
        requests = policy.stats.requests
        await anyio.sleep(0.3)
        assert policy.stats.requests == requests <= 3  # no further rounds for it
        assert _acquired_connections(runtime) == 0


async def test_cancellation_leaves_no_task_or_connection(runtime: Runtime) -> None:
    policy = SimPolicy(latency=Latency(mean=5.0))
    seen: list[Any] = []
    async with SimServer(policy.app) as server:
        agent = GenEvolveAgent(
            runtime=runtime,
            base_url=server.url + "/v1",
            tools=[QueryKnowledge()],
            hooks=[seen.append],
        )
        before = _other_tasks()
        with anyio.move_on_after(0.2):
            await agent.arun("slow model")
        await anyio.sleep(0.05)
        assert _other_tasks() <= before
        assert _acquired_connections(runtime) == 0
    final = seen[-1]
    assert isinstance(final, Finished) and final.result.termination == "cancelled"


async def test_timeout_ends_as_timeout(runtime: Runtime) -> None:
    policy = SimPolicy(latency=Latency(mean=5.0))
    async with SimServer(policy.app) as server:
        agent = GenEvolveAgent(
            runtime=runtime, base_url=server.url + "/v1", tools=[QueryKnowledge()]
        )
        before = _other_tasks()
        result = await agent.arun("slow model", timeout=0.2)
        assert result.termination == "timeout"
        assert result.error is not None and result.error.kind == "timeout"
        assert _other_tasks() <= before
        assert _acquired_connections(runtime) == 0


async def test_async_with_agent_owns_one_runtime(sim_policy: tuple[SimPolicy, str]) -> None:
    _, url = sim_policy
    async with GenEvolveAgent(base_url=url, tools=[QueryKnowledge()]) as agent:
        runtime = agent._entered
        assert runtime is not None
        for _ in range(2):
            assert (await agent.arun("twice [sim:rounds=1]")).termination == "answer"
        assert agent._entered is runtime
    assert runtime is not None and not runtime.is_open


async def test_hooks_see_every_event_and_errors_in_hooks_are_contained(make_agent: Any) -> None:
    seen: list[str] = []

    async def async_hook(event: Any) -> None:
        seen.append(event.kind)

    def broken_hook(event: Any) -> None:
        raise ValueError("hook bug")

    agent: GenEvolveAgent = make_agent(hooks=[async_hook, broken_hook])
    result = await agent.arun("hooked [sim:rounds=2]")
    assert result.termination == "answer"
    assert seen[0] == "round_started" and seen[-1] == "finished"
    assert {RoundStarted, ModelReplied, ToolCallStarted, ToolCallFinished, Answered, Finished}


async def test_run_refuses_inside_a_running_loop() -> None:
    agent = GenEvolveAgent(base_url="http://127.0.0.1:9/v1", tools=[QueryKnowledge()])
    with pytest.raises(RuntimeError, match="arun"):
        agent.run("x")


def test_run_works_twice_from_sync_code() -> None:
    policy = SimPolicy()
    # The simulated policy runs on its own loop thread; the agent on another.
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(SimServer(policy.app)) as server,
        GenEvolveAgent(base_url=server.url + "/v1", tools=[QueryKnowledge()]) as agent,
    ):
        first = agent.run("sync one [sim:rounds=2]")
        second = agent.run("sync two [sim:rounds=2]")
        portal_thread = agent._portal.thread if agent._portal else None
        runtime = agent._portal_runtime
    assert first.termination == second.termination == "answer"
    assert portal_thread is not None and not portal_thread.is_alive()
    assert runtime is not None and not runtime.is_open


def test_run_refuses_a_runtime_from_another_loop() -> None:
    agent = GenEvolveAgent(
        runtime=Runtime(), base_url="http://127.0.0.1:9/v1", tools=[QueryKnowledge()]
    )
    with pytest.raises(ConfigurationError, match="arun"):
        agent.run("x")


def test_original_keywords_and_config() -> None:
    agent = GenEvolveAgent(
        model="GenEvolve",
        base_url="http://localhost:8000/v1",
        api_key="EMPTY",
        max_rounds=7,
        max_tokens_per_round=1024,
        temperature=0.3,
        top_p=0.8,
        n_max_reference_images=1,
        system_prompt="You are a test. Tools:\n$tools",
        request_timeout=30,
        tools=[QueryKnowledge()],
    )
    assert agent.config.max_rounds == 7 and agent.config.n_max_reference_images == 1
    assert agent.prompts.system.startswith("You are a test. Tools:\n{")
    assert '"query_knowledge"' in agent.prompts.system
    with pytest.raises(TypeError, match="max_roundz"):
        GenEvolveAgent(max_roundz=3)
    with pytest.raises(ConfigurationError, match="temperature"):
        AgentConfig(temperature=-1)
    with pytest.raises(ConfigurationError, match="system_prompt_file"):
        AgentConfig(system_prompt_file="/nonexistent/prompt.txt")
    defaults = AgentConfig()
    assert (
        defaults.max_rounds,
        defaults.max_tokens_per_round,
        defaults.temperature,
        defaults.top_p,
    ) == (11, 4096, 0.6, 0.9)
    assert (defaults.n_max_reference_images, defaults.max_tool_calls) == (2, 10)
    assert (defaults.max_prompt_tokens, defaults.max_response_tokens) == (6144, 30000)
    assert "api_key" not in repr(defaults)


def test_default_system_prompt_lists_tools() -> None:
    agent = GenEvolveAgent(tools=[QueryKnowledge()])
    assert "query_knowledge" in agent.prompts.system
    assert "$tools" not in agent.prompts.system


def test_the_originals_constructor_keywords() -> None:
    knowledge = QueryKnowledge()
    agent = GenEvolveAgent(
        "GenEvolve-8B",
        base_url="http://localhost:8000/v1",
        api_key="EMPTY",
        max_prompt_length=5000,
        max_response_length=20000,
        knowledge_tool=knowledge,
        text_search_tool=None,
    )
    assert agent.config.model == "GenEvolve-8B"
    assert (agent.config.max_prompt_tokens, agent.config.max_response_tokens) == (5000, 20000)
    assert agent.tools["query_knowledge"] is knowledge
    with pytest.raises(ConfigurationError, match="not both"):
        GenEvolveAgent(tools=[knowledge], knowledge_tool=knowledge)
