"""A simulated policy: an OpenAI chat-completions server with a scripted agent.

It reads the conversation and decides the next action deterministically, so
tests and the bench get real multi-round rollouts without a model. The
default script is SPEC's 4-round rollout: ``search`` (2 queries),
``image_search`` (5 results), ``query_knowledge``, then an answer citing the
images it was shown. Directives in the request text change the script for
one rollout: ``[sim:rounds=6]``, ``[sim:parallel=3]``, ``[sim:never-answer]``,
``[sim:malformed]``, ``[sim:malformed-once]``, ``[sim:truncate-once]``,
``[sim:unknown-tool-once]``, ``[sim:answer=IMG_009,IMG_001]``.
"""

from __future__ import annotations

import random
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web

from .. import _json
from ._common import Faults, Latency, json_response
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
        """When true every request fails with 503 (a dead replica)."""
        self._queued: list[tuple[int, float | None]] = []
        self.app = web.Application(
            middlewares=[counting_middleware(self.stats, record_times=record_times)], client_max_size=64 * 2**20
        )
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_get("/v1/models", self._models)

    def fail_next(self, count: int, status: int = 500, *, retry_after: float | None = None) -> None:
        """Make the next ``count`` chat requests fail with ``status``."""
        self._queued.extend([(status, retry_after)] * count)

    async def _models(self, request: web.Request) -> web.Response:
        if self.down:
            return json_response({"error": "replica down"}, status=503)
        return json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.Response:
        body = _json.loads(await request.read())
        messages: list[dict[str, Any]] = body.get("messages") or []
        prompt = next((_message_text(m) for m in messages if m.get("role") == "user"), "")
        self.prompts[prompt] += 1
        if self.down:
            return json_response({"error": {"message": "replica down"}}, status=503)
        if self._queued:
            status, retry_after = self._queued.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            return json_response(
                {"error": {"message": f"simulated {status}"}}, status=status, headers=headers
            )
        fault = self.faults.draw(self.rng)
        if fault is not None:
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
        return json_response(
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
