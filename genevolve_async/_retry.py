"""The retry policy shared by every client: bounded, jittered, Retry-After aware.

Built on tenacity. Only transient failures are retried: 429s, 5xx answers,
timeouts and connection errors. Callers wrap *one attempt* (which passes the
provider's limiter itself), so every retry goes through the limiter again.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ._errors import RateLimitedError, ServiceUnavailableError

__all__ = ["RetryCallback", "RetryPolicy"]

T = TypeVar("T")

RetryCallback = Callable[[int, BaseException, float], None]
"""Called before each retry sleep with (attempt number that failed, error, delay)."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ServiceUnavailableError):
        return exc.retryable
    return isinstance(exc, RateLimitedError | TimeoutError)


@dataclass(kw_only=True, slots=True, frozen=True)
class RetryPolicy:
    """How often and how patiently a failed call is tried again.

    The delay before retry ``n`` (1-based count of failures so far) is
    ``min(max_delay, initial * exp_base ** (n - 1))`` plus a uniform jitter in
    ``[0, jitter]``; a ``Retry-After`` the service sent replaces it (capped at
    ``max_retry_after``), because the service knows better than our formula.
    """

    attempts: int = 6
    """Total tries, the first included. 1 disables retries."""
    initial: float = 0.5
    """Delay before the first retry, in seconds."""
    max_delay: float = 10.0
    """Upper bound of the exponential delay (jitter excluded)."""
    exp_base: float = 2.0
    """Growth factor of the delay."""
    jitter: float = 0.5
    """Largest random extra delay, in seconds (spreads synchronized retries)."""
    honour_retry_after: bool = True
    """Use the delay a 429/503 carries instead of the formula."""
    max_retry_after: float = 120.0
    """Cap on a service-requested delay."""
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, compare=False)
    """Injected sleep (tests replace it to skip real waiting)."""
    rng: random.Random = field(default_factory=random.Random, compare=False)
    """Injected randomness for the jitter."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a transient failure worth another try."""
        return _is_transient(exc)

    def delay(self, failures: int, exc: BaseException | None) -> float:
        """Seconds to wait after the ``failures``-th failed attempt."""
        retry_after = getattr(exc, "retry_after", None)
        if self.honour_retry_after and retry_after is not None and retry_after >= 0:
            return float(min(retry_after, self.max_retry_after))
        base = min(self.max_delay, self.initial * self.exp_base ** max(0, failures - 1))
        return base + (self.rng.uniform(0.0, self.jitter) if self.jitter > 0 else 0.0)

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        on_retry: RetryCallback | None = None,
    ) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or tries run out.

        The first try runs outside tenacity: the common case (success) costs
        one await and nothing more.
        """
        try:
            return await attempt()
        except Exception as exc:
            if self.attempts <= 1 or not self.is_retryable(exc):
                raise
            first = exc
        wait = self.delay(1, first)
        if on_retry is not None:
            on_retry(1, first, wait)
        await self.sleep(wait)

        def _wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.delay(state.attempt_number + 1, exc)

        def _before_sleep(state: RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None:
                exc = state.outcome.exception()
                if exc is not None:
                    on_retry(state.attempt_number + 1, exc, state.upcoming_sleep)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts - 1),
            wait=_wait,
            retry=retry_if_exception(self.is_retryable),
            sleep=self.sleep,
            before_sleep=_before_sleep,
            reraise=True,
        )

        async def again() -> T:
            # tenacity calls a plain callable without awaiting its result;
            # wrap so lambdas returning coroutines work too.
            return await attempt()

        return await retrying(again)
