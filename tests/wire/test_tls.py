"""https on loopback with a throwaway CA (needs ``trustme``; skipped without it)."""

from __future__ import annotations

import ssl

import pytest

from genevolve_async._wire import WireClient

from ._raw import RawServer, answer, keep_answering

trustme = pytest.importorskip("trustme")


async def _localhost(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


async def test_https_round_trip() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with (
        RawServer(keep_answering(answer(b"secure")), tls=server_context) as server,
        WireClient(resolve=_localhost, ssl_context=client_context) as client,
    ):
        url = f"https://localhost:{server.port}/s"
        first = await client.request("GET", url, timeout=5)
        second = await client.request("GET", url, timeout=5)
    assert first.body == second.body == b"secure"
    assert len(server.connections) == 1
    assert server.requests[0].header("Host") == f"localhost:{server.port}"


async def test_https_untrusted_certificate_is_refused() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    async with (
        RawServer(keep_answering(answer()), tls=server_context) as server,
        WireClient(resolve=_localhost) as client,  # the system's trust store
    ):
        with pytest.raises(ssl.SSLCertVerificationError):
            await client.request("GET", f"https://localhost:{server.port}/", timeout=5)
        assert client.connections_in_use == 0
