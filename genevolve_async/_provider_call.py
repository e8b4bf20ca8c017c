"""The provider-call recipe: lease, limit, send, classify, report, retry, scrub, count.

Every provider client (the policy, Serper, the Qwen services, the judge,
Nano Banana Pro) builds its payload, hands :func:`call_provider` a ``send``
coroutine for one attempt, and parses what comes back. Everything between
is here, once:

1. **lease** an endpoint from the pool (sticky, least-loaded, avoiding the
   endpoint that just failed), when the provider has several;
2. **limit**: take a slot of the runtime's limiter for the provider (every
   retry queues again);
3. **send** the attempt (``Attempt.post_json`` on the runtime's session, or
   the client's SDK call);
4. **classify** the answer by the one status table (:mod:`._status`);
5. **report** the outcome to the endpoint pool: busy (429, and whatever the
   provider says means busy) moves on without a step toward quarantine, a
   failure counts toward it, our own request's fault does not;
6. **retry** by the runtime's policy; a request that may have reached the
   service is sent again only if the provider is safe to repeat;
7. **scrub** the provider's secrets out of the error before anybody logs it;
8. **count** retries, 429s and final failures in ``runtime.stats``.

This is the one choke point of every provider call: the provider's name,
the endpoint, the attempt number, the limiter wait and the outcome are all
at hand in :func:`call_provider` (where tracing spans belong).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import aiohttp

from . import _json
from ._endpoints import Endpoint, EndpointPool
from ._errors import (
    BadResponseError,
    ConfigurationError,
    RateLimitedError,
    ServiceError,
    ServiceUnavailableError,
)
from ._limits import ProviderLimiter
from ._retry import RetryPolicy
from ._secrets import scrub_error
from ._session import BodyTooLargeError, read_body
from ._status import redact_url, snippet, status_error
from .telemetry import note_replica, provider_call

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = [
    "DEFAULT_MAX_ANSWER",
    "Attempt",
    "Outcome",
    "Provider",
    "RetryElsewhere",
    "Sticky",
    "call_provider",
    "post_json",
]

T = TypeVar("T")

DEFAULT_MAX_ANSWER = 256 * 2**20
"""Largest JSON answer read (a Qwen answer carries a base64 image; nothing needs more)."""

Outcome = Literal["ok", "busy", "down", "alive"]
"""What an attempt says about its endpoint: served; busy (try elsewhere, no
quarantine step); down (a step toward quarantine); alive (a failure of our
request, not of the endpoint)."""

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
# Failures before a byte of the request left: always safe to send again.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_TIMEOUTS: dict[float | None, aiohttp.ClientTimeout] = {}


@dataclass(kw_only=True, slots=True, frozen=True)
class Provider:
    """What the recipe needs to know about one provider."""

    name: str
    """Limiter, pool and statistics name (``policy``, ``serper``, ...)."""
    secrets: tuple[str, ...] = ()
    """Keys scrubbed out of every error (a server may echo them)."""
    safe_to_repeat: bool = False
    """Whether a request that may have reached the service, with no answer
    back (a dropped connection, a timeout), can be sent again: read-only
    searches, stateless completions. Otherwise such a failure is final and
    no POST runs twice. Failures before sending (connect errors) and answers
    that say the work was not done (429, 5xx) are retried either way."""
    busy_statuses: frozenset[int] = frozenset({429})
    """Statuses that mean busy, not broken (Qwen's 503: every GPU taken)."""
    retry: RetryPolicy | None = None
    """The retry policy; ``None``: the runtime's."""


class Sticky(Protocol):
    """A caller's binding to one endpoint across calls (a rollout's replica)."""

    endpoint: Endpoint | None
    moves: int


class RetryElsewhere(ServiceUnavailableError):
    """An answer the endpoint may get right next time (an unusable reply, a
    ``success: false``): retried, on another endpoint where there is one,
    without a step toward quarantine."""


@dataclass(kw_only=True, slots=True)
class Attempt:
    """One try of a provider call, as ``send`` sees it."""

    runtime: Runtime
    provider: Provider
    number: int
    """1 for the first try."""
    endpoint: Endpoint | None
    """The leased endpoint (``None`` for a provider without a pool)."""
    limiter_wait: float
    """Seconds this try waited for its limiter slot."""

    async def post_json(
        self,
        url: str,
        body: bytes,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_MAX_ANSWER,
    ) -> Any:
        """POST ``body`` on the runtime's session; the decoded answer, or the classified error."""
        provider = self.provider
        return await post_json(
            self.runtime.http,
            url,
            body,
            service=provider.name,
            headers=headers,
            timeout=timeout,
            max_bytes=max_bytes,
            secrets=provider.secrets,
            repeatable=provider.safe_to_repeat,
        )


def _timeout(seconds: float | None) -> aiohttp.ClientTimeout:
    timeout = _TIMEOUTS.get(seconds)
    if timeout is None:
        timeout = _TIMEOUTS[seconds] = aiohttp.ClientTimeout(total=seconds)
    return timeout


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    service: str,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
    max_bytes: int = DEFAULT_MAX_ANSWER,
    secrets: Iterable[str] = (),
    repeatable: bool = False,
) -> Any:
    """POST a JSON body and decode the JSON answer; raise classified errors.

    ``timeout`` bounds the whole exchange, connecting included. A failure
    after the request may have left is retryable only if ``repeatable``.
    """
    hdrs = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
    try:
        async with session.post(url, data=body, headers=hdrs, timeout=_timeout(timeout)) as resp:
            raw = await read_body(resp, max_bytes)
            status = resp.status
            if status >= 400:
                raise status_error(
                    status,
                    resp.headers,
                    service=service,
                    where=f"{service} {redact_url(url)}",
                    body=raw,
                    secrets=secrets,
                )
    except ServiceError:
        raise
    except _NOT_SENT as exc:
        raise ServiceUnavailableError(
            f"{service} {redact_url(url)}: cannot connect ({type(exc).__name__})", service=service
        ) from exc
    except BodyTooLargeError as exc:
        raise BadResponseError(f"{service} {redact_url(url)}: {exc}", service=service) from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise ConfigurationError(f"{service} {redact_url(url)}: not a usable URL") from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        what = _what_failed(exc)
        raise ServiceUnavailableError(
            f"{service} {redact_url(url)}: {what}", service=service, retryable=repeatable
        ) from exc
    except ValueError as exc:  # a header value HTTP cannot carry; the message names no value
        raise ConfigurationError(f"{service} {redact_url(url)}: {exc}") from exc
    try:
        return _json.loads(raw)
    except ValueError as exc:
        raise BadResponseError(
            f"{service} {redact_url(url)} answered a body that is not JSON{snippet(raw, secrets)}",
            service=service,
        ) from exc


def _what_failed(exc: BaseException) -> str:
    """Words for a failure after sending (the exception's text may quote a body)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "closed the connection before the answer was complete"
    if isinstance(exc, aiohttp.ClientResponseError):  # a malformed answer (bad headers)
        return f"answered something that is not HTTP ({type(exc).__name__})"
    return f"connection failed ({type(exc).__name__})"


def outcome_of(provider: Provider, exc: ServiceError) -> Outcome:
    """What a failed attempt says about its endpoint."""
    if isinstance(exc, RateLimitedError) or exc.status in provider.busy_statuses:
        return "busy"
    if isinstance(exc, RetryElsewhere):
        return "busy"
    if isinstance(exc, ServiceUnavailableError):
        return "down"
    return "alive"


async def call_provider(
    runtime: Runtime,
    provider: Provider,
    send: Callable[[Attempt], Awaitable[T]],
    *,
    limiter: ProviderLimiter | None = None,
    pool: EndpointPool | None = None,
    sticky: Sticky | None = None,
) -> T:
    """Run one provider call: every attempt leased, limited, classified, reported.

    Args:
        runtime: the open runtime (session, limiters, retry policy, counters).
        provider: the provider's name, secrets and repeat rules.
        send: one attempt; raises classified :class:`ServiceError`\\ s.
        limiter: the provider's limiter; ``None``: ``runtime.limiter(provider.name)``.
        pool: the endpoints to lease from; ``None`` for a single-address provider.
        sticky: the endpoint binding to prefer and update (a rollout's replica).

    Raises:
        ServiceError: the call failed for good (secrets scrubbed).
    """
    admit = limiter if limiter is not None else runtime.limiter(provider.name)
    failed: list[Endpoint] = []  # endpoints that failed this call, newest last
    number = 0

    async def attempt() -> T:
        nonlocal number
        number += 1
        if pool is None:
            wait = await admit.acquire()
            try:
                return await send(_attempt(runtime, provider, number, None, wait))
            except ServiceError as exc:
                _scrub(provider, exc)
                raise
            finally:
                admit.release()
        prefer = sticky.endpoint if sticky is not None else None
        async with pool.lease(prefer, avoid=failed[-1] if failed else None) as endpoint:
            if sticky is not None:
                if prefer is not None and endpoint is not prefer:
                    sticky.moves += 1
                sticky.endpoint = endpoint
            note_replica(endpoint.url)
            wait = await admit.acquire()
            try:
                result = await send(_attempt(runtime, provider, number, endpoint, wait))
            except ServiceError as exc:
                outcome = outcome_of(provider, exc)
                if outcome != "alive":
                    failed.append(endpoint)
                    if isinstance(exc, RateLimitedError | ServiceUnavailableError) and any(
                        e is not endpoint for e in pool.healthy()
                    ):
                        # Retry-After speaks for this endpoint; the retry goes to another.
                        exc.retry_after = None
                if outcome != "busy":  # busy is neither a failure nor a success
                    pool.report(endpoint, ok=outcome == "alive")
                _scrub(provider, exc)
                raise
            finally:
                admit.release()
            pool.report(endpoint, ok=True)
            return result

    # The provider-call span: retries become its events (the runtime's retry
    # callback), the limiter adds its wait, the lease names the replica.
    with provider_call(provider.name):
        try:
            return await (provider.retry or runtime.retry).call(
                attempt, on_retry=runtime.on_retry(provider.name)
            )
        except ServiceError as exc:
            runtime.stats.failures[provider.name] += 1
            if isinstance(exc, RateLimitedError):
                # on_retry counted the 429s that were retried; this is the last one.
                runtime.stats.rate_limited[provider.name] += 1
            raise


def _attempt(
    runtime: Runtime, provider: Provider, number: int, endpoint: Endpoint | None, wait: float
) -> Attempt:
    return Attempt(
        runtime=runtime, provider=provider, number=number, endpoint=endpoint, limiter_wait=wait
    )


def _scrub(provider: Provider, exc: ServiceError) -> None:
    # Before the retry policy logs it: a server may echo our key in its body.
    if provider.secrets:
        scrub_error(exc, provider.secrets)
