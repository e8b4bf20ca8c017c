"""The progress counters and the live status line."""

from __future__ import annotations

import io

import anyio

from genevolve_async.pipeline import BadRow
from genevolve_async.pipeline._progress import ProgressDisplay, StageProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counters_rate_and_eta() -> None:
    stage = StageProgress(name="run", total=100, skipped=10, started=50.0, clock=lambda: 60.0)
    for i in range(20):
        stage.finish(ok=i % 10 != 0, seconds=0.5)
    stage.in_flight = 3
    assert (stage.done, stage.failed) == (18, 2)
    assert stage.rate == 2.0  # 20 items in the 10 s the clock says have passed
    assert stage.eta == 35.0  # 70 left at 2 per second
    line = stage.line()
    assert line == "run  30/100  ok 18  failed 2  in flight 3  2.00/s  ETA 0:35"
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


async def test_piped_output_gets_a_plain_line_now_and_then() -> None:
    piped = io.StringIO()
    stage = StageProgress(name="run", total=4)
    stage.finish(ok=True, seconds=0.1)
    stage.finish(ok=False, seconds=0.1)
    display = ProgressDisplay([stage], stream=piped, plain_interval=0.01)
    with anyio.move_on_after(0.2):
        await display.run()
    lines = piped.getvalue().splitlines()
    assert lines and all(line.startswith("progress: run  2/4  ok 1  failed 1") for line in lines)
    assert "\x1b" not in piped.getvalue()  # no terminal codes in a log file
    quiet = io.StringIO()
    with anyio.move_on_after(0.05):
        await ProgressDisplay([stage], stream=quiet, quiet=True, plain_interval=0.01).run()
    assert quiet.getvalue() == ""


async def test_a_terminal_gets_a_live_display_with_counts_rate_and_eta() -> None:
    terminal = _Terminal()
    run = StageProgress(name="run", total=10, started=0.0, clock=lambda: 2.0)
    for i in range(4):
        run.finish(ok=i != 0, seconds=0.5)
    stages = [run, StageProgress(name="render")]
    display = ProgressDisplay(stages, stream=terminal, interval=0.01)
    assert display.live
    with anyio.move_on_after(0.05):
        await display.run()
    text = terminal.getvalue()
    assert "run" in text and "4/10" in text and "ok 3" in text and "failed 1" in text
    assert "/s" in text and "ETA 0:0" in text and "render" in text
    display.message("a note")
    assert terminal.getvalue().endswith("a note\n")


def test_only_the_first_fifty_bad_rows_are_printed() -> None:
    out = io.StringIO()
    display = ProgressDisplay([], stream=out)
    for line in range(1, 81):
        display.bad_row(BadRow(line=line, reason="no request"), "in.jsonl")
    lines = out.getvalue().splitlines()
    assert display.bad_rows == 80 and len(lines) == 51 and "only their count" in lines[-1]
