"""The progress counters and the live status line."""

from __future__ import annotations

import io
import time

import anyio

from genevolve_async.pipeline import BadRow
from genevolve_async.pipeline._progress import ProgressDisplay, StageProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counters_rate_and_eta() -> None:
    stage = StageProgress(name="run", total=100, skipped=10, started=time.monotonic() - 10)
    for i in range(20):
        stage.finish(ok=i % 10 != 0, seconds=0.5)
    stage.in_flight = 3
    assert (stage.done, stage.failed) == (18, 2)
    assert 1.9 < stage.rate < 2.1
    assert stage.eta is not None and 33 < stage.eta < 37  # 70 left at 2 per second
    line = stage.line()
    assert line.startswith("run  30/100  ok 18  failed 2  in flight 3  2.00/s  ETA 0:3")
    assert stage.line(8).startswith("run       30/100")
    assert StageProgress(name="x").eta is None


def test_quiet_or_piped_output_draws_nothing_but_reports_bad_rows() -> None:
    piped = io.StringIO()
    display = ProgressDisplay([StageProgress(name="run")], stream=piped)
    assert not display.live
    display.draw()
    display.bad_row(BadRow(line=3, reason="not valid JSON"), "in.jsonl")
    assert piped.getvalue() == "skipped bad input row: in.jsonl: line 3: not valid JSON\n"
    assert not ProgressDisplay([], quiet=True, stream=_Terminal()).live


async def test_a_terminal_gets_a_redrawn_status_line() -> None:
    terminal = _Terminal()
    stages = [StageProgress(name="run"), StageProgress(name="render")]
    display = ProgressDisplay(stages, stream=terminal, interval=0.01)
    with anyio.move_on_after(0.05):
        await display.run()
    text = terminal.getvalue()
    first = "\r\x1b[2Krun     0  ok 0  failed 0  in flight 0  0.00/s\n\x1b[2Krender  0  ok 0"
    assert text.startswith(first)
    assert "\r\x1b[1A\x1b[2Krun" in text  # later draws go back up over both lines
    display.clear()
    assert terminal.getvalue().endswith("\r\x1b[1A\x1b[J")


def test_only_the_first_fifty_bad_rows_are_printed() -> None:
    out = io.StringIO()
    display = ProgressDisplay([], stream=out)
    for line in range(1, 81):
        display.bad_row(BadRow(line=line, reason="no request"), "in.jsonl")
    lines = out.getvalue().splitlines()
    assert display.bad_rows == 80 and len(lines) == 51 and "only their count" in lines[-1]
