"""A simulated policy: an OpenAI chat-completions server with a scripted agent.

It reads the conversation and decides the next action deterministically, so
tests and the bench get real multi-round rollouts without a model. The
default script is SPEC's 4-round rollout: ``search`` (2 queries),
``image_search`` (5 results), ``query_knowledge``, then an answer citing the
images it was shown. Directives in the request text change the script for
one rollout: ``[sim:rounds=6]``, ``[sim:parallel=3]``, ``[sim:never-answer]``,
``[sim:malformed]``, ``[sim:malformed-once]``, ``[sim:truncate-once]``,
``[sim:unknown-tool-once]``, ``[sim:answer=IMG_009,IMG_001]``, and
``[sim:canned=NAME]`` (the first round replies with the text registered as
``canned_replies[NAME]``: a recorded bad reply, say).

Besides the HTTP faults of :class:`Faults` (429, 500, connection resets,
slow bodies trickled past the client's timeout), a replica can die: :meth:`kill`
drops every request under way and every later one without an answer, until
:meth:`revive`.
"""

from __future__ import annotations

import asyncio
import random
import re
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web

from .. import _json
from ._common import Faults, Latency, json_response, reset_midway, trickle
from ._server import Stats, counting_middleware

__all__ = ["PolicyScript", "SimPolicy"]

SKILLS = (
    "spatial_layout",
    "aesthetic_drawing",
    "text_rendering",
    "creative_drawing",
    "anatomy_body_coherence",
    "attribute_binding",
    "physical_material_consistency",
    "quantity_counting",
)
_DIRECTIVE = re.compile(r"\[sim:([a-z_-]+)(?:=([^\]]*))?\]")
_IMG_ID = re.compile(r"\bIMG_\d{3}\b")


@dataclass(kw_only=True, slots=True)
class PolicyScript:
    """The scripted agent's default behaviour."""

    rounds: int = 4
    """The round that answers (earlier rounds call tools)."""
    parallel_tool_calls: int = 1
    """Tool calls per tool round."""
    search_queries: int = 2
    image_top_k: int = 5
    tools: tuple[str, ...] = ("search", "image_search", "query_knowledge")
    """Tools used in turn by the tool rounds."""
    think: bool = True


@dataclass(kw_only=True, slots=True)
class _Plan:
    rounds: int
    parallel: int
    flags: set[str] = field(default_factory=set)
    answer_ids: list[str] | None = None
    canned: str = ""


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class SimPolicy:
    """The simulated policy server (``/v1/chat/completions``, ``/v1/models``)."""

    def __init__(
        self,
        *,
        script: PolicyScript | None = None,
        latency: Latency | None = None,
        faults: Faults | None = None,
        model: str = "GenEvolve",
        seed: int = 0,
        name: str = "policy",
        record_times: bool = False,
        canned_replies: Mapping[str, str] | None = None,
    ) -> None:
        self.script = script or PolicyScript()
        self.latency = latency or Latency()
        self.faults = faults or Faults()
        self.model = model
        self.name = name
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.prompts: Counter[str] = Counter()
        """Requests seen per user request text (which rollouts this server served)."""
        self.down = False
        """When true every request fails with 503 (a replica that answers but cannot serve)."""
        self.dead = False
        """When true the replica is gone: connections drop without an answer (see :meth:`kill`)."""
        self.kills = 0
        """Requests dropped because the replica was dead or died under them."""
        self.canned_replies: dict[str, str] = dict(canned_replies or {})
        """Reply texts for ``[sim:canned=NAME]``, by name."""
        self._queued: list[tuple[int, float | None, Any]] = []
        # Transports of the chat requests under way: kill() drops them.
        self._live: set[asyncio.Transport] = set()
        self.app = web.Application(
            middlewares=[counting_middleware(self.stats, record_times=record_times)],
            client_max_size=64 * 2**20,
        )
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_get("/v1/models", self._models)

    def fail_next(
        self, count: int, status: int = 500, *, retry_after: float | None = None, body: Any = None
    ) -> None:
        """Make the next ``count`` chat requests fail with ``status`` (and ``body``, if given)."""
        self._queued.extend([(status, retry_after, body)] * count)

    def kill(self) -> int:
        """Die: drop the requests under way and refuse every later one by dropping it.

        A client sees its connection end without an answer (a crashed vLLM
        replica, or its node gone). :meth:`revive` brings the replica back.

        Returns:
            How many requests under way were dropped.
        """
        self.dead = True
        live, self._live = self._live, set()
        for transport in live:
            transport.abort()
        self.kills += len(live)
        self.stats.faults["killed"] += len(live)
        return len(live)

    def revive(self) -> None:
        """Come back after :meth:`kill`: serve requests again."""
        self.dead = False

    def _drop(self, request: web.Request) -> web.Response:
        """Answer a request to a dead replica: drop its connection (the answer goes nowhere)."""
        self.kills += 1
        self.stats.faults["killed"] += 1
        if request.transport is not None:
            request.transport.abort()
        return json_response({"error": {"message": "replica dead"}}, status=503)

    async def _models(self, request: web.Request) -> web.Response:
        if self.dead:
            return self._drop(request)
        if self.down:
            return json_response({"error": "replica down"}, status=503)
        return json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.dead:
            return self._drop(request)
        transport = request.transport
        if transport is None:  # the client is already gone
            return json_response({"error": {"message": "no connection"}}, status=499)
        self._live.add(transport)
        try:
            return await self._serve_chat(request)
        finally:
            self._live.discard(transport)

    async def _serve_chat(self, request: web.Request) -> web.StreamResponse:
        body = _json.loads(await request.read())
        messages: list[dict[str, Any]] = body.get("messages") or []
        prompt = next((_message_text(m) for m in messages if m.get("role") == "user"), "")
        self.prompts[prompt] += 1
        if self.down:
            return json_response({"error": {"message": "replica down"}}, status=503)
        if self._queued:
            status, retry_after, canned = self._queued.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            if canned is None:
                canned = {"error": {"message": f"simulated {status}"}}
            return json_response(canned, status=status, headers=headers)
        transport_fault = self.faults.draw_transport(self.rng)
        if transport_fault is not None:
            self.stats.faults[transport_fault] += 1
            if transport_fault == "reset":
                return await reset_midway(request)
        # One fault per request: a slow body is not also a 429.
        fault = self.faults.draw(self.rng) if transport_fault is None else None
        if fault is not None:
            self.stats.faults[str(fault)] += 1
            return self.faults.response(fault)
        delay = self.latency.sample(self.rng)
        if delay:
            await anyio.sleep(delay)
        native = bool(body.get("tools"))
        content, tool_calls, finish = self._decide(prompt, messages, native)
        prompt_tokens = sum(len(_message_text(m)) for m in messages) // 4
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        response = json_response(
            {
                "id": f"chatcmpl-{self.stats.requests}",
                "object": "chat.completion",
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content or "") // 4 + 1,
                    "total_tokens": prompt_tokens + len(content or "") // 4 + 1,
                },
            }
        )
        if transport_fault == "slow":
            return await trickle(request, response, self.faults.slow_seconds)
        return response

    # -- the scripted agent ----------------------------------------------------

    def _plan(self, prompt: str) -> _Plan:
        plan = _Plan(rounds=self.script.rounds, parallel=self.script.parallel_tool_calls)
        for key, value in _DIRECTIVE.findall(prompt):
            if key == "rounds" and value.isdigit():
                plan.rounds = max(1, int(value))
            elif key == "parallel" and value.isdigit():
                plan.parallel = max(1, int(value))
            elif key == "answer":
                plan.answer_ids = [v.strip() for v in value.split(",") if v.strip()]
            elif key == "canned":
                plan.canned = value.strip()
            else:
                plan.flags.add(key)
        return plan

    def _decide(
        self, prompt: str, messages: list[dict[str, Any]], native: bool
    ) -> tuple[str | None, list[dict[str, Any]] | None, str]:
        plan = self._plan(prompt)
        round_no = sum(1 for m in messages if m.get("role") == "assistant") + 1
        last_user = next(
            (_message_text(m) for m in reversed(messages) if m.get("role") in ("user", "tool")), ""
        )
        final = "FINAL STEP" in last_user
        topic = " ".join(_DIRECTIVE.sub("", prompt).split()[:6]) or "the subject"
        think = (
            f"<think>Round {round_no}: planning for {topic}.</think>\n" if self.script.think else ""
        )

        canned = self.canned_replies.get(plan.canned) if plan.canned else None
        if canned is not None and round_no == 1:
            return canned, None, "stop"
        if "malformed" in plan.flags or ("malformed-once" in plan.flags and round_no == 1):
            return (
                think + '<tool_call>{"name": "search", "arguments": {"queries": [</tool_call>',
                None,
                "stop",
            )
        if "truncate-once" in plan.flags and round_no == 1:
            return "<think>" + "long deliberation " * 40, None, "length"
        if "never-answer" not in plan.flags and (final or round_no >= plan.rounds):
            return think + self._answer(plan, messages, topic), None, "stop"
        if "unknown-tool-once" in plan.flags and round_no == 1:
            calls = [("paint_picture", {"subject": topic})]
        else:
            tool = self.script.tools[(round_no - 1) % len(self.script.tools)]
            calls = [
                (tool, self._arguments(tool, topic, round_no, j)) for j in range(plan.parallel)
            ]
        if native:
            return (
                think or None,
                [
                    {
                        "id": f"call_{round_no}_{j}_{zlib.crc32(topic.encode()) & 0xFFFF:04x}",
                        "type": "function",
                        "function": {"name": name, "arguments": _json.dumps(args)},
                    }
                    for j, (name, args) in enumerate(calls)
                ],
                "tool_calls",
            )
        blocks = "\n".join(
            f"<tool_call>{_json.dumps({'name': name, 'arguments': args})}</tool_call>"
            for name, args in calls
        )
        return think + blocks, None, "stop"

    def _arguments(self, tool: str, topic: str, round_no: int, j: int) -> dict[str, Any]:
        if tool == "search":
            return {
                "queries": [
                    f"{topic} fact {round_no}.{j}.{i}" for i in range(self.script.search_queries)
                ],
                "top_k": 5,
            }
        if tool == "image_search":
            return {"query": f"{topic} reference {round_no}.{j}", "top_k": self.script.image_top_k}
        if tool == "query_knowledge":
            return {"skill_name": SKILLS[(zlib.crc32(topic.encode()) + j) % len(SKILLS)]}
        return {"query": f"{topic} reference {round_no}.{j}"}

    def _answer(self, plan: _Plan, messages: list[dict[str, Any]], topic: str) -> str:
        if plan.answer_ids is not None:
            ids = plan.answer_ids
        else:
            seen: list[str] = []
            for m in messages:
                if m.get("role") in ("user", "tool"):
                    for img in _IMG_ID.findall(_message_text(m)):
                        if img not in seen:
                            seen.append(img)
            ids = seen[:2]
        ordinals = ["first", "second", "third", "fourth"]
        refs = [
            {"img_id": i, "note": f"use the {ordinals[n % 4]} reference for its look"}
            for n, i in enumerate(ids)
        ]
        ref_text = " and ".join(f"the {ordinals[n % 4]} reference image" for n in range(len(refs)))
        gen_prompt = (
            f"A detailed rendering of {topic}" + (f", matching {ref_text}" if refs else "") + "."
        )
        return (
            "<answer>"
            + _json.dumps({"gen_prompt": gen_prompt, "reference_images": refs})
            + "</answer>"
        )
