"""Answer framing and encodings: chunked, until-EOF, no body, interim answers,
gzip/deflate, and the errors for answers that are broken or too large."""

from __future__ import annotations

import socket
import struct
import tracemalloc
import zlib

import anyio
import pytest

from genevolve_async._wire import (
    BodyTooLargeError,
    ConnectionClosedError,
    RemoteProtocolError,
    WireClient,
    WireError,
)

from ._raw import RawServer, ServerConn, answer, chunked, gzipped, keep_answering


def test_errors_are_os_errors() -> None:
    for error in (BodyTooLargeError, ConnectionClosedError, RemoteProtocolError):
        assert issubclass(error, WireError)
    assert issubclass(WireError, OSError)


async def test_chunked_answer(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in (b"hello ", b"chunked ", b"world"):
                await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                await anyio.sleep(0.01)
            await conn.send(b"0\r\n\r\n")

    async with RawServer(handler) as server:
        first = await client.request("GET", server.url(), timeout=5)
        second = await client.request("GET", server.url(), timeout=5)
    assert first.body == second.body == b"hello chunked world"
    assert first.content_length is None
    assert first.keep_alive
    assert len(server.connections) == 1  # reused after a chunked answer


async def test_chunked_answer_with_extensions_and_trailers(client: WireClient) -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request("GET", server.url(), timeout=5)
        again = await client.request("GET", server.url(), timeout=5)
    assert response.body == again.body == b"abcde"
    assert len(server.connections) == 1


async def test_answer_read_until_eof(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        await conn.send(b"no length, ")
        await anyio.sleep(0.02)
        await conn.send(b"just EOF")
        conn.close()

    async with RawServer(handler) as server:
        response = await client.request("GET", server.url(), timeout=5)
        assert response.body == b"no length, just EOF"
        assert not response.keep_alive
        assert client.idle_connections == 0
        again = await client.request("GET", server.url(), timeout=5)
    assert again.body == b"no length, just EOF"
    assert len(server.connections) == 2


async def test_gzip_answer_read_until_eof(client: WireClient) -> None:
    data = b"squeezed until the end " * 200

    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + gzipped(data))
        conn.close()

    async with RawServer(handler) as server:
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == data


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
async def test_answers_without_a_body(client: WireClient, status: str) -> None:
    reply = f"HTTP/1.1 {status}\r\nX-Empty: yes\r\n\r\n".encode()
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request("GET", server.url(), timeout=5)
        assert response.status == int(status[:3])
        assert response.body == b""
        assert response.headers.get("X-Empty") == "yes"
        again = await client.request("GET", server.url(), timeout=5)
    assert again.status == int(status[:3])
    assert len(server.connections) == 1


async def test_100_continue_before_the_answer(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await conn.send(b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n")
            await anyio.sleep(0.01)
            await conn.send(answer(b"real", headers=[("X-Final", "1")]))

    async with RawServer(handler) as server:
        response = await client.request("POST", server.url(), body=b"x", timeout=5)
        again = await client.request("POST", server.url(), body=b"y", timeout=5)
    assert response.status == 200
    assert response.body == b"real"
    assert response.headers.get("x-final") == "1"
    assert "x-interim" not in response.headers
    assert again.body == b"real"
    assert len(server.connections) == 1


async def test_several_interim_answers_in_one_read(client: WireClient) -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + answer(b"done")
    )
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request("GET", server.url(), timeout=5)
    assert (response.status, response.body) == (200, b"done")
    assert "link" not in response.headers


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZip"])
async def test_gzip_answer_sent_unasked(client: WireClient, encoding: str) -> None:
    data = b'{"a": "' + b"z" * 5000 + b'"}'
    packed = gzipped(data)
    reply = answer(packed, headers=[("Content-Encoding", encoding)])
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request("GET", server.url(), timeout=5)
        again = await client.request("GET", server.url(), timeout=5)
    assert response.body == again.body == data
    assert response.content_length == len(packed)  # the header is as sent
    assert "accept-encoding" not in {name.lower() for name, _ in server.requests[0].headers}
    assert len(server.connections) == 1


async def test_chunked_gzip_answer(client: WireClient) -> None:
    data = bytes(range(256)) * 400
    packed = gzipped(data)
    pieces = [packed[i : i + 1000] for i in range(0, len(packed), 1000)]
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(pieces)
    )
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == data


async def test_deflate_answer_zlib_wrapped(client: WireClient) -> None:
    data = b"deflated " * 1000
    reply = answer(zlib.compress(data), headers=[("Content-Encoding", "deflate")])
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == data


async def test_deflate_answer_raw(client: WireClient) -> None:
    data = b"raw deflate " * 1000
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = packer.compress(data) + packer.flush()
    reply = answer(raw, headers=[("Content-Encoding", "deflate")])
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == data


async def test_identity_encoding_is_left_alone(client: WireClient) -> None:
    reply = answer(b"plain", headers=[("Content-Encoding", "identity")])
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == b"plain"


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
async def test_unknown_encoding_is_a_protocol_error(client: WireClient, encoding: str) -> None:
    reply = answer(b"\x0b\x02\x80hello\x03", headers=[("Content-Encoding", encoding)])
    async with RawServer(keep_answering(reply)) as server:
        with pytest.raises(RemoteProtocolError):
            await client.request("GET", server.url(), timeout=5)
        assert client.connections_in_use == 0
        assert client.idle_connections == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()


async def test_corrupt_gzip_is_a_protocol_error(client: WireClient) -> None:
    reply = answer(b"this is not gzip at all", headers=[("Content-Encoding", "gzip")])
    async with RawServer(keep_answering(reply)) as server:
        with pytest.raises(RemoteProtocolError):
            await client.request("GET", server.url(), timeout=5)
        assert client.idle_connections == 0
        server.handler = keep_answering(answer(b"fine"))
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == b"fine"
    assert len(server.connections) == 2


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
        b"HTTP/1.1 abc Nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    ],
)
async def test_garbage_is_a_protocol_error(client: WireClient, garbage: bytes) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(garbage)
        await conn.until_eof()

    async with RawServer(handler) as server:
        with pytest.raises(RemoteProtocolError):
            await client.request("GET", server.url(), timeout=5)
        assert client.connections_in_use == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()


async def test_switching_protocols_is_a_protocol_error(client: WireClient) -> None:
    reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    async with RawServer(keep_answering(reply)) as server:
        with pytest.raises(RemoteProtocolError):
            await client.request("GET", server.url(), timeout=5)
    assert client.connections_in_use == 0


@pytest.mark.parametrize(
    "partial",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"",
    ],
)
async def test_server_closing_mid_answer(client: WireClient, partial: bytes) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        if partial:
            await conn.send(partial)
        conn.close()

    async with RawServer(handler) as server:
        with pytest.raises(ConnectionClosedError):
            await client.request("GET", server.url(), timeout=5)
    assert client.connections_in_use == 0
    assert client.idle_connections == 0


async def test_max_body_exceeded(client: WireClient) -> None:
    reply = answer(b"x" * 1000)
    async with RawServer(keep_answering(reply)) as server:
        with pytest.raises(BodyTooLargeError):
            await client.request("GET", server.url(), timeout=5, max_body=999)
        assert client.connections_in_use == 0
        assert client.idle_connections == 0
        with anyio.fail_after(5):
            await server.connections[0].eof.wait()
        exact = await client.request("GET", server.url(), timeout=5, max_body=1000)
        unlimited = await client.request("GET", server.url(), timeout=5, max_body=None)
    assert exact.body == unlimited.body == b"x" * 1000
    assert len(server.connections) == 2  # the failed connection was not reused


async def test_max_body_exceeded_by_a_chunked_answer(client: WireClient) -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked([b"y" * 600] * 5)
    async with RawServer(keep_answering(reply)) as server:
        with pytest.raises(BodyTooLargeError):
            await client.request("GET", server.url(), timeout=5, max_body=2000)
        response = await client.request("GET", server.url(), timeout=5)
    assert response.body == b"y" * 3000
    assert len(server.connections) == 2


async def test_max_body_counts_decoded_bytes(client: WireClient) -> None:
    data = b"\0" * 200_000
    reply = answer(gzipped(data), headers=[("Content-Encoding", "gzip")])
    assert len(gzipped(data)) < 10_000
    async with RawServer(keep_answering(reply)) as server:
        with pytest.raises(BodyTooLargeError):
            await client.request("GET", server.url(), timeout=5, max_body=100_000)
    assert client.connections_in_use == 0


async def test_max_body_bounds_memory_of_a_gzip_bomb(client: WireClient) -> None:
    bomb = gzipped(b"\0" * (32 * 2**20))  # 32 MiB of zeros in about 32 kB
    reply = answer(bomb, headers=[("Content-Encoding", "gzip")])
    async with RawServer(keep_answering(reply)) as server:
        tracemalloc.start()
        try:
            with pytest.raises(BodyTooLargeError):
                await client.request("GET", server.url(), timeout=5, max_body=2**20)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.0f} MiB for a 1 MiB limit"


async def test_head_request(client: WireClient) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    async with RawServer(keep_answering(reply)) as server:
        response = await client.request("HEAD", server.url(), timeout=1)
    assert response.status == 200
    assert response.body == b""
    assert response.content_length == 5


async def test_a_reset_ends_a_length_less_body_as_an_error(client: WireClient) -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart of it")
        await anyio.sleep(0.05)
        sock = conn.writer.get_extra_info("socket")
        # Linger 0: close() sends a reset, not an orderly end.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.abort()

    async with RawServer(handler) as server:
        with pytest.raises(ConnectionClosedError):
            await client.request("GET", server.url(), timeout=5)


async def test_a_cut_off_gzip_body_until_eof_is_an_error(client: WireClient) -> None:
    data = gzipped(b"squeezed until the end " * 200)

    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + data[: len(data) // 2]
        )
        conn.close()

    async with RawServer(handler) as server:
        with pytest.raises(ConnectionClosedError):
            await client.request("GET", server.url(), timeout=5)
