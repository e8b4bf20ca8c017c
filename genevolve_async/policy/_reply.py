"""What one chat-completion call returns, independent of the route taken."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import BadResponseError

__all__ = ["ChatReply", "TokenUsage", "reply_from_json"]


@dataclass(kw_only=True, slots=True, frozen=True)
class TokenUsage:
    """Token counts as the server reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(kw_only=True, slots=True, frozen=True)
class ChatReply:
    """The first choice of a chat completion."""

    content: str | None
    tool_calls: list[dict[str, Any]] | None = None
    """Native OpenAI tool calls as plain dicts, when the server parsed them."""
    finish_reason: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    endpoint: str = ""
    """The base URL that answered."""
    reasoning: str | None = None
    """Reasoning text a server's reasoning parser split off, if any."""


def _content_text(content: Any, service: str) -> str:
    """The text of content parts; anything else is the server's mistake, not ours."""
    if not isinstance(content, list):
        raise BadResponseError(
            f"{service}: choices[0].message.content is neither text nor a list of parts",
            service=service,
        )
    texts: list[str] = []
    for part in content:
        text = part.get("text", "") if isinstance(part, dict) else ""
        if not isinstance(text, str):
            raise BadResponseError(
                f"{service}: a content part's text is a {type(text).__name__}, not a string",
                service=service,
            )
        texts.append(text)
    return "".join(texts)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def reply_from_json(data: Any, *, endpoint: str = "", service: str = "policy") -> ChatReply:
    """Read a ``/chat/completions`` JSON body.

    Raises:
        BadResponseError: the body has no usable choice.
    """
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise BadResponseError(
            f"{service}: the chat completion has no choices[0].message", service=service
        ) from exc
    if not isinstance(message, dict):
        raise BadResponseError(f"{service}: choices[0].message is not an object", service=service)
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        # Some servers return content parts; keep their text.
        content = _content_text(content, service)
    tool_calls = message.get("tool_calls") or None
    if tool_calls is not None and not isinstance(tool_calls, list):
        tool_calls = None
    usage = data.get("usage") if isinstance(data, dict) else None
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return ChatReply(
        content=content,
        tool_calls=tool_calls,
        finish_reason=choice.get("finish_reason") if isinstance(choice, dict) else None,
        usage=TokenUsage(
            prompt_tokens=_int(usage.get("prompt_tokens")) if isinstance(usage, dict) else 0,
            completion_tokens=_int(usage.get("completion_tokens"))
            if isinstance(usage, dict)
            else 0,
        ),
        endpoint=endpoint,
        reasoning=reasoning if isinstance(reasoning, str) else None,
    )
