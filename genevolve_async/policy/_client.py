"""Chat completions over one or many vLLM replicas.

A rollout sticks to its replica for all rounds (the replica's prefix cache
then holds the growing conversation), a new rollout goes to the least-loaded
replica, and a failing replica is quarantined while its rollouts move on.

Two routes, both on the runtime's one aiohttp session and through the one
provider-call recipe (:mod:`.._provider_call`): ``lean`` POSTs the
orjson-encoded body directly (about a millisecond of CPU less per call than
the SDK), and ``openai`` goes through ``AsyncOpenAI`` on an httpx transport
over the same session, for providers where the SDK's compatibility matters.
Both return the same :class:`ChatReply`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import anyio

from .. import _json
from .._endpoints import Endpoint, EndpointPool
from .._errors import ConfigurationError, ServiceUnavailableError
from .._lazy import import_off_loop
from .._provider_call import Attempt, Provider, call_provider
from .._runtime import Runtime
from .._sdk_http import sdk_http_client
from .._status import redact_url, sdk_status_error
from .._types import JSONObject, Message
from ._reply import ChatReply, reply_from_json

__all__ = ["PolicyAffinity", "PolicyClient", "PolicyRoute"]

PolicyRoute = Literal["lean", "openai"]

SERVICE = "policy"


@dataclass(kw_only=True, slots=True)
class PolicyAffinity:
    """Which replica a rollout is bound to; one per rollout."""

    endpoint: Endpoint | None = None
    moves: int = 0
    """How often the rollout had to move to another replica."""


class PolicyClient:
    """Sends a rollout's chat completions to the policy's replicas."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        base_urls: str | Sequence[str],
        model: str,
        api_key: str | None = None,
        route: PolicyRoute = "lean",
        request_timeout: float = 600.0,
        quarantine_after: int = 3,
        cooldown: float = 30.0,
        max_in_flight_per_replica: int | None = None,
    ) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        urls = [u.rstrip("/") for u in urls if u and u.strip()]
        if not urls:
            raise ConfigurationError("the policy needs at least one base URL")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigurationError(f"policy base URL must be http(s): {redact_url(url)}")
        if route not in ("lean", "openai"):
            raise ConfigurationError(f"unknown policy route {route!r}; use 'lean' or 'openai'")
        self.runtime = runtime
        self.model = model
        self.route = route
        self._api_key = api_key or "EMPTY"
        self._headers = {"Authorization": f"Bearer {self._api_key}"}
        self._request_timeout = request_timeout
        self.pool: EndpointPool = runtime.endpoint_pool(
            SERVICE,
            urls,
            capacity=max_in_flight_per_replica,
            quarantine_after=quarantine_after,
            cooldown=cooldown,
            probe=self._probe,
        )
        # Chat completions are stateless inference (the openai SDK itself retries
        # them after a dropped connection): safe to send again.
        self._provider = Provider(name=SERVICE, secrets=(self._api_key,), safe_to_repeat=True)

    def __repr__(self) -> str:  # never show the key
        urls = ", ".join(e.url for e in self.pool.endpoints)
        return f"PolicyClient(model={self.model!r}, base_urls=[{urls}], route={self.route!r})"

    async def complete(
        self,
        messages: list[Message],
        *,
        affinity: PolicyAffinity | None = None,
        max_tokens: int = 4096,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        tools: list[JSONObject] | None = None,
        extra_body: JSONObject | None = None,
    ) -> ChatReply:
        """One chat completion, retried (on another replica when one fails)."""
        body: JSONObject = {"model": self.model, "messages": messages, "max_tokens": max_tokens}
        if temperature is not None:
            body["temperature"] = temperature
        if top_p is not None:
            body["top_p"] = top_p
        if seed is not None:
            body["seed"] = seed
        if tools:
            body["tools"] = tools
        if extra_body:
            body.update(extra_body)
        affinity = affinity if affinity is not None else PolicyAffinity()
        if self.route == "lean":
            encoded = _json.dumps_bytes(body)

            async def send(attempt: Attempt) -> ChatReply:
                assert attempt.endpoint is not None
                url = attempt.endpoint.url
                data = await attempt.post_json(
                    url + "/chat/completions",
                    encoded,
                    headers=self._headers,
                    timeout=self._request_timeout,
                )
                return reply_from_json(data, endpoint=url)

        else:

            async def send(attempt: Attempt) -> ChatReply:
                assert attempt.endpoint is not None
                return await self._complete_sdk(attempt.endpoint, body)

        return await call_provider(
            self.runtime, self._provider, send, pool=self.pool, sticky=affinity
        )

    async def _probe(self, endpoint: Endpoint) -> bool:
        try:
            async with self.runtime.http.get(
                endpoint.url + "/models",
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp:
                await resp.read()
                return resp.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _complete_sdk(self, endpoint: Endpoint, body: JSONObject) -> ChatReply:
        client = await self.runtime.resource(
            f"openai-policy:{endpoint.url}",
            lambda: self._make_sdk_client(endpoint.url),
            close=lambda c: c.close(),
        )
        import openai  # imported by _make_sdk_client, off the loop: a dictionary lookup now

        kwargs: dict[str, Any] = {k: v for k, v in body.items() if k not in ("model", "messages")}
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in _SDK_PARAMS}
        started = time.monotonic()
        try:
            # The SDK's timeout bounds each read, not the call: a body trickling in
            # would hold the round for as long as it trickles.
            with anyio.fail_after(self._request_timeout):
                raw = await client.chat.completions.with_raw_response.create(
                    model=body["model"],
                    messages=body["messages"],
                    extra_body=extra or None,
                    **kwargs,
                )
        except openai.APIStatusError as exc:
            raise sdk_status_error(
                exc, service=SERVICE, where=f"{SERVICE} {redact_url(endpoint.url)}"
            ) from exc
        except (openai.APITimeoutError, TimeoutError) as exc:
            raise ServiceUnavailableError(
                f"{SERVICE} {redact_url(endpoint.url)} timed out after {time.monotonic() - started:.0f}s",
                service=SERVICE,
            ) from exc
        except openai.APIConnectionError as exc:
            raise ServiceUnavailableError(
                f"{SERVICE} {redact_url(endpoint.url)}: connection failed", service=SERVICE
            ) from exc
        return reply_from_json(_json.loads(raw.content), endpoint=endpoint.url)

    async def _make_sdk_client(self, url: str) -> Any:
        # Off the loop: importing the SDK would stall every task for half a second.
        openai = await import_off_loop("openai", "openai.resources.chat")
        return openai.AsyncOpenAI(
            base_url=url,
            api_key=self._api_key,
            max_retries=0,  # our retry policy decides, with the limiter in the loop
            timeout=self._request_timeout,
            http_client=await sdk_http_client(self.runtime),
        )


_SDK_PARAMS = frozenset({"max_tokens", "temperature", "top_p", "seed", "tools"})
