"""The judge client against the simulated judge: request shape, retries, limits."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from genevolve_async import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    RetryPolicy,
    Runtime,
    RuntimeConfig,
    ServiceUnavailableError,
)
from genevolve_async._limits import max_in_window
from genevolve_async.judge import (
    IMAGE_ORDER_NOTE,
    JudgeClient,
    JudgeImageError,
    JudgeScores,
    encode_judge_image,
    normalize_scores,
)
from genevolve_async.sim import JudgeFault, JudgeFaults, SimJudge, SimServer, make_png
from genevolve_async.sim._judge import image_digest

KEY = "judge-secret-key"


async def _no_sleep(_: float) -> None:
    await anyio.lowlevel.checkpoint()


def _expected(sample_id: str) -> dict[str, object]:
    verdict = SimJudge.verdict(sample_id)
    return dict(normalize_scores(JudgeScores(**{k: v for k, v in verdict.items()})))


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    generated, truth = tmp_path / "gen.png", tmp_path / "gt.png"
    generated.write_bytes(make_png((200, 30, 30)))
    truth.write_bytes(make_png((30, 200, 30)))
    return generated, truth


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimJudge, str]]:
    judge = SimJudge(api_key=KEY)
    async with SimServer(judge.app) as server:
        yield judge, server.url + "/v1"


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    config = RuntimeConfig(retry=RetryPolicy(sleep=_no_sleep), record_grants=True)
    async with Runtime(config) as rt:
        yield rt


async def test_one_sample_is_scored_with_spec_request(
    sim: tuple[SimJudge, str], runtime: Runtime, images: tuple[Path, Path]
) -> None:
    judge, url = sim
    client = JudgeClient(runtime, base_url=url, api_key=KEY, model="judge-m")
    verdict = await client.judge_sample("case 3", "a red barn", *images)
    assert dict(verdict.scores) == _expected("case 3")
    assert verdict.rationale == "Simulated verdict for sample case 3." and verdict.attempts == 1
    assert await client.judge("case 3", "a red barn", *images) == verdict.scores
    request = judge.requests[0]
    assert (request.model, request.temperature, request.max_tokens) == ("judge-m", 0, 8192)
    assert "a red barn" in request.text and IMAGE_ORDER_NOTE in request.text
    # Image 1 is the generated image, Image 2 the ground truth.
    assert request.image_digests == tuple(image_digest(encode_judge_image(p)) for p in images)
    assert request.jpeg_images


async def test_fences_garbage_429_and_500_are_retried(
    sim: tuple[SimJudge, str], runtime: Runtime, images: tuple[Path, Path]
) -> None:
    judge, url = sim
    faults: list[JudgeFault] = ["no_json", 429, 500, "no_json", "fenced"]
    for fault in faults:
        judge.fail_next(1, fault)
    client = JudgeClient(runtime, base_url=url, api_key=KEY)
    verdict = await client.judge_sample("7", "a fox", *images)
    assert dict(verdict.scores) == _expected("7") and verdict.attempts == 5
    assert runtime.stats.retries["judge"] == 4


async def test_giving_up_after_max_tries(
    sim: tuple[SimJudge, str], runtime: Runtime, images: tuple[Path, Path]
) -> None:
    judge, url = sim
    client = JudgeClient(runtime, base_url=url, api_key=KEY, max_tries=3)
    judge.fail_next(3, "no_json")
    with pytest.raises(BadResponseError, match="no usable scores after 3 tries"):
        await client.judge("1", "x", *images)
    judge.fail_next(3, 500)
    with pytest.raises(ServiceUnavailableError):
        await client.judge("1", "x", *images)
    assert len(judge.arrivals) == 6


async def test_a_refused_key_is_not_retried_and_never_shown(
    sim: tuple[SimJudge, str], runtime: Runtime, images: tuple[Path, Path]
) -> None:
    judge, url = sim
    client = JudgeClient(runtime, base_url=url, api_key="wrong-secret")
    with pytest.raises(AuthenticationError) as info:
        await client.judge("1", "x", *images)
    assert "wrong-secret" not in str(info.value) and "wrong-secret" not in repr(client)
    assert len(judge.arrivals) == 1


async def test_unreadable_images_fail_before_any_request(
    sim: tuple[SimJudge, str], runtime: Runtime, images: tuple[Path, Path], tmp_path: Path
) -> None:
    judge, url = sim
    client = JudgeClient(runtime, base_url=url, api_key=KEY)
    with pytest.raises(JudgeImageError):
        await client.judge("1", "x", images[0], tmp_path / "missing.png")
    assert not judge.arrivals


async def test_clients_of_one_runtime_share_one_limiter(runtime: Runtime) -> None:
    a = JudgeClient(runtime, base_url="http://127.0.0.1:9/v1", api_key=KEY, rpm=60)
    b = JudgeClient(runtime, base_url="http://127.0.0.1:9/v1", api_key=KEY, rpm=60)
    assert await a.limiter() is await b.limiter()
    other = JudgeClient(runtime, base_url="http://127.0.0.1:9/v1", api_key=KEY, rpm=30)
    with pytest.raises(ConfigurationError, match="share one budget"):
        await other.limiter()
    with pytest.raises(ConfigurationError):
        JudgeClient(runtime, base_url="ftp://x", api_key=KEY)


async def test_grants_never_exceed_the_rpm_budget_in_any_window(
    runtime: Runtime, images: tuple[Path, Path]
) -> None:
    rpm = 3000.0  # 50 per second: a short run stands for a minute at a real rate
    judge = SimJudge(api_key=KEY, faults=JudgeFaults(rate_429=0.2, rate_500=0.1), seed=3)
    async with SimServer(judge.app) as server:
        client = JudgeClient(
            runtime, base_url=server.url + "/v1", api_key=KEY, rpm=rpm, max_in_flight=8
        )
        limiter = await client.limiter()

        async def one(i: int) -> None:
            assert dict(await client.judge(str(i), "x", *images)) == _expected(str(i))

        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(one, i)
    grants = list(limiter.grant_times or [])
    # Every request the server saw, retries too, went through a grant. (Its arrival
    # times add loopback jitter that grows with the machine's load, so the windows
    # are checked on the limiter's own clock, where load cannot bunch grants.)
    assert len(grants) == len(judge.arrivals) > 40
    spacing = 60.0 / rpm
    for k in (1, 2, 3, 5, 10, 25):
        # The budget scaled to the window: at most k grants in any [t, t + k * 60/rpm).
        assert max_in_window(grants, k * spacing) <= k
    assert max_in_window(grants, 60.0) <= rpm
    assert limiter.stats.peak_in_flight <= 8
    assert math.isclose(limiter.limits.rate or 0, rpm / 60)
