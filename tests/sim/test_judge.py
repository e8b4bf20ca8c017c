"""The simulated judge: deterministic verdicts, faults, validation and arrival times."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from genevolve_async.judge import DEFAULT_RUBRIC, build_judge_messages, parse_judge_reply
from genevolve_async.sim import JudgeFaults, SimJudge, SimServer

JPEG = "data:image/jpeg;base64,AAAA"


@pytest.fixture
async def judge() -> AsyncIterator[tuple[SimJudge, str]]:
    sim = SimJudge(api_key="k", faults=JudgeFaults(retry_after=0.25))
    async with SimServer(sim.app) as server:
        yield sim, server.url


def _body(sample_id: str = "42", *, images: tuple[str, str] = (JPEG, JPEG + "B")) -> dict[str, Any]:
    messages = build_judge_messages(
        rubric=DEFAULT_RUBRIC,
        sample_id=sample_id,
        request="a red fox",
        generated_uri=images[0],
        ground_truth_uri=images[1],
    )
    return {"model": "judge-x", "messages": messages, "temperature": 0, "max_tokens": 8192}


async def _post(
    url: str, body: Any, key: str = "k", path: str = "/v1/chat/completions"
) -> tuple[int, Any, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + path, json=body, headers={"Authorization": f"Bearer {key}"}) as resp,
    ):
        return resp.status, await resp.json(), resp.headers


def test_verdicts_are_deterministic_and_on_the_rubric_scale() -> None:
    seen_na = set()
    for i in range(200):
        verdict = SimJudge.verdict(str(i))
        assert verdict == SimJudge.verdict(str(i))
        for key in ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics"):
            assert verdict[key] in (0.0, 0.5, 1.0)
        if verdict["text_accuracy_na"]:
            assert verdict["text_accuracy"] == 0.5
        seen_na.add(verdict["text_accuracy_na"])
    assert seen_na == {True, False}


async def test_a_request_gets_the_sample_verdict_and_is_recorded(
    judge: tuple[SimJudge, str],
) -> None:
    sim, url = judge
    status, data, _ = await _post(url, _body("case 7"))
    assert status == 200
    reply = parse_judge_reply(data["choices"][0]["message"]["content"])
    expected = SimJudge.verdict("case 7")
    assert reply.faithfulness == expected["faithfulness"]
    assert reply.text_accuracy_na == expected["text_accuracy_na"]
    request = sim.requests[-1]
    assert (request.sample_id, request.model, request.temperature, request.max_tokens) == (
        "case 7",
        "judge-x",
        0,
        8192,
    )
    assert request.image_count == 2 and request.jpeg_images
    assert len(set(request.image_digests)) == 2 and len(sim.arrivals) == 1
    status, _, _ = await _post(url, _body(), path="/chat/completions")
    assert status == 200


async def test_queued_faults(judge: tuple[SimJudge, str]) -> None:
    sim, url = judge
    sim.fail_next(1, "fenced")
    sim.fail_next(1, "no_json")
    sim.fail_next(1, 429)
    sim.fail_next(1, 500)
    _, fenced, _ = await _post(url, _body("9"))
    content = fenced["choices"][0]["message"]["content"]
    assert "```json" in content and ",\n}" in content
    assert parse_judge_reply(content).aesthetics == SimJudge.verdict("9")["aesthetics"]
    _, plain, _ = await _post(url, _body("9"))
    with pytest.raises(ValueError):
        parse_judge_reply(plain["choices"][0]["message"]["content"])
    status, _, headers = await _post(url, _body())
    assert status == 429 and headers["Retry-After"] == "0.25"
    status, _, _ = await _post(url, _body())
    assert status == 500
    assert sim.faults_served == {"fenced": 1, "no_json": 1, "429": 1, "500": 1}


async def test_bad_keys_and_bad_requests_are_refused(judge: tuple[SimJudge, str]) -> None:
    sim, url = judge
    status, data, _ = await _post(url, _body(), key="wrong")
    assert status == 401 and data["error"]["code"] == "invalid_api_key"
    status, _, _ = await _post(url, {"messages": [{"role": "user", "content": "hi"}]})
    assert status == 400
    body = _body()
    body["messages"][1]["content"] = "no parts"
    status, _, _ = await _post(url, body)
    assert status == 400
    assert not sim.requests and len(sim.arrivals) == 3


async def test_random_faults_follow_the_rates() -> None:
    sim = SimJudge(faults=JudgeFaults(rate_500=1.0))
    async with SimServer(sim.app) as server:
        status, _, _ = await _post(server.url, _body())
    assert status == 500
