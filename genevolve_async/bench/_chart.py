"""A small PNG chart of achieved vs theoretical throughput, drawn with Pillow.

Pillow is already a core dependency; a plotting library would be a heavy one
for one chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = ["SweepPoint", "draw_sweep_chart"]

_W, _H = 900, 560
_LEFT, _RIGHT, _TOP, _BOTTOM = 90, 40, 60, 80
_SERIES = {
    "theoretical": (150, 150, 150),
    "genevolve-async": (30, 110, 200),
    "bare": (60, 160, 80),
    "threaded": (210, 80, 60),
}


@dataclass(kw_only=True, slots=True, frozen=True)
class SweepPoint:
    runner: str
    concurrency: int
    throughput: float


def _x(value: float, lo: float, hi: float) -> float:
    span = math.log2(hi) - math.log2(lo) or 1.0
    return _LEFT + (math.log2(value) - math.log2(lo)) / span * (_W - _LEFT - _RIGHT)


def _y(value: float, top: float) -> float:
    return _H - _BOTTOM - value / top * (_H - _TOP - _BOTTOM)


def draw_sweep_chart(points: Sequence[SweepPoint], path: Path, *, title: str) -> Path:
    """Draw rollouts/s against in-flight rollouts (log scale) for each runner."""
    if not points:
        raise ValueError("no sweep points to draw")
    levels = sorted({p.concurrency for p in points})
    lo, hi = levels[0], max(levels[-1], levels[0] * 2)
    top = max(p.throughput for p in points) * 1.1 or 1.0
    image = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(image)
    draw.text((_LEFT, 20), title, fill="black")
    draw.line(
        [(_LEFT, _TOP), (_LEFT, _H - _BOTTOM), (_W - _RIGHT, _H - _BOTTOM)], fill="black", width=2
    )
    for level in levels:
        x = _x(level, lo, hi)
        draw.line([(x, _H - _BOTTOM), (x, _H - _BOTTOM + 6)], fill="black")
        draw.text((x - 12, _H - _BOTTOM + 10), str(level), fill="black")
    for i in range(6):
        value = top * i / 5
        y = _y(value, top)
        draw.line([(_LEFT - 6, y), (_LEFT, y)], fill="black")
        draw.line([(_LEFT, y), (_W - _RIGHT, y)], fill=(235, 235, 235))
        draw.text((10, y - 6), f"{value:.0f}", fill="black")
    draw.text((_W // 2 - 60, _H - 40), "rollouts in flight (log scale)", fill="black")
    draw.text((10, _TOP - 30), "rollouts/s", fill="black")
    legend_y = _TOP
    for runner in sorted(
        {p.runner for p in points}, key=lambda r: list(_SERIES).index(r) if r in _SERIES else 99
    ):
        series = sorted((p for p in points if p.runner == runner), key=lambda p: p.concurrency)
        color = _SERIES.get(runner, (0, 0, 0))
        coords = [(_x(p.concurrency, lo, hi), _y(p.throughput, top)) for p in series]
        if len(coords) > 1:
            draw.line(coords, fill=color, width=3)
        for cx, cy in coords:
            draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=color)
        draw.rectangle([_W - 220, legend_y, _W - 205, legend_y + 10], fill=color)
        draw.text((_W - 198, legend_y - 2), runner, fill="black")
        legend_y += 18
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
