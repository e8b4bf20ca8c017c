"""One exchange on the wire client: what goes out on the wire and what comes back."""

from __future__ import annotations

import socket

import pytest

from genevolve_async import __version__
from genevolve_async._wire import Headers, WireClient
from genevolve_async._wire._client import _parse_route

from ._raw import RawServer, answer, keep_answering


async def test_post_round_trip(client: WireClient) -> None:
    reply = answer(
        b'{"ok": true}',
        status="201 Created",
        headers=[("Content-Type", "application/json; charset=utf-8"), ("X-Thing", "Yes")],
    )
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request(
            "POST",
            server.url("/v1/chat?x=1"),
            headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
            body=b'{"q": 1}',
            timeout=5,
        )
    assert response.status == 201
    assert response.body == b'{"ok": true}'
    assert response.complete
    assert response.keep_alive
    assert response.content_type == "application/json"
    assert response.content_length == len(b'{"ok": true}')
    assert isinstance(response.headers, Headers)
    assert response.headers.get("x-thing") == "Yes"
    assert response.headers.get("X-THING") == "Yes"
    assert response.headers["X-Thing"] == "Yes"
    assert "x-THING" in response.headers
    assert response.headers.get("missing") is None
    assert response.headers.get("missing", "d") == "d"
    assert set(response.headers) == {"content-type", "x-thing", "content-length"}
    assert repr(response) == "<WireResponse 201>"

    [request] = server.requests
    assert (request.method, request.target, request.version) == ("POST", "/v1/chat?x=1", "HTTP/1.1")
    assert request.header("Host") == server.authority
    assert request.header("User-Agent") == f"genevolve-async/{__version__}"
    assert request.header("Content-Length") == str(len(b'{"q": 1}'))
    assert request.header("Content-Type") == "application/json"
    assert request.header("Authorization") == "Bearer k"
    assert request.body == b'{"q": 1}'
    for name in ("Host", "User-Agent", "Content-Length"):
        assert request.header_count(name) == 1


async def test_get_round_trip(client: WireClient) -> None:
    async with RawServer(keep_answering(answer(b"hello"))) as server:
        response = await client.request("GET", server.url(""), timeout=5)
    assert response.status == 200
    assert response.body == b"hello"
    [request] = server.requests
    assert request.raw.startswith(b"GET / HTTP/1.1\r\n")
    assert request.header("Content-Length") is None  # a GET without a body announces none
    assert request.body == b""
    assert client.connections_in_use == 0


async def test_post_with_empty_body_sends_content_length_zero(client: WireClient) -> None:
    async with RawServer(keep_answering(answer())) as server:
        for method in ("POST", "PUT", "PATCH"):
            await client.request(method, server.url("/x"), timeout=5)
    assert [r.method for r in server.requests] == ["POST", "PUT", "PATCH"]
    assert [r.header("Content-Length") for r in server.requests] == ["0", "0", "0"]


async def test_get_with_a_body_announces_its_length(client: WireClient) -> None:
    async with RawServer(keep_answering(answer())) as server:
        await client.request("GET", server.url(), body=b"abc", timeout=5)
    [request] = server.requests
    assert request.header("Content-Length") == "3"
    assert request.body == b"abc"


async def test_caller_headers_override_ours(client: WireClient) -> None:
    async with RawServer(keep_answering(answer())) as server:
        await client.request(
            "POST",
            server.url(),
            headers={"host": "virtual.example", "USER-AGENT": "mine/1", "content-length": "2"},
            body=b"hi",
            timeout=5,
        )
    [request] = server.requests
    assert request.header("Host") == "virtual.example"
    assert request.header("User-Agent") == "mine/1"
    assert request.header("Content-Length") == "2"
    for name in ("Host", "User-Agent", "Content-Length"):
        assert request.header_count(name) == 1
    assert request.body == b"hi"


async def test_constructor_user_agent() -> None:
    async with (
        RawServer(keep_answering(answer())) as server,
        WireClient(user_agent="agent/9") as client,
    ):
        await client.request("GET", server.url(), timeout=5)
    assert server.requests[0].header("User-Agent") == "agent/9"


async def test_response_headers_are_lower_case_and_repeats_joined(client: WireClient) -> None:
    reply = answer(b"", headers=[("X-Many", "a"), ("x-many", "b"), ("Set-Cookie", "c=1")])
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request("GET", server.url(), timeout=5)
    assert dict(response.headers) == {"x-many": "a, b", "set-cookie": "c=1", "content-length": "0"}
    assert response.content_type == ""


def test_host_header_omits_the_default_port_and_keeps_others() -> None:
    assert _parse_route("http://example.com/a").host_header == "example.com"
    assert _parse_route("http://example.com:80/a").host_header == "example.com"
    assert _parse_route("https://example.com/a").host_header == "example.com"
    assert _parse_route("https://example.com:443/a").host_header == "example.com"
    assert _parse_route("http://example.com:443/a").host_header == "example.com:443"
    assert _parse_route("https://example.com:80/a").host_header == "example.com:80"
    assert _parse_route("http://Example.COM:8080/a").host_header == "example.com:8080"
    assert _parse_route("http://[::1]/").host_header == "[::1]"
    assert _parse_route("http://[::1]:8080/").host_header == "[::1]:8080"
    route = _parse_route("HTTPS://Example.com/p?q=1#frag")
    assert route.origin == ("https", "example.com", 443)
    assert route.target == "/p?q=1"


def test_international_host_names_go_out_as_idna() -> None:
    route = _parse_route("http://bücher.example/")
    assert route.origin == ("http", "xn--bcher-kva.example", 80)
    assert route.host_header == "xn--bcher-kva.example"


def _can_bind_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _can_bind_ipv6(), reason="no IPv6 loopback here")
async def test_ipv6_literal(client: WireClient) -> None:
    async with RawServer(keep_answering(answer(b"six")), host="::1") as server:
        response = await client.request("GET", server.url("/v6"), timeout=5)
    assert response.body == b"six"
    [request] = server.requests
    assert request.header("Host") == f"[::1]:{server.port}"
    assert request.target == "/v6"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "/relative/path",
        "example.com/no-scheme",
        "http:///no-host",
        "http://example.com:99999/",
        "http://example.com:port/",
        "http://example.com:0/",
    ],
)
async def test_unusable_urls_raise_value_error(client: WireClient, url: str) -> None:
    with pytest.raises(ValueError):
        await client.request("GET", url, timeout=5)
    assert client.connections_in_use == 0


SECRET = "s3cret-token"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {SECRET}\r\nX-Injected: 1"},
        {"Authorization": f"Bearer {SECRET}\nX-Injected: 1"},
        {"Authorization": f"Bearer {SECRET}\r"},
        {"Bad Name": SECRET},
        {"Bad:Name": SECRET},
        {"": SECRET},
        {"X-Ctl\x01": SECRET},
        {"Authorization": f"Bearer {SECRET}\u20ac"},  # not latin-1
    ],
)
async def test_unusable_headers_raise_value_error_without_the_value(
    client: WireClient, headers: dict[str, str]
) -> None:
    async with RawServer(keep_answering(answer())) as server:
        with pytest.raises(ValueError) as caught:
            await client.request("GET", server.url(), headers=headers, timeout=5)
        assert SECRET not in str(caught.value)
        assert SECRET not in repr(caught.value)
        assert client.connections_in_use == 0
        # Nothing went out, and the client still works.
        assert server.requests == []
        response = await client.request("GET", server.url(), timeout=5)
    assert response.status == 200


async def test_url_user_info_is_not_sent(client: WireClient) -> None:
    async with RawServer(keep_answering(answer())) as server:
        url = f"http://user:{SECRET}@127.0.0.1:{server.port}/p"
        response = await client.request("GET", url, timeout=5)
    assert response.status == 200
    [request] = server.requests
    assert SECRET.encode() not in request.raw
    assert request.header("Host") == server.authority


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/images/café ü.png?q=naïve", "/images/caf%C3%A9%20%C3%BC.png?q=na%C3%AFve"),
        ("/a b", "/a%20b"),
        ("/already%20encoded/x?y=%C3%A9", "/already%20encoded/x?y=%C3%A9"),
        ("/€?k=v&a=b", "/%E2%82%AC?k=v&a=b"),
        ("/plain/path;p?a=1&b=2", "/plain/path;p?a=1&b=2"),
    ],
)
async def test_request_targets_go_out_percent_encoded(
    client: WireClient, path: str, target: str
) -> None:
    async with RawServer(keep_answering(answer())) as server:
        response = await client.request("GET", server.url(path), timeout=5)
    assert response.status == 200
    [request] = server.requests
    assert request.target == target
    assert request.raw.isascii()


def test_headers_type() -> None:
    headers = Headers({"content-type": "text/plain"})
    assert headers.get("Content-Type") == "text/plain"
    assert headers["CONTENT-TYPE"] == "text/plain"
    assert "Content-Type" in headers
    not_a_name: object = 3
    assert not_a_name not in headers
    with pytest.raises(KeyError):
        headers["missing"]


async def test_request_on_a_refused_port_raises_os_error(client: WireClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connecting is refused
        with pytest.raises(OSError):
            await client.request("GET", f"http://127.0.0.1:{port}/", timeout=5)
    assert client.connections_in_use == 0


@pytest.mark.parametrize("method", ["GET /evil HTTP/1.1\r\nX:", "G ET", "", "GÉT"])
async def test_unusable_methods_raise_value_error(client: WireClient, method: str) -> None:
    async with RawServer(keep_answering(answer())) as server:
        with pytest.raises(ValueError, match="not an HTTP method"):
            await client.request(method, server.url(), timeout=5)
        assert server.requests == []
        assert client.connections_in_use == 0
