"""Progress of a batch: counters per stage and a live display.

The display redraws one status line per stage on standard error twice a
second (done, failed, in flight, rate, ETA). It stays silent when
standard error is not a terminal or when asked to be quiet; bad input rows
are reported either way, since they need fixing.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import anyio

from ._inputs import BadRow

__all__ = ["ProgressDisplay", "StageProgress"]

_MAX_BAD_SHOWN = 50
_CLEAR_LINE = "\x1b[2K"
_CLEAR_BELOW = "\x1b[J"


@dataclass(kw_only=True, slots=True)
class StageProgress:
    """Live counters of one stage."""

    name: str
    done: int = 0
    """Items that succeeded in this session."""
    failed: int = 0
    """Items that failed in this session."""
    in_flight: int = 0
    skipped: int = 0
    """Items finished in an earlier session (resumed past)."""
    total: int | None = None
    """Items this stage will see (an estimate until the input is read through)."""
    started: float = field(default_factory=time.monotonic)
    durations: list[float] = field(default_factory=list)
    """Seconds each item of this session took."""

    def finish(self, ok: bool, seconds: float) -> None:
        """Count one item that just ended."""
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.durations.append(seconds)

    @property
    def rate(self) -> float:
        """Items per second in this session."""
        elapsed = time.monotonic() - self.started
        return (self.done + self.failed) / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, when it can be told."""
        if self.total is None or self.rate <= 0:
            return None
        left = self.total - self.skipped - self.done - self.failed
        return max(0.0, left / self.rate)

    def line(self, name_width: int = 0) -> str:
        """The stage's status line."""
        finished = self.skipped + self.done + self.failed
        total = f"/{self.total}" if self.total is not None else ""
        eta = self.eta
        eta_text = f"  ETA {_clock(eta)}" if eta is not None else ""
        return (
            f"{self.name:<{name_width}}  {finished}{total}  ok {self.done}  failed {self.failed}  "
            f"in flight {self.in_flight}  {self.rate:.2f}/s{eta_text}"
        )


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressDisplay:
    """Draws the stages' status line and reports bad rows.

    Args:
        stages: The counters to show.
        quiet: Never draw the status line.
        stream: Where to write (default: standard error).
        interval: Seconds between redraws.
    """

    def __init__(
        self,
        stages: Sequence[StageProgress],
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        interval: float = 0.5,
    ) -> None:
        self.stages = list(stages)
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.live = not quiet and _is_tty(self.stream)
        self.bad_rows = 0
        self._drawn = 0
        """Status lines on screen now."""

    async def run(self) -> None:
        """Redraw until cancelled (does nothing when not live)."""
        if not self.live:
            await anyio.sleep_forever()
        while True:
            self.draw()
            await anyio.sleep(self.interval)

    def draw(self) -> None:
        """Redraw the status lines now (one per stage, cut to the terminal's width)."""
        if not self.live or not self.stages:
            return
        width = max(20, shutil.get_terminal_size().columns - 1)
        name_width = max(len(stage.name) for stage in self.stages)
        lines = [stage.line(name_width)[:width] for stage in self.stages]
        self.stream.write(self._home() + "\n".join(_CLEAR_LINE + line for line in lines))
        self.stream.flush()
        self._drawn = len(lines)

    def clear(self) -> None:
        """Erase the status lines, so other output starts where they began."""
        if self._drawn:
            self.stream.write(self._home() + _CLEAR_BELOW)
            self.stream.flush()
            self._drawn = 0

    def _home(self) -> str:
        # Back to the start of the first status line drawn last time.
        up = f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""
        return "\r" + up

    def bad_row(self, bad: BadRow, source: str) -> None:
        """Report a skipped input row (the first fifty; the rest are counted)."""
        self.bad_rows += 1
        if self.bad_rows <= _MAX_BAD_SHOWN:
            self.message(f"skipped bad input row: {source}: {bad}")
        elif self.bad_rows == _MAX_BAD_SHOWN + 1:
            self.message("more bad input rows follow; only their count is reported")

    def message(self, text: str) -> None:
        """Print a line above the status line."""
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()
        self.draw()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
