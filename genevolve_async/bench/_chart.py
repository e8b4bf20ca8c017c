"""The bench's chart: efficiency and throughput against rollouts in flight, per runner.

Two panels side by side. On the left, efficiency (achieved over theoretical
throughput, 1 at most in a run without queueing) for ours and each
reference runner: the panel where they differ, since at every level they
all sit under one bound. On the right, throughput against the theoretical
bound (in flight / critical path), in rollouts per second, to show the
scale.

Drawn with matplotlib, the ``bench`` extra (``pip install
'genevolve-async[bench]'``); without it :func:`draw_sweep_chart` raises
:class:`ChartUnavailable` with that advice, and the bench prints it and goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ChartUnavailable", "SweepPoint", "draw_sweep_chart"]

THEORETICAL = "theoretical"
_COLOURS = {
    THEORETICAL: "#888888",
    "genevolve-async": "#1f6fc5",
    "bare": "#3a9d4f",
    "threaded": "#d0503c",
}


class ChartUnavailable(RuntimeError):
    """matplotlib is not installed."""


@dataclass(kw_only=True, slots=True, frozen=True)
class SweepPoint:
    """One runner at one level of in-flight rollouts."""

    runner: str
    concurrency: int
    throughput: float
    """Rollouts per second."""
    efficiency: float | None = None
    """Achieved over theoretical throughput (``None`` for the bound itself)."""


def _order(runner: str) -> int:
    return list(_COLOURS).index(runner) if runner in _COLOURS else len(_COLOURS)


def _label(axis: Any, x: float, y: float, text: str, colour: str) -> None:
    """The figure beside its point, so a run of one level still reads as numbers."""
    axis.annotate(
        text, (x, y), textcoords="offset points", xytext=(6, 4), fontsize="small", color=colour
    )


def draw_sweep_chart(points: Sequence[SweepPoint], path: Path, *, title: str) -> Path:
    """Draw the two panels into a PNG at ``path`` (blocking; a second or so).

    Raises:
        ValueError: No points.
        ChartUnavailable: matplotlib is not installed.
    """
    if not points:
        raise ValueError("no sweep points to draw")
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display, no GUI toolkit
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullLocator
    except ImportError as exc:
        raise ChartUnavailable(
            "the chart needs matplotlib: pip install 'genevolve-async[bench]'"
        ) from exc
    levels = sorted({p.concurrency for p in points})
    runners = sorted({p.runner for p in points}, key=_order)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=100)
    try:
        for runner in runners:
            series = sorted((p for p in points if p.runner == runner), key=lambda p: p.concurrency)
            colour = _COLOURS.get(runner, "#000000")
            xs = [p.concurrency for p in series]
            style = {"color": colour, "marker": "o", "linewidth": 2, "label": runner}
            throughputs = [p.throughput for p in series]
            right.plot(xs, throughputs, linestyle="--" if runner == THEORETICAL else "-", **style)
            if len(levels) == 1:  # a lone point reads better as a number
                _label(right, xs[0], throughputs[0], f"{throughputs[0]:.1f}", colour)
            effs = [(p.concurrency, p.efficiency) for p in series if p.efficiency is not None]
            if effs and runner != THEORETICAL:
                left.plot([x for x, _ in effs], [e for _, e in effs], **style)
                if len(levels) == 1:
                    _label(left, effs[0][0], effs[0][1], f"{effs[0][1]:.2f}", colour)
        left.axhline(1.0, color=_COLOURS[THEORETICAL], linestyle="--", linewidth=1, label="bound")
        left.set_ylim(0, max(1.05, *(p.efficiency or 0 for p in points)) * 1.05)
        left.set_ylabel("efficiency (achieved / theoretical rollouts/s)")
        left.set_title("efficiency vs rollouts in flight")
        right.set_ylabel("throughput (rollouts/s)")
        right.set_title("throughput vs the theoretical bound")
        for axis in (left, right):
            if len(levels) > 1:
                axis.set_xscale("log", base=2)
            axis.xaxis.set_major_locator(FixedLocator(levels))
            axis.xaxis.set_minor_locator(NullLocator())
            axis.set_xticklabels([str(level) for level in levels])
            axis.set_xlabel("rollouts in flight" + (" (log scale)" if len(levels) > 1 else ""))
            axis.grid(True, alpha=0.3)
            axis.margins(x=0.08)
            axis.legend(loc="best", fontsize="small")
        right.set_ylim(0, max(p.throughput for p in points) * 1.15 or 1.0)
        fig.suptitle(title)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
