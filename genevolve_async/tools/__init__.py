"""Tools the policy calls, the Tool protocol, and the IMG_### registry."""

from __future__ import annotations

from ._base import SideWork as SideWork
from ._base import Tool as Tool
from ._base import ToolContext as ToolContext
from ._base import tool_schema as tool_schema
from ._registry import ImageRecord as ImageRecord
from ._registry import ImageRegistry as ImageRegistry
from .knowledge import SKILL_NAMES as SKILL_NAMES
from .knowledge import QueryKnowledge as QueryKnowledge
from .knowledge import load_skills as load_skills
from .search import ImageCache as ImageCache
from .search import ImageCacheSettings as ImageCacheSettings
from .search import ImageCacheStats as ImageCacheStats
from .search import ImageResult as ImageResult
from .search import ImageSearch as ImageSearch
from .search import SearchBackend as SearchBackend
from .search import SerperBackend as SerperBackend
from .search import WebResult as WebResult
from .search import WebSearch as WebSearch

__all__ = [
    "SKILL_NAMES",
    "ImageCache",
    "ImageCacheSettings",
    "ImageCacheStats",
    "ImageRecord",
    "ImageRegistry",
    "ImageResult",
    "ImageSearch",
    "QueryKnowledge",
    "SearchBackend",
    "SerperBackend",
    "SideWork",
    "Tool",
    "ToolContext",
    "WebResult",
    "WebSearch",
    "load_skills",
    "tool_schema",
]
