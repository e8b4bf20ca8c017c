"""Inline SVG charts: grouped horizontal bars for the splits, and count histograms.

Hand-written SVG keeps the report a single file that needs no plotting
library and no script to draw. Every label goes through ``html.escape``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["PALETTE", "bar_chart", "histogram"]

PALETTE = ("#6366f1", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#64748b")
"""One colour per metric, in ``METRICS`` order."""

_FONT = 'font-family="system-ui,sans-serif" font-size="11"'


def bar_chart(
    rows: Sequence[tuple[str, Mapping[str, float | None]]],
    metrics: Sequence[tuple[str, str]],
    *,
    width: int = 400,
) -> str:
    """Grouped horizontal bars on a 0..1 scale: one group per row, one bar per metric.

    Args:
        rows: ``(label, {metric: value})``; a missing value draws no bar.
        metrics: ``(key, short name)`` of the bars in each group, in order.
        width: The chart's width in pixels.

    Returns:
        An ``<svg>`` element.
    """
    label_w, bar_h, gap = 120, 7, 8
    plot_w = width - label_w - 42
    group_h = bar_h * len(metrics) + gap
    legend_h = 22
    height = legend_h + group_h * len(rows) + 6
    parts = [
        f'<svg class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    x = label_w
    for i, (_, short) in enumerate(metrics):
        parts.append(
            f'<rect x="{x}" y="4" width="10" height="10" rx="2" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="13" {_FONT}>{escape(short)}</text>'
        )
        x += 28 + 7 * len(short)
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        tx = label_w + plot_w * tick
        parts.append(
            f'<line x1="{tx:.1f}" y1="{legend_h}" x2="{tx:.1f}" y2="{height - 4}" '
            'stroke="#e5e7eb" stroke-width="1"/>'
        )
    for r, (label, values) in enumerate(rows):
        top = legend_h + r * group_h
        short_label = label if len(label) <= 19 else label[:18] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{top + group_h / 2 + 2:.1f}" text-anchor="end" {_FONT}>'
            f"<title>{escape(label)}</title>{escape(short_label)}</text>"
        )
        for m, (key, short) in enumerate(metrics):
            value = values.get(key)
            if value is None:
                continue
            y = top + m * bar_h
            w = max(0.0, min(1.0, float(value))) * plot_w
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" '
                f'fill="{PALETTE[m % len(PALETTE)]}"><title>{escape(label)} {escape(short)}: '
                f"{float(value):.4f}</title></rect>"
            )
        parts.append(
            f'<text x="{width - 38}" y="{top + group_h / 2 + 2:.1f}" {_FONT} fill="#374151">'
            f"{_value(values.get('overall'))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _value(value: float | None) -> str:
    return "–" if value is None else f"{float(value):.3f}"


def histogram(counts: Mapping[int, int], *, label: str, width: int = 360, height: int = 150) -> str:
    """Vertical bars of how many rollouts took each count (rounds, tool calls).

    Args:
        counts: Value to how many rollouts had it.
        label: The x axis' name.
        width: Pixels.
        height: Pixels.

    Returns:
        An ``<svg>`` element (an empty note when there are no counts).
    """
    if not counts:
        return '<p class="muted">no rollouts</p>'
    lo, hi = min(counts), max(counts)
    bins = list(range(lo, hi + 1))
    top = max(counts.values())
    plot_h = height - 36
    bar_w = min(40.0, (width - 20) / len(bins))
    left = (width - bar_w * len(bins)) / 2
    parts = [
        f'<svg class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, value in enumerate(bins):
        n = counts.get(value, 0)
        h = plot_h * n / top
        x = left + i * bar_w
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{12 + plot_h - h:.1f}" width="{max(1.0, bar_w - 2):.1f}" '
            f'height="{h:.1f}" rx="2" fill="{PALETTE[0]}"><title>{value}: {n}</title></rect>'
        )
        if len(bins) <= 24 or i % max(1, len(bins) // 12) == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 12}" text-anchor="middle" {_FONT}>'
                f"{value}</text>"
            )
        if n:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{10 + plot_h - h:.1f}" text-anchor="middle" '
                f'{_FONT} fill="#6b7280">{n}</text>'
            )
    parts.append(
        f'<text x="{width / 2:.0f}" y="{height - 1}" text-anchor="middle" {_FONT} '
        f'fill="#6b7280">{escape(label)}</text></svg>'
    )
    return "".join(parts)
