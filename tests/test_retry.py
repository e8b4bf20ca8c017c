from __future__ import annotations

import random

import pytest

from genevolve_async import (
    AuthenticationError,
    RateLimitedError,
    RetryPolicy,
    ServiceUnavailableError,
)


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def _policy(recorder: Recorder, **kw: object) -> RetryPolicy:
    return RetryPolicy(sleep=recorder, rng=random.Random(1), **kw)  # type: ignore[arg-type]


async def test_success_needs_no_sleep() -> None:
    rec = Recorder()

    async def ok() -> int:
        return 7

    assert await _policy(rec).call(ok) == 7
    assert rec.sleeps == []


async def test_transient_errors_retried_with_exponential_jittered_backoff() -> None:
    rec = Recorder()
    calls = 0
    seen: list[tuple[int, float]] = []

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise ServiceUnavailableError("boom")
        return "done"

    policy = _policy(rec, initial=1.0, exp_base=2.0, jitter=0.5, max_delay=3.0)
    assert await policy.call(flaky, on_retry=lambda n, e, d: seen.append((n, d))) == "done"
    assert calls == 4
    assert [n for n, _ in seen] == [1, 2, 3]
    assert [d for _, d in seen] == rec.sleeps
    for base, slept in zip([1.0, 2.0, 3.0], rec.sleeps, strict=True):
        assert base <= slept <= base + 0.5


async def test_retry_after_replaces_the_formula() -> None:
    rec = Recorder()
    calls = 0

    async def limited() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RateLimitedError("429", retry_after=7.5)
        return "ok"

    assert await _policy(rec, initial=0.1).call(limited) == "ok"
    assert rec.sleeps == [7.5]


async def test_attempts_are_bounded_and_last_error_raised() -> None:
    rec = Recorder()
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ServiceUnavailableError(f"attempt {calls}")

    with pytest.raises(ServiceUnavailableError, match="attempt 3"):
        await _policy(rec, attempts=3).call(down)
    assert calls == 3 and len(rec.sleeps) == 2


async def test_permanent_errors_are_not_retried() -> None:
    rec = Recorder()
    calls = 0

    async def denied() -> None:
        nonlocal calls
        calls += 1
        raise AuthenticationError("no")

    with pytest.raises(AuthenticationError):
        await _policy(rec).call(denied)
    assert calls == 1 and rec.sleeps == []


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


async def test_a_lambda_returning_a_coroutine_is_awaited_on_retries() -> None:
    rec = Recorder()
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ServiceUnavailableError("boom")
        return "done"

    assert await _policy(rec).call(lambda: flaky()) == "done"
