"""The bare reference runner sends the policy what our agent sends.

Its CPU figure is the floor ours is measured against, so it must move the
same bytes: the same system prompt, the same tool observations (skill texts,
image titles and pages included), round after round.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from benchmarks import bare_runner
from genevolve_async import GenEvolveAgent, Runtime
from genevolve_async.bench._run import bench_tools
from genevolve_async.sim import SimConfig, SimPolicy, SimStack

_FAST = SimConfig(model_latency=0.0, search_latency=0.0, download_latency=0.0, spread=0.0)
_LOCAL_PATH = re.compile(r"local_path: \S+")
_PORT = re.compile(r"127\.0\.0\.1:\d+")


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every chat request body the simulated policy receives, in order."""
    bodies: list[dict[str, Any]] = []
    real = SimPolicy._chat

    async def chat(self: SimPolicy, request: web.Request) -> web.StreamResponse:
        bodies.append(await request.json())  # aiohttp keeps the body for the handler
        return await real(self, request)

    monkeypatch.setattr(SimPolicy, "_chat", chat)
    return bodies


def _comparable(bodies: list[dict[str, Any]]) -> list[list[tuple[str, str]]]:
    # The files live in different folders under different names, and each run
    # has its own image host port; the rest must match.
    def text(content: str | None) -> str:
        return _PORT.sub("127.0.0.1:-", _LOCAL_PATH.sub("local_path: -", content or ""))

    return [[(m["role"], text(m["content"])) for m in b["messages"]] for b in bodies]


async def test_bare_sends_the_same_messages_as_our_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = _capture(monkeypatch)
    prompt_index = 3
    async with SimStack(_FAST) as stack, Runtime() as runtime:
        agent = GenEvolveAgent(
            runtime=runtime,
            base_url=stack.urls["policy"],
            tools=bench_tools(stack.urls["serper"], tmp_path / "ours"),
        )
        result = await agent.arun(f"bench request {prompt_index}: a coastal town at dusk")
    assert result.termination == "answer", result.error
    ours, bodies[:] = list(bodies), []

    (tmp_path / "bare").mkdir()
    async with SimStack(_FAST) as stack, aiohttp.ClientSession() as session:
        rollout = bare_runner.make_rollout(
            session,
            policy_url=stack.urls["policy"][0],
            serper_url=stack.urls["serper"],
            folder=tmp_path / "bare",
        )
        assert await rollout(prompt_index) == "answer"
    theirs = list(bodies)

    assert len(ours) == len(theirs) == _FAST.rounds
    assert _comparable(theirs) == _comparable(ours)
    # Not vacuous: the last round carries a skill text and an image block.
    last = " ".join(content for _, content in _comparable(ours)[-1])
    assert "=== Skill: " in last and "page_url: " in last and "IMG_005" in last
