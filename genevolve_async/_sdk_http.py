"""The openai SDK's HTTP client, riding the runtime's one aiohttp session.

openai 3.x speaks httpx2; ``httpx_aiohttp.httpx2.AiohttpTransport`` carries
an httpx2 client's requests on an aiohttp session we hand it, so the SDK
routes (the policy's ``openai`` route, the judge) share the runtime's pool,
proxy routing and bounds with everything else. The transport would close
that session with the SDK client; ours leaves it to the runtime.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from ._lazy import import_off_loop

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["sdk_http_client"]

_TRANSPORT: Any = None


def _transport_class() -> Any:
    global _TRANSPORT
    if _TRANSPORT is None:
        from httpx_aiohttp.httpx2 import AiohttpTransport

        class _SharedSessionTransport(AiohttpTransport):
            async def aclose(self) -> None:
                """The session belongs to the runtime, which closes it."""

        _TRANSPORT = _SharedSessionTransport
    return _TRANSPORT


def _build(session: Any) -> Any:
    import httpx2

    # Building the transport loads the CA bundle from disk: a worker thread's job.
    transport = _transport_class()(client=session)
    return httpx2.AsyncClient(transport=transport, follow_redirects=True)


async def sdk_http_client(runtime: Runtime) -> Any:
    """A new ``httpx2.AsyncClient`` on ``runtime``'s session (for ``AsyncOpenAI(http_client=...)``)."""
    session = runtime.http
    await import_off_loop("httpx2", "httpx_aiohttp.httpx2")
    return await anyio.to_thread.run_sync(partial(_build, session))
