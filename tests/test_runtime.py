from __future__ import annotations

import pytest

from genevolve_async import ProviderLimits, Runtime, RuntimeClosedError, RuntimeConfig
from genevolve_async._http import parse_retry_after, redact_url


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


async def test_the_wire_client_follows_the_runtime() -> None:
    runtime = Runtime(RuntimeConfig(max_connections=7, max_connections_per_host=3))
    with pytest.raises(RuntimeClosedError, match="not open"):
        _ = runtime.wire
    async with runtime:
        wire = runtime.wire
        assert wire is runtime.wire  # one per runtime
        assert (wire.max_connections, wire.max_connections_per_host) == (7, 3)
    with pytest.raises(RuntimeClosedError, match="closed"):
        _ = runtime.wire
    with pytest.raises(RuntimeError, match="closed"):
        await wire.request("GET", "http://127.0.0.1:9/")


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
