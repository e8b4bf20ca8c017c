"""Tools the policy calls, the Tool protocol, and the IMG_### registry."""

from __future__ import annotations

from ._base import Tool as Tool
from ._base import ToolContext as ToolContext
from ._base import tool_schema as tool_schema
from ._registry import ImageRecord as ImageRecord
from ._registry import ImageRegistry as ImageRegistry
from .knowledge import SKILL_NAMES as SKILL_NAMES
from .knowledge import QueryKnowledge as QueryKnowledge
from .knowledge import load_skills as load_skills

__all__ = [
    "SKILL_NAMES",
    "ImageRecord",
    "ImageRegistry",
    "QueryKnowledge",
    "Tool",
    "ToolContext",
    "load_skills",
    "tool_schema",
]
