"""Parsing a policy reply: ``<think>``, ``<tool_call>`` blocks, ``<answer>``.

Pure functions over strings. A reply can carry its tool calls as text blocks
(the released policy's protocol) or as OpenAI native ``tool_calls`` (vLLM
with a tool parser); both come out as the same :class:`ToolCall` records.
Problems are reported as data, never raised: the agent turns them into
observations for the policy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._types import JSONObject
from ._json import JSONRecoveryError, loads_lenient, nesting_depth

__all__ = ["MAX_ARGUMENT_DEPTH", "CallProblem", "ParsedReply", "ToolCall", "parse_reply"]

MAX_ARGUMENT_DEPTH = 16
"""Tool arguments nested deeper than this are refused (no tool needs it)."""

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.DOTALL)


@dataclass(kw_only=True, slots=True, frozen=True)
class ToolCall:
    """One well-formed tool call."""

    id: str
    """The native call id, or ``call_<round>_<index>`` for text calls."""
    name: str
    arguments: JSONObject
    index: int
    """Position among the reply's calls (the order observations go back in)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class CallProblem:
    """A tool-call block we could not use, kept in call order."""

    id: str
    index: int
    name: str | None
    detail: str


@dataclass(kw_only=True, slots=True, frozen=True)
class ParsedReply:
    """What a reply asked for."""

    think: str | None = None
    calls: tuple[ToolCall | CallProblem, ...] = ()
    """Tool calls and unusable call blocks, in the model's order."""
    answer: JSONObject | None = None
    """The decoded ``<answer>`` object, when it parsed."""
    answer_problem: str | None = None
    """Why an ``<answer>`` block was unusable."""
    notes: tuple[str, ...] = field(default=())
    """Other format complaints (for the format-error observation)."""

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [c for c in self.calls if isinstance(c, ToolCall)]

    @property
    def has_calls(self) -> bool:
        return bool(self.calls)


def _split_think(content: str) -> tuple[str | None, str]:
    # Only the text up to the last close tag can hold a <think> block. Searching
    # past it would rescan the tail once per stray <think> (quadratic).
    end = content.rfind("</think>")
    if end == -1:
        return None, content
    cut = end + len("</think>")
    head, tail = content[:cut], content[cut:]
    thoughts = _THINK.findall(head)
    rest = _THINK.sub("", head) + tail
    if "</think>" in rest:
        # Qwen3 templates open the think block themselves: only the close tag
        # reaches us. Everything before the last close tag is thinking.
        head, _, rest = rest.rpartition("</think>")
        thoughts.append(head)
    think = "\n".join(t.strip() for t in thoughts if t.strip()) or None
    return think, rest


def _decode_call(raw: Any, *, call_id: str, index: int) -> ToolCall | CallProblem:
    if not isinstance(raw, dict):
        return CallProblem(
            id=call_id, index=index, name=None, detail="a tool call must be a JSON object"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        return CallProblem(
            id=call_id, index=index, name=None, detail='a tool call needs a "name" string'
        )
    args = raw.get("arguments", raw.get("parameters", {}))
    if isinstance(args, str):
        # Some models double-encode the arguments.
        try:
            args = loads_lenient(args) if args.strip() else {}
        except JSONRecoveryError:
            return CallProblem(
                id=call_id, index=index, name=name, detail="arguments are not valid JSON"
            )
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return CallProblem(
            id=call_id, index=index, name=name, detail='"arguments" must be a JSON object'
        )
    if nesting_depth(args, MAX_ARGUMENT_DEPTH) > MAX_ARGUMENT_DEPTH:
        return CallProblem(
            id=call_id, index=index, name=name, detail="arguments are nested too deeply"
        )
    return ToolCall(id=call_id, name=name.strip(), arguments=args, index=index)


def _text_calls(body: str, round_index: int) -> list[ToolCall | CallProblem]:
    calls: list[ToolCall | CallProblem] = []
    for index, block in enumerate(_TOOL_CALL.findall(body)):
        call_id = f"call_{round_index}_{index}"
        try:
            raw = loads_lenient(block)
        except JSONRecoveryError:
            calls.append(
                CallProblem(
                    id=call_id, index=index, name=None, detail="the tool call is not valid JSON"
                )
            )
            continue
        calls.append(_decode_call(raw, call_id=call_id, index=index))
    return calls


def _native_calls(native: Sequence[Any], round_index: int) -> list[ToolCall | CallProblem]:
    calls: list[ToolCall | CallProblem] = []
    for index, item in enumerate(native):
        call_id = f"call_{round_index}_{index}"
        if isinstance(item, dict):
            call_id = str(item.get("id") or call_id)
            function = item.get("function")
            if isinstance(function, dict):
                calls.append(_decode_call(function, call_id=call_id, index=index))
                continue
        calls.append(
            CallProblem(id=call_id, index=index, name=None, detail="malformed native tool call")
        )
    return calls


def _parse_answer(body: str) -> tuple[JSONObject | None, str | None]:
    match = _ANSWER.search(body)
    if match is None:
        return None, None
    try:
        value = loads_lenient(match.group(1))
    except JSONRecoveryError:
        return None, "the <answer> block is not valid JSON"
    if not isinstance(value, dict):
        return None, "the <answer> block must hold a JSON object"
    prompt = value.get("gen_prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return None, 'the answer needs a non-empty "gen_prompt" string'
    refs = value.get("reference_images", [])
    if refs is not None and not isinstance(refs, list):
        return None, '"reference_images" must be a list'
    return value, None


def parse_reply(
    content: str | None,
    native_tool_calls: Sequence[Any] | None = None,
    *,
    round_index: int = 1,
) -> ParsedReply:
    """Parse one policy reply.

    Args:
        content: the message text (may be ``None`` in native mode).
        native_tool_calls: OpenAI ``message.tool_calls`` as plain dicts.
        round_index: used to name text-mode call ids.
    """
    think, body = _split_think(content or "")
    calls = _native_calls(native_tool_calls, round_index) if native_tool_calls else []
    if not calls:
        calls = _text_calls(body, round_index)
    answer, answer_problem = _parse_answer(body)
    notes: list[str] = []
    if "<tool_call>" not in body and "</tool_call>" in body:
        notes.append("a </tool_call> tag has no opening <tool_call>")
    if "<answer>" not in body and "</answer>" in body:
        notes.append("an </answer> tag has no opening <answer>")
    return ParsedReply(
        think=think,
        calls=tuple(calls),
        answer=answer,
        answer_problem=answer_problem,
        notes=tuple(notes),
    )
