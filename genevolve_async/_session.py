"""The runtime's one aiohttp session: pool, proxies, bounds and the address guard.

Every request the library makes rides this session: the policy (both
routes; the SDK's through an httpx transport over it), Serper, image
downloads, Qwen services and their probes, the judge and google-genai.

- **Pool.** No cap on connections by default: at 5,000 or 20,000 rollouts in
  flight a cap only queues requests (the OS's file-descriptor limit is the
  real one). A cap set in :class:`~genevolve_async.RuntimeConfig` is
  honoured, and the first request that queues behind it logs a warning once.
- **Proxies.** ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY`` are honoured
  as aiohttp's ``trust_env`` does, except that loopback always goes direct
  (the simulated services, a local vLLM). Read once per runtime, decided
  once per host: aiohttp's own ``trust_env`` reads them in a worker thread
  for every request.
- **Bounds.** Header lines, header count and every body are bounded (see
  :func:`read_body`); aiohttp decompresses in bounded steps, and the bodies
  are counted after decompression. Control bytes in URLs are
  percent-encoded by yarl, and aiohttp refuses them in header values.
- **Address guard.** Inside :func:`guarded`, every address a connection will
  use is checked before connecting (the connector's resolver step, which
  also sees IP literals and cached lookups), a reused connection's peer is
  checked again, and aiohttp's bounded redirect following passes every hop
  through the same checks.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.request import proxy_bypass

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.client_middlewares import ClientHandlerType
from aiohttp.helpers import BasicAuth, proxies_from_env
from yarl import URL

if TYPE_CHECKING:
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.tracing import Trace

    from .tools._address import AddressPolicy

__all__ = [
    "MAX_FIELD_SIZE",
    "MAX_HEADERS",
    "MAX_LINE_SIZE",
    "BodyTooLargeError",
    "guarded",
    "open_session",
    "read_body",
]

logger = logging.getLogger("genevolve_async.runtime")

MAX_LINE_SIZE = 8190
"""Longest status line accepted (aiohttp's default, set on purpose)."""
MAX_FIELD_SIZE = 8190
"""Longest header line accepted."""
MAX_HEADERS = 128
"""Most header lines accepted: a host that sends headers for ever is cut off here."""

_GUARD: contextvars.ContextVar[AddressPolicy | None] = contextvars.ContextVar(
    "genevolve_address_guard", default=None
)
_ROUTES_KEPT = 4096


class BodyTooLargeError(ValueError):
    """An answer's body (after decompression) ran past its limit."""


@contextmanager
def guarded(policy: AddressPolicy | None) -> Iterator[None]:
    """Requests made inside the block may only reach addresses ``policy`` allows."""
    if policy is None or policy.allow_private:
        yield
        return
    token = _GUARD.set(policy)
    try:
        yield
    finally:
        _GUARD.reset(token)


def _check_address(policy: AddressPolicy, host: str, address: str) -> None:
    from .tools._address import RefusedAddressError

    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError as exc:
        raise RefusedAddressError(f"{host} resolved to an unparsable address") from exc
    if not policy.allows(ip):
        raise RefusedAddressError(f"{host} resolves to {ip}, which is not public")


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector plus the address guard and a once-only queueing warning."""

    _warned = False  # per connector (per runtime): set on the instance

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces)
        policy = _GUARD.get()
        if policy is not None:
            # Every address: the connector may try any of them, and it connects
            # to these, never resolving again (no DNS-rebinding gap).
            for result in results:
                _check_address(policy, host, result["host"])
        return results

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Any:
        if (self._limit or self._limit_per_host) and not self._warned:
            key = req.connection_key
            if self._available_connections(key) <= 0 and not self._conns.get(key):
                self._warned = True
                logger.warning(
                    "requests are queueing for a connection: the runtime's pool is capped "
                    "(max_connections=%d, max_connections_per_host=%d); raise or remove "
                    "the cap unless a server needs it",
                    self._limit,
                    self._limit_per_host,
                )
        policy = _GUARD.get()
        if policy is None:
            return await super().connect(req, traces, timeout)
        if req.proxy is not None:
            # The proxy resolves the name; check what it resolves to here (best
            # effort: behind a proxy there may be no DNS of our own), and let the
            # connection to the user's own proxy through.
            from .tools._address import RefusedAddressError

            try:
                await self._resolve_host(req.url.raw_host or "", req.url.port or 0, traces)
            except RefusedAddressError:
                raise
            except OSError:
                pass
            token = _GUARD.set(None)
            try:
                return await super().connect(req, traces, timeout)
            finally:
                _GUARD.reset(token)
        conn = await super().connect(req, traces, timeout)
        # A pooled connection may have been opened by an unguarded request.
        transport = conn.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if peer:
            try:
                _check_address(policy, req.url.raw_host or "", str(peer[0]))
            except OSError:
                conn.close()
                raise
        return conn


class _ProxyRoute:
    """A middleware that sends external requests through the environment's proxy."""

    def __init__(self, proxies: dict[str, tuple[URL, BasicAuth | None]]) -> None:
        self._proxies = proxies
        self._routes: dict[tuple[str, str], tuple[URL, BasicAuth | None] | None] = {}

    def route(self, url: URL) -> tuple[URL, BasicAuth | None] | None:
        host = url.raw_host or ""
        key = (url.scheme, host)
        if key in self._routes:
            return self._routes[key]
        proxy = self._proxies.get(url.scheme)
        if proxy is not None and (_is_loopback(host) or proxy_bypass(host)):
            proxy = None
        if len(self._routes) >= _ROUTES_KEPT:
            self._routes.clear()
        self._routes[key] = proxy
        return proxy

    async def __call__(self, req: ClientRequest, handler: ClientHandlerType) -> Any:
        if req.proxy is None:
            proxy = self.route(req.url)
            if proxy is not None:
                req.update_proxy(proxy[0], proxy[1], None)
        return await handler(req)


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def open_session(
    *,
    max_connections: int,
    max_connections_per_host: int,
    keepalive_timeout: float,
    connect_timeout: float,
) -> aiohttp.ClientSession:
    """The runtime's session (the caller closes it)."""
    connector = _Connector(
        limit=max_connections,
        limit_per_host=max_connections_per_host,
        keepalive_timeout=keepalive_timeout,
        ttl_dns_cache=300,
    )
    proxies = {k: (v.proxy, v.proxy_auth) for k, v in proxies_from_env().items()}
    # No middleware at all without a proxy: nothing to pay per request.
    middlewares = (_ProxyRoute(proxies),) if proxies else ()
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
        # Never cookies shared between rollouts or providers.
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
        trust_env=False,  # proxies are routed by _ProxyRoute, decided once per host
        max_line_size=MAX_LINE_SIZE,
        max_field_size=MAX_FIELD_SIZE,
        max_headers=MAX_HEADERS,
        middlewares=middlewares,
    )


async def read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes after decompression.

    Raises:
        BodyTooLargeError: the body is, or announces itself, larger.
    """
    length = resp.content_length
    if length is not None and length > limit:
        raise BodyTooLargeError(f"the answer announces {length} bytes, over the {limit} limit")
    if length is not None and "Content-Encoding" not in resp.headers:
        return await resp.read()  # exactly ``length`` bytes: the common, cheap case
    buffer = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        buffer += chunk
        if len(buffer) > limit:
            raise BodyTooLargeError(f"the answer ran past the {limit} byte limit")
    return bytes(buffer)
