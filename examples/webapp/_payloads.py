"""What goes over the wire: request bodies in, JSON and event payloads out.

Responses are built from public records (``AgentResult``, the agent's
events) but never copy them wholesale: the conversation and the references'
``local_path`` name files on this server, so they stay here. Every free text
that leaves (error messages, model replies, tool observations) passes
through :class:`Redactor`, which blanks the keys the app knows and absolute
filesystem paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from genevolve_async import (
    AgentEvent,
    AgentResult,
    Answered,
    Finished,
    ModelReplied,
    ReferenceImage,
    RoundStarted,
    ToolCallFinished,
    ToolCallStarted,
    scrub_secrets,
)

__all__ = [
    "ProgramRequest",
    "Redactor",
    "StreamRequest",
    "event_payload",
    "program_payload",
    "summary_payload",
]

_MAX_SEED = 2**32 - 1
_REPLY_CHARS = 2000
"""How much of a model reply an event carries (the UI shows it folded)."""
_PREVIEW_CHARS = 600
"""How much of a tool observation an event carries."""

# An absolute POSIX path: a slash not preceded by a URL or word character,
# then at least one more segment. URLs (``http://host/v1``) do not match.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.\-~])/(?:[\w.\-+@%]+/)+[\w.\-+@%]*")
_FILE_URL = re.compile(r"file://[^\s'\";,)]*")


class ProgramRequest(BaseModel):
    """Body of ``POST /v1/programs`` and ``POST /v1/images``.

    Unknown fields are refused (a typo such as ``max_round`` should not be
    silently ignored). The prompt's length and the deadline's upper bound
    are checked against the app's settings after parsing.
    """

    model_config = ConfigDict(extra="forbid")

    prompt: StrictStr = Field(description="The image request.")
    seed: StrictInt | None = Field(default=None, ge=0, le=_MAX_SEED, description="Sampling seed.")
    max_rounds: StrictInt | None = Field(default=None, ge=1, description="Round budget.")
    timeout: float | None = Field(
        default=None, gt=0, description="Deadline in seconds for the rollout and its render."
    )


class StreamRequest(ProgramRequest):
    """Body of ``POST /v1/stream``: a program request plus whether to render."""

    render: StrictBool = Field(default=True, description="Render the program after the rollout.")


class Redactor:
    """Blanks known secrets and absolute server paths out of outgoing text.

    Args:
        secrets: Keys that must never leave the process (empty ones are ignored).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def __call__(self, text: str, limit: int | None = None) -> str:
        """``text`` cleaned, then cut to ``limit`` characters.

        Cleaning comes first: a cut through a key would leave a piece of it
        that no longer matches. A long piece of a key at an edge of the text
        (somebody else's cut) is blanked too (see ``scrub_secrets``).
        """
        text = scrub_secrets(text, self._secrets)
        text = _ABSOLUTE_PATH.sub("<path>", _FILE_URL.sub("<path>", text))
        return text if limit is None else text[:limit]


def _reference(ref: ReferenceImage) -> dict[str, str]:
    # Everything but local_path, which names a file on this server.
    return {"img_id": ref.img_id, "note": ref.note, "url": ref.url, "title": ref.title,
            "page_url": ref.page_url}  # fmt: skip


def program_payload(result: AgentResult) -> dict[str, Any] | None:
    """The prompt-reference program of an answered rollout, or ``None``."""
    program = result.program
    if program is None:
        return None
    return {
        "gen_prompt": program.gen_prompt,
        "reference_images": [_reference(r) for r in program.reference_images],
    }


def summary_payload(result: AgentResult, redact: Redactor) -> dict[str, Any]:
    """The trajectory in brief: how it ended, rounds, tools, time and tokens."""
    usage = result.usage
    return {
        "rollout_id": result.rollout_id,
        "termination": result.termination,
        "rounds": result.rounds,
        "tool_calls": dict(result.tool_calls),
        "timings": result.timings.to_dict(),
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "seed": result.seed,
        "error": (
            {"kind": result.error.kind, "message": redact(result.error.message)}
            if result.error is not None
            else None
        ),
    }


def event_payload(event: AgentEvent, redact: Redactor) -> dict[str, Any]:
    """One agent event as the JSON ``data`` of its server-sent event."""
    if isinstance(event, RoundStarted):
        return {"round": event.round, "final": event.final}
    if isinstance(event, ModelReplied):
        return {
            "round": event.round,
            "seconds": round(event.seconds, 3),
            "finish_reason": event.finish_reason,
            "content": redact(event.content or "", _REPLY_CHARS),
            "completion_tokens": event.usage.completion_tokens,
        }
    if isinstance(event, ToolCallStarted):
        return {"round": event.round, "index": event.index, "call_id": event.call_id,
                "name": event.name, "arguments": event.arguments}  # fmt: skip
    if isinstance(event, ToolCallFinished):
        return {
            "round": event.round,
            "index": event.index,
            "call_id": event.call_id,
            "name": event.name,
            "ok": event.ok,
            "seconds": round(event.seconds, 3),
            "preview": redact(event.observation, _PREVIEW_CHARS),
        }
    if isinstance(event, Answered):
        return {
            "round": event.round,
            "gen_prompt": event.gen_prompt,
            "reference_images": [_reference(r) for r in event.reference_images],
        }
    assert isinstance(event, Finished)
    return {
        "program": program_payload(event.result),
        "summary": summary_payload(event.result, redact),
    }
