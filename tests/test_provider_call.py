"""The provider-call recipe: what every attempt sees, and how outcomes are handled."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from genevolve_async import (
    BadResponseError,
    ProviderLimits,
    RateLimitedError,
    RetryPolicy,
    Runtime,
    ServiceUnavailableError,
)
from genevolve_async._provider_call import Attempt, Provider, RetryElsewhere, call_provider

KEY = "sk-recipe-key-0123456789"


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    retry = RetryPolicy(attempts=4, initial=0, jitter=0, sleep=_no_sleep)
    async with Runtime(retry=retry, limits={"p": ProviderLimits(max_in_flight=2)}) as rt:
        yield rt


async def test_each_attempt_sees_its_number_endpoint_and_wait(runtime: Runtime) -> None:
    pool = runtime.endpoint_pool("p", ["http://a", "http://b"])
    seen: list[tuple[int, str, float]] = []

    async def send(attempt: Attempt) -> str:
        assert attempt.endpoint is not None
        seen.append((attempt.number, attempt.endpoint.url, attempt.limiter_wait))
        if attempt.number == 1:
            raise ServiceUnavailableError("down", service="p")
        return attempt.endpoint.url

    url = await call_provider(runtime, Provider(name="p"), send, pool=pool)
    assert [n for n, _, _ in seen] == [1, 2]
    assert seen[0][1] != seen[1][1] == url  # the retry went to the other endpoint
    assert all(wait >= 0 for _, _, wait in seen)
    assert runtime.stats.retries["p"] == 1
    assert pool.endpoints[0].stats.failures + pool.endpoints[1].stats.failures == 1


async def test_busy_and_retry_elsewhere_move_on_without_a_quarantine_step(
    runtime: Runtime,
) -> None:
    pool = runtime.endpoint_pool("p", ["http://a", "http://b"])
    errors = [RateLimitedError("429", service="p", retry_after=60), RetryElsewhere("no")]

    async def send(attempt: Attempt) -> int:
        if errors:
            raise errors.pop(0)
        return attempt.number

    assert await call_provider(runtime, Provider(name="p"), send, pool=pool) == 3
    assert all(e.stats.failures == 0 for e in pool.endpoints)


async def test_secrets_are_scrubbed_and_failures_counted(runtime: Runtime) -> None:
    async def send(attempt: Attempt) -> None:
        raise BadResponseError(f"server says {KEY} is bad", service="p")

    with pytest.raises(BadResponseError) as info:
        await call_provider(runtime, Provider(name="p", secrets=(KEY,)), send)
    assert KEY not in str(info.value)
    assert runtime.stats.failures["p"] == 1 and runtime.stats.retries["p"] == 0
    assert runtime.limiter("p").in_flight == 0


async def test_a_request_that_may_have_run_is_not_repeated(runtime: Runtime) -> None:
    calls = 0

    async def send(attempt: Attempt) -> None:
        nonlocal calls
        calls += 1
        raise ServiceUnavailableError("dropped after sending", service="p", retryable=False)

    with pytest.raises(ServiceUnavailableError):
        await call_provider(runtime, Provider(name="p"), send)
    assert calls == 1
