"""Pure parsing of the agent protocol: replies, tool calls, answer programs."""

from __future__ import annotations

from ._json import JSONRecoveryError as JSONRecoveryError
from ._json import loads_lenient as loads_lenient
from ._parse import CallProblem as CallProblem
from ._parse import ParsedReply as ParsedReply
from ._parse import ToolCall as ToolCall
from ._parse import parse_reply as parse_reply
from ._program import Program as Program
from ._program import ReferenceImage as ReferenceImage
from ._program import finalize_program as finalize_program

__all__ = [
    "CallProblem",
    "JSONRecoveryError",
    "ParsedReply",
    "Program",
    "ReferenceImage",
    "ToolCall",
    "finalize_program",
    "loads_lenient",
    "parse_reply",
]
