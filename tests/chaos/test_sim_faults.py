"""The faults the chaos suite needs from the simulated services, each on its own.

Connection resets mid-response, slow bodies trickled past the client's timeout, a
policy replica that dies (dropping what it had under way) and comes back,
canned replies and canned Serper answers, Qwen 429s: each checked over real
loopback sockets, with the real clients where the point is how they classify
the fault.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest

from genevolve_async import RetryPolicy, Runtime, ServiceUnavailableError
from genevolve_async.judge import JudgeClient
from genevolve_async.policy import PolicyClient
from genevolve_async.sim import (
    Faults,
    JudgeFaults,
    Latency,
    QwenFaults,
    SimImageHost,
    SimJudge,
    SimPolicy,
    SimQwenService,
    SimSerper,
    SimServer,
    make_png,
)

MESSAGES = [{"role": "user", "content": "a red fox in the snow"}]


async def _no_sleep(_: float) -> None:
    await anyio.lowlevel.checkpoint()


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition on a server's counters (they offer no event to wait on)."""
    with anyio.fail_after(timeout):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_reset_drops_the_connection_after_part_of_the_body(
    http: aiohttp.ClientSession,
) -> None:
    policy = SimPolicy(faults=Faults(rate_reset=1.0))
    async with SimServer(policy.app) as server:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.post(
                server.url + "/v1/chat/completions", json={"messages": MESSAGES}
            ) as resp:
                assert resp.status == 200  # headers came, then the connection went
                await resp.read()
    assert policy.stats.faults["reset"] == 1


async def test_the_policy_client_classifies_resets_and_slow_answers_as_transient() -> None:
    retry = RetryPolicy(attempts=2, sleep=_no_sleep)
    for faults, words in (
        (Faults(rate_reset=1.0), "closed the connection before the answer was complete"),
        (Faults(rate_slow=1.0, slow_seconds=5.0), "timed out"),
    ):
        policy = SimPolicy(faults=faults)
        async with SimServer(policy.app) as server, Runtime(retry=retry) as runtime:
            client = PolicyClient(
                runtime, base_urls=server.url + "/v1", model="GenEvolve", request_timeout=0.2
            )
            with pytest.raises(ServiceUnavailableError, match=words):
                await client.complete(MESSAGES)
        assert runtime.stats.retries["policy"] == 1  # transient: tried again


async def test_a_slow_answer_ends_soon_after_the_client_leaves(
    http: aiohttp.ClientSession,
) -> None:
    policy = SimPolicy(faults=Faults(rate_slow=1.0, slow_seconds=30.0))
    async with SimServer(policy.app) as server:
        with pytest.raises(TimeoutError):
            async with http.post(
                server.url + "/v1/chat/completions",
                json={"messages": MESSAGES},
                timeout=aiohttp.ClientTimeout(total=0.1),
            ) as resp:
                await resp.read()
        # The handler polls its connection: it returns long before the 30 s.
        await _until(lambda: not policy.stats.route("POST /v1/chat/completions").in_flight)
    assert policy.stats.faults["slow"] == 1


async def test_a_killed_replica_drops_requests_under_way_and_later_ones(
    http: aiohttp.ClientSession,
) -> None:
    policy = SimPolicy(latency=Latency(mean=5.0))
    async with SimServer(policy.app) as server:
        url = server.url + "/v1/chat/completions"
        errors: list[BaseException] = []

        async def call() -> None:
            try:
                async with http.post(url, json={"messages": MESSAGES}) as resp:
                    await resp.read()
            except aiohttp.ClientError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(call)
            await _until(lambda: policy.stats.route("POST /v1/chat/completions").in_flight == 3)
            assert policy.kill() == 3
        assert len(errors) == 3 and all(
            isinstance(e, aiohttp.ServerDisconnectedError) for e in errors
        )
        with pytest.raises(aiohttp.ClientError):  # dead: nothing comes back, not even a status
            async with http.get(server.url + "/v1/models") as resp:
                await resp.read()
        policy.revive()
        policy.latency = Latency()
        async with http.post(url, json={"messages": MESSAGES}) as resp:
            assert resp.status == 200
    # aiohttp may try an idempotent GET once more on a fresh connection: 4 or 5 drops.
    assert policy.kills >= 4 and policy.stats.faults["killed"] == policy.kills


async def test_canned_replies_replace_the_first_round_only(http: aiohttp.ClientSession) -> None:
    policy = SimPolicy(canned_replies={"bad": "<tool_call>{not json</tool_call>"})
    prompt = "[sim:canned=bad] a fox"
    async with SimServer(policy.app) as server:
        url = server.url + "/v1/chat/completions"
        first = [{"role": "user", "content": prompt}]
        async with http.post(url, json={"messages": first}) as resp:
            reply = (await resp.json())["choices"][0]["message"]["content"]
        assert reply == "<tool_call>{not json</tool_call>"
        second = [*first, {"role": "assistant", "content": reply}, {"role": "user", "content": "x"}]
        async with http.post(url, json={"messages": second}) as resp:
            reply = (await resp.json())["choices"][0]["message"]["content"]
        assert "<tool_call>" in reply and "not json" not in reply  # the script again


async def test_serper_overrides_answer_marked_queries_as_given(
    http: aiohttp.ClientSession,
) -> None:
    body: dict[str, Any] = {"organic": [{"title": 7, "link": None}], "images": "nope"}
    serper = SimSerper(overrides={"zz-broken": body})
    async with SimServer(serper.app) as server:
        async with http.post(server.url + "/search", json={"q": "a zz-broken query"}) as resp:
            assert await resp.json() == body
        async with http.post(server.url + "/search", json={"q": "a normal query"}) as resp:
            assert isinstance((await resp.json())["organic"][0]["title"], str)
    assert serper.stats.faults["override"] == 1


async def test_image_host_resets_and_counts_named_faults(http: aiohttp.ClientSession) -> None:
    host = SimImageHost(faults=Faults(rate_reset=1.0))
    async with SimServer(host.app) as server:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.get(server.url + "/img/a.png") as resp:
                await resp.read()
        host.faults = Faults()
        async with http.get(server.url + "/img/f-corrupt-b.png") as resp:
            await resp.read()
    assert host.stats.faults == {"reset": 1, "corrupt": 1}


async def test_qwen_answers_429_with_retry_after_and_resets(http: aiohttp.ClientSession) -> None:
    ref = "data:image/png;base64," + base64.b64encode(make_png((1, 2, 3))).decode()
    payload = {"image_urls": [ref], "prompt": "p", "width": 32, "height": 32}
    qwen = SimQwenService(faults=QwenFaults(rate_429=1.0), retry_after=0.5)
    async with SimServer(qwen.app) as server:
        async with http.post(server.url + "/generate", json=payload) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "0.5"
        qwen.faults = QwenFaults(rate_reset=1.0)
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.post(server.url + "/generate", json=payload) as resp:
                await resp.read()
    assert qwen.stats.faults == {"429": 1, "reset": 1}


async def test_judge_resets_and_slow_answers_are_served_and_counted(
    http: aiohttp.ClientSession,
) -> None:
    judge = SimJudge(faults=JudgeFaults(rate_reset=1.0))
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "rubric"},
            {"role": "user", "content": [{"type": "text", "text": "Sample id: 1"}]},
        ],
    }
    async with SimServer(judge.app) as server:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.post(server.url + "/v1/chat/completions", json=body) as resp:
                await resp.read()
        judge.faults = JudgeFaults(rate_slow=1.0, slow_seconds=0.05)
        async with http.post(server.url + "/v1/chat/completions", json=body) as resp:
            assert resp.status == 200  # late, but whole
    assert judge.faults_served == {"reset": 1, "slow": 1}


async def test_a_trickled_body_cannot_outlast_the_per_call_timeout(tmp_path: Path) -> None:
    """The SDK routes' own timeouts bound each read, not the call: a body arriving a
    few bytes at a time used to hold the judge (and the policy's openai route) for as
    long as it trickled. A hang detector with wide margins on both sides: the three
    calls need 3 x 0.3 s; one that outlasts its timeout takes the whole 60 s trickle."""
    image = tmp_path / "a.png"
    image.write_bytes(make_png((10, 20, 30)))
    judge = SimJudge(faults=JudgeFaults(rate_slow=1.0, slow_seconds=60.0))
    policy = SimPolicy(faults=Faults(rate_slow=1.0, slow_seconds=60.0))
    retry = RetryPolicy(attempts=1)
    async with SimServer(judge.app) as js, SimServer(policy.app) as ps, Runtime(retry=retry) as rt:
        client = JudgeClient(rt, base_url=js.url + "/v1", api_key="k", max_tries=1, timeout=0.3)
        with anyio.fail_after(20):  # a third of one trickle, 20x what the calls need
            with pytest.raises(ServiceUnavailableError, match="timed out"):
                await client.judge("1", "a fox", image, image)
            for route in ("lean", "openai"):
                sdk = PolicyClient(
                    rt, base_urls=ps.url + "/v1", model="m", request_timeout=0.3, route=route
                )
                with pytest.raises(ServiceUnavailableError, match="timed out"):
                    await sdk.complete(MESSAGES)
    assert judge.faults_served == {"slow": 1} and policy.stats.faults["slow"] == 2


def test_zero_rates_draw_nothing() -> None:
    import random

    rng, control = random.Random(3), random.Random(3)
    assert Faults().draw_transport(rng) is None
    assert rng.random() == control.random()  # the sequence of older configurations holds
