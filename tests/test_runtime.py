from __future__ import annotations

import pytest

from genevolve_async import (
    ConfigurationError,
    ProviderLimits,
    Runtime,
    RuntimeClosedError,
    RuntimeConfig,
)
from genevolve_async._status import parse_retry_after, redact_url


async def test_lifecycle_and_no_reopen() -> None:
    runtime = Runtime()
    with pytest.raises(RuntimeClosedError, match="not open"):
        _ = runtime.http
    async with runtime:
        assert not runtime.http.closed
        session = runtime.http
    assert session.closed
    with pytest.raises(RuntimeClosedError, match="closed"):
        _ = runtime.http
    with pytest.raises(RuntimeClosedError, match="reopened"):
        async with runtime:
            pass


async def test_one_session_per_runtime_with_its_caps() -> None:
    runtime = Runtime(RuntimeConfig(max_connections=7, max_connections_per_host=3))
    async with runtime:
        session = runtime.http
        assert session is runtime.http  # one per runtime
        connector = session.connector
        assert connector is not None
        assert (connector.limit, connector.limit_per_host) == (7, 3)
    assert session.closed


async def test_defaults_set_no_connection_cap() -> None:
    # A cap queues every request above it; at thousands of rollouts in flight
    # the defaults must not be the bottleneck.
    async with Runtime() as runtime:
        connector = runtime.http.connector
        assert connector is not None
        assert (connector.limit, connector.limit_per_host) == (0, 0)


async def test_one_limiter_registry() -> None:
    async with Runtime(limits={"judge": ProviderLimits(rate=1)}) as runtime:
        mine = ProviderLimits(max_in_flight=4)
        assert runtime.limiter("other", mine) is runtime.limiter("other")
        assert runtime.limiter("other").limits == mine
        with pytest.raises(ConfigurationError, match="one budget"):
            runtime.limiter("other", ProviderLimits(max_in_flight=5))
        assert runtime.limiter("judge").limits.rate == 1


async def test_shared_limiters_pools_and_resources_closed_in_order() -> None:
    closed: list[str] = []

    async def make() -> str:
        return "client"

    async def close(value: str) -> None:
        closed.append(value)

    async with Runtime(limits={"serper": ProviderLimits(rate=5)}) as runtime:
        assert runtime.limiter("serper") is runtime.limiter("serper")
        assert runtime.limiter("serper").limits.rate == 5
        assert runtime.endpoint_pool("p", ["a"]) is runtime.endpoint_pool("p", ["a"])
        assert await runtime.resource("k", make, close) == "client"
        assert await runtime.resource("k", make, close) == "client"
        assert closed == []
    assert closed == ["client"]


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_redact_url_drops_credentials_and_query() -> None:
    assert redact_url("https://user:secret@host:8443/v1/x?key=abc") == "https://host:8443/v1/x"
