"""Progress of a batch or a bench run: counters per stage and a live display.

On a terminal, a ``rich`` progress display keeps one line per stage (a bar,
done/total, ok, failed, in flight, rate, ETA), redrawn twice a second from
our own task: no refresh thread. Elsewhere (a log file, CI) a plain status
line per stage is printed every ``plain_interval`` seconds, so a long run
is never silent. Nothing is drawn when asked to be quiet; bad input rows
are reported either way, since they need fixing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TextIO

import anyio
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

__all__ = ["ProgressDisplay", "StageProgress"]

_MAX_BAD_SHOWN = 50
PLAIN_INTERVAL = 15.0
"""Seconds between plain status lines when the output is not a terminal."""


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
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    """The clock ``started`` was read from (tests pass a fixed one)."""

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
        elapsed = self.clock() - self.started
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
    """Draws the stages' progress and reports bad rows.

    Args:
        stages: The counters to show.
        quiet: Draw nothing (bad rows are still reported).
        stream: Where to write (default: standard error).
        interval: Seconds between redraws on a terminal.
        plain_interval: Seconds between plain status lines elsewhere.
    """

    def __init__(
        self,
        stages: Sequence[StageProgress],
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        interval: float = 0.5,
        plain_interval: float = PLAIN_INTERVAL,
    ) -> None:
        self.stages = list(stages)
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.plain_interval = plain_interval
        self.quiet = quiet
        self.live = not quiet and _is_tty(self.stream)
        self.bad_rows = 0
        self._progress: Progress | None = None
        self._tasks: list[TaskID] = []
        if self.live and self.stages:
            self._progress = _rich_progress(self.stream)
            width = max(len(stage.name) for stage in self.stages)
            self._tasks = [
                self._progress.add_task(
                    stage.name.ljust(width),
                    total=None,
                    count="0",
                    ok=0,
                    failed=0,
                    in_flight=0,
                    rate="",
                    eta="",
                )
                for stage in self.stages
            ]

    @asynccontextmanager
    async def shown(self) -> AsyncIterator[None]:
        """Show progress while the block runs; its exception comes out as it was raised."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.run)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # Only the block can fail (the display does not): no group for one error.
            if len(group.exceptions) == 1:
                raise group.exceptions[0]  # noqa: B904 - the group only wrapped it
            raise

    async def run(self) -> None:
        """Redraw (terminal) or print plain lines (elsewhere) until cancelled."""
        if self.quiet or not self.stages:
            await anyio.sleep_forever()
        if self._progress is None:
            while True:
                await anyio.sleep(self.plain_interval)
                self.print_plain()
        self._progress.start()
        try:
            while True:
                self.draw()
                await anyio.sleep(self.interval)
        finally:
            self.clear()

    def draw(self) -> None:
        """Redraw the live display now (nothing when not on a terminal)."""
        if self._progress is None:
            return
        for task, stage in zip(self._tasks, self.stages, strict=True):
            eta = stage.eta
            finished = stage.skipped + stage.done + stage.failed
            self._progress.update(
                task,
                total=stage.total,
                completed=finished,
                count=f"{finished}/{stage.total}" if stage.total is not None else str(finished),
                ok=stage.done,
                failed=stage.failed,
                in_flight=stage.in_flight,
                rate=f"{stage.rate:.2f}/s",
                eta=f"ETA {_clock(eta)}" if eta is not None else "",
            )
        self._progress.refresh()

    def print_plain(self) -> None:
        """Print one plain status line per stage (for logs)."""
        width = max((len(stage.name) for stage in self.stages), default=0)
        for stage in self.stages:
            self.stream.write(f"progress: {stage.line(width)}\n")
        self.stream.flush()

    def clear(self) -> None:
        """Take the live display off the screen, so other output starts where it began."""
        if self._progress is not None and self._progress.live.is_started:
            self.draw()
            self._progress.stop()

    def bad_row(self, bad: object, source: str) -> None:
        """Report a skipped input row (the first fifty; the rest are counted)."""
        self.bad_rows += 1
        if self.bad_rows <= _MAX_BAD_SHOWN:
            self.message(f"skipped bad input row: {source}: {bad}")
        elif self.bad_rows == _MAX_BAD_SHOWN + 1:
            self.message("more bad input rows follow; only their count is reported")

    def message(self, text: str) -> None:
        """Print a line above the live display."""
        if self._progress is not None and self._progress.live.is_started:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
            return
        self.stream.write(text + "\n")
        self.stream.flush()


def _rich_progress(stream: TextIO) -> Progress:
    console = Console(file=stream, force_terminal=True, highlight=False)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[count]}"),
        TextColumn("ok {task.fields[ok]}  failed {task.fields[failed]}"),
        TextColumn("in flight {task.fields[in_flight]}"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[eta]}"),
        console=console,
        auto_refresh=False,  # we redraw from our own task: no refresh thread
        transient=False,
    )


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
