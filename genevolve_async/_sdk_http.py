"""The openai SDK's HTTP client, riding the runtime's one aiohttp session.

openai 3.x speaks httpx2; ``httpx_aiohttp.httpx2.AiohttpTransport`` carries
an httpx2 client's requests on an aiohttp session we hand it, so the SDK
routes (the policy's ``openai`` route, the judge) share the runtime's pool,
proxy routing and header bounds with everything else. The transport would
close that session with the SDK client; ours leaves it to the runtime.

Bodies: the transport hands httpx2 the raw bytes (httpx2 decompresses), so
we ask for uncompressed answers (``Accept-Encoding: identity``) and cap the
raw body at the size our own JSON answers are capped at.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from ._lazy import import_off_loop
from ._provider_call import DEFAULT_MAX_ANSWER

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["sdk_http_client"]

_TRANSPORT: Any = None


def _transport_class() -> Any:
    global _TRANSPORT
    if _TRANSPORT is None:
        import httpx2
        from httpx_aiohttp.httpx2 import AiohttpTransport

        class _Bounded(httpx2.AsyncByteStream):
            def __init__(self, inner: Any, limit: int) -> None:
                self._inner = inner
                self._limit = limit

            async def __aiter__(self) -> Any:
                size = 0
                async for chunk in self._inner:
                    size += len(chunk)
                    if size > self._limit:
                        raise httpx2.ReadError(f"the answer ran past {self._limit} bytes")
                    yield chunk

            async def aclose(self) -> None:
                await self._inner.aclose()

        class _SharedSessionTransport(AiohttpTransport):
            async def handle_async_request(self, request: Any) -> Any:
                response = await super().handle_async_request(request)
                response.stream = _Bounded(response.stream, DEFAULT_MAX_ANSWER)
                return response

            async def aclose(self) -> None:
                """The session belongs to the runtime, which closes it."""

        _TRANSPORT = _SharedSessionTransport
    return _TRANSPORT


def _build(session: Any) -> Any:
    import httpx2

    # Building the transport loads the CA bundle from disk: a worker thread's job.
    transport = _transport_class()(client=session)
    return httpx2.AsyncClient(
        transport=transport, follow_redirects=True, headers={"Accept-Encoding": "identity"}
    )


async def sdk_http_client(runtime: Runtime) -> Any:
    """A new ``httpx2.AsyncClient`` on ``runtime``'s session (for ``AsyncOpenAI(http_client=...)``)."""
    session = runtime.http
    await import_off_loop("httpx2", "httpx_aiohttp.httpx2")
    return await anyio.to_thread.run_sync(partial(_build, session))
