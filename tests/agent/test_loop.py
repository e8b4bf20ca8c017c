from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from genevolve_async import GenEvolveAgent, Runtime, ToolCallFinished, ToolCallStarted
from genevolve_async.sim import SimImageHost, SimPolicy
from genevolve_async.tools import ToolContext
from tests._support import SimImageTool


@pytest.mark.parametrize("mode", ["text", "native"])
async def test_four_round_rollout_answers_with_resolved_program(make_agent: Any, mode: str) -> None:
    agent: GenEvolveAgent = make_agent(tool_mode=mode)
    result = await agent.arun("A stone lighthouse on a cliff")
    assert result.termination == "answer" and result.error is None
    assert result.rounds == 4
    assert result.tool_calls == {"search": 1, "image_search": 1, "query_knowledge": 1}
    assert [r.img_id for r in result.reference_images] == ["IMG_001", "IMG_002"]
    for ref in result.reference_images:
        assert await anyio.Path(ref["local_path"]).is_file()
        assert ref.url.endswith(".png") and ref.title
    assert "the first reference image" in result.gen_prompt
    roles = [m["role"] for m in result.messages]
    assert roles[:2] == ["system", "user"]
    if mode == "native":
        assert roles.count("tool") == 3
        assistants = [m for m in result.messages if m["role"] == "assistant"]
        assert all("tool_calls" in m for m in assistants[:3])
    else:
        assert all(m["content"].startswith("<tool_response>\n") for m in result.messages[3:-1:2])
    assert len(result.usage.rounds) == 4 and result.usage.total_tokens > 0
    assert result.timings.total >= result.timings.model > 0
    record = json.loads(json.dumps(result.to_dict()))
    assert record["termination"] == "answer"
    assert record["reference_images"][0]["img_id"] == "IMG_001"


class ConcurrencyProbe:
    """A tool that records how many of its calls run at once."""

    name = "probe"
    description = "test tool"
    parameters: dict[str, Any] = {"type": "object"}  # noqa: RUF012

    def __init__(self, delay: float = 0.05) -> None:
        self.active = 0
        self.peak = 0
        self.delay = delay

    async def __call__(self, arguments: dict[str, Any], context: ToolContext) -> str:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await anyio.sleep(self.delay)
        finally:
            self.active -= 1
        if arguments.get("query", "").endswith(".1"):
            raise RuntimeError("probe failure for the second call")
        return f"probe ok {arguments.get('query')}"


async def test_k_tool_calls_of_a_turn_run_concurrently_and_answer_in_call_order(
    sim_policy: tuple[SimPolicy, str], runtime: Runtime
) -> None:
    policy, url = sim_policy
    policy.script.tools = ("probe",)
    probe = ConcurrencyProbe()
    agent = GenEvolveAgent(runtime=runtime, base_url=url, tools=[probe])
    events: list[Any] = []
    agent._hooks = (events.append,)
    result = await agent.arun("probe request [sim:parallel=5] [sim:rounds=2]")
    assert result.termination == "answer"
    assert probe.peak == 5
    observation = result.messages[3]["content"]
    blocks = observation.split("</tool_response>")[:-1]
    assert len(blocks) == 5
    assert "probe ok probe request reference 1.0" in blocks[0]
    assert "Error: probe failed" in blocks[1]  # the failure is an observation; siblings finish
    assert "probe ok probe request reference 1.4" in blocks[4]
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [e.index for e in started] == [0, 1, 2, 3, 4]
    assert sorted(e.index for e in finished) == [0, 1, 2, 3, 4]
    assert [e.ok for e in sorted(finished, key=lambda e: e.index)] == [
        True,
        False,
        True,
        True,
        True,
    ]


async def test_max_tool_concurrency_bounds_a_turn_without_dropping(
    sim_policy: tuple[SimPolicy, str], runtime: Runtime
) -> None:
    policy, url = sim_policy
    policy.script.tools = ("probe",)
    probe = ConcurrencyProbe(delay=0.02)
    agent = GenEvolveAgent(runtime=runtime, base_url=url, tools=[probe], max_tool_concurrency=2)
    result = await agent.arun("bounded [sim:parallel=6] [sim:rounds=2]")
    assert probe.peak == 2
    assert result.tool_calls == {"probe": 6}
    assert result.messages[3]["content"].count("<tool_response>") == 6


async def test_img_ids_do_not_depend_on_download_order(
    sim_policy: tuple[SimPolicy, str], image_host: tuple[SimImageHost, str], image_dir: Path
) -> None:
    policy, url = sim_policy
    policy.script.tools = ("image_search",)
    seen: set[tuple[str, ...]] = set()
    async with Runtime() as runtime:
        agent = GenEvolveAgent(
            runtime=runtime, base_url=url, tools=[SimImageTool(image_host[1], image_dir)]
        )
        for _ in range(20):
            result = await agent.arun("shuffled downloads [sim:parallel=3] [sim:rounds=2]")
            assert result.termination == "answer"
            observations = result.messages[3]["content"]
            seen.add((observations, *(r.img_id for r in result.reference_images)))
    assert len(seen) == 1
    (observation, *_ids) = next(iter(seen))
    ids = [line.split(":")[0] for line in observation.splitlines() if line.startswith("IMG_")]
    assert ids == [f"IMG_{i:03d}" for i in range(1, 16)]
    # Call order, then result order: the first call's five images come first.
    first_call = observation.split("</tool_response>")[0]
    assert "IMG_005" in first_call and "IMG_006" not in first_call
    assert image_host[0].stats.route("GET /img/{name}").peak_in_flight >= 10


async def test_never_answering_ends_max_rounds_after_final_step(make_agent: Any) -> None:
    result = await make_agent(max_rounds=5).arun("keep going [sim:never-answer]")
    assert result.termination == "max_rounds_reached"
    assert result.rounds == 5
    assert result.error is not None and result.error.kind == "no_answer"
    assert "FINAL STEP" in result.messages[-2]["content"]
    assert sum("FINAL STEP" in str(m["content"]) for m in result.messages[1:]) == 1
    assert result.gen_prompt == "" and result.reference_images == []


async def test_malformed_reply_gets_the_format_observation(make_agent: Any) -> None:
    result = await make_agent().arun("a kite [sim:malformed-once]")
    assert result.termination == "answer"
    reply = result.messages[3]["content"]
    assert reply.startswith("<tool_response>\nError: the tool call could not be used")
    always = await make_agent(max_rounds=3).arun("a kite [sim:malformed]")
    assert always.termination == "max_rounds_reached"
    no_calls = await make_agent(max_rounds=2).arun("garbage [sim:truncate-once] [sim:never-answer]")
    assert "RESPONSE TOO LONG" in no_calls.messages[3]["content"]


async def test_unknown_tool_and_budget_are_observations(make_agent: Any) -> None:
    result = await make_agent().arun("unknown [sim:unknown-tool-once]")
    assert "there is no tool named 'paint_picture'" in result.messages[3]["content"]
    assert result.termination == "answer"
    budget = await make_agent(max_tool_calls=2).arun("budget [sim:parallel=2]")
    assert budget.tool_calls == {"search": 2}
    assert budget.messages[5]["content"].count("tool-call budget is used up") == 2


async def test_unregistered_answer_ids_are_dropped(make_agent: Any) -> None:
    result = await make_agent().arun("ids [sim:answer=IMG_099,IMG_002]")
    assert [r.img_id for r in result.reference_images] == ["IMG_002"]


async def test_prompt_checks(make_agent: Any) -> None:
    empty = await make_agent().arun("   ")
    assert (
        empty.termination == "error"
        and empty.error is not None
        and empty.error.kind == "invalid_request"
    )
    huge = await make_agent().arun("word " * 10_000)
    assert huge.error is not None and "prompt budget" in huge.error.message
    assert huge.rounds == 0


async def test_response_budget_caps_rounds(make_agent: Any) -> None:
    result = await make_agent(max_response_tokens=4100, max_tokens_per_round=4096).arun(
        "tight [sim:never-answer]"
    )
    # The first round leaves less than a full round of budget: the second is final.
    assert result.rounds == 2 and result.termination == "max_rounds_reached"


def test_a_reply_is_bounded_by_its_real_size_not_its_token_count() -> None:
    from genevolve_async.agent._loop import _MAX_CHARS_PER_TOKEN, _bounded
    from genevolve_async.policy import ChatReply
    from genevolve_async.policy._reply import TokenUsage

    # 5 MB claimed to be one token: charged by size and cut to what max_tokens holds.
    huge = ChatReply(content="x" * 5_000_000, usage=TokenUsage(completion_tokens=1))
    reply, used = _bounded(huge, 4096)
    assert len(reply.content or "") == 4096 * _MAX_CHARS_PER_TOKEN
    assert reply.finish_reason == "length" and used == 4096
    small = ChatReply(content="hello", usage=TokenUsage(completion_tokens=3))
    assert _bounded(small, 4096) == (small, 3)
