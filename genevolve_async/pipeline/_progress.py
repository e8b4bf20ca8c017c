"""The batch's progress counters and display (shared with the bench, so they live above both)."""

from __future__ import annotations

from .._progress import ProgressDisplay as ProgressDisplay
from .._progress import StageProgress as StageProgress

__all__ = ["ProgressDisplay", "StageProgress"]
