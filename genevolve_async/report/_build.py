"""``genevolve-async report``: one run folder (or two) as one HTML file.

The page is written in one pass with placeholders where thumbnails go,
then the thumbnails are made on a thread pool and put in. Everything here
blocks; the command runs it in a worker thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .._version import __version__
from ..pipeline._results import write_text
from ._assets import SCRIPT, STYLE
from ._cards import CardContext, item_card
from ._load import RunData, load_run
from ._markup import esc, json_script
from ._page import compare_section, filters_bar, groups_section, summary_section
from ._stats import item_overall, run_stats
from ._thumbs import ImageMode, Thumbnails

__all__ = ["ReportInfo", "build_report"]


@dataclass(kw_only=True, slots=True, frozen=True)
class ReportInfo:
    """What :func:`build_report` wrote."""

    path: Path
    items: int
    thumbnails: int
    """Thumbnails made (each image once per size)."""
    html_bytes: int
    image_bytes: int
    """Thumbnail bytes (inside the page for ``embed``, beside it for ``files``)."""
    seconds: float


def build_report(
    run_dir: str | Path,
    output: str | Path | None = None,
    *,
    compare: str | Path | None = None,
    gt_root: str | Path | None = None,
    images: ImageMode = "embed",
    workers: int | None = None,
) -> ReportInfo:
    """Write the HTML report of a run folder (blocking).

    Args:
        run_dir: A folder ``run``, ``render``, ``evaluate`` or ``pipeline`` wrote.
        output: The HTML file (default: ``report.html`` in the run folder).
        compare: A second run folder over the same rows (``report RUN_A RUN_B``).
        gt_root: The folder relative ``gt_image`` paths resolve against
            (default: the run folder, then its parent).
        images: ``embed`` thumbnails in the page, or write them to
            ``<output stem>_files/`` beside it.
        workers: Threads making thumbnails.

    Returns:
        Where the report went, with its size and build time.

    Raises:
        ConfigurationError: A folder holds no stage's output.
    """
    started = time.perf_counter()
    run = load_run(run_dir)
    other = load_run(compare) if compare is not None else None
    dest = Path(output) if output is not None else run.folder / "report.html"
    thumbs = Thumbnails(
        mode=images,
        files_dir=dest.parent / f"{dest.stem}_files",
        relative_to=dest.parent,
        workers=workers,
    )
    roots = [Path(gt_root)] if gt_root is not None else []
    roots += [run.folder, run.folder.parent]
    page = _page(run, other, thumbs, roots)
    page = thumbs.fill(page)
    write_text(dest, page)
    return ReportInfo(
        path=dest,
        items=len(run.items),
        thumbnails=thumbs.made,
        html_bytes=len(page.encode("utf-8")),
        image_bytes=thumbs.bytes,
        seconds=time.perf_counter() - started,
    )


def _page(run: RunData, other: RunData | None, thumbs: Thumbnails, roots: list[Path]) -> str:
    stats = run_stats(run)
    ctx = CardContext(thumbs=thumbs, folder=run.folder, gt_roots=roots)
    sections = [summary_section(stats)]
    title = f"{run.name} vs {other.name}" if other is not None else run.name
    if other is not None:
        ctx.compare = {str(item.get("id")): item for item in other.items}
        ctx.compare_folder = other.folder
        ctx.compare_name = other.name
        deltas = [
            b - a
            for item in run.items
            if (a := item_overall(item)) is not None
            and (b := item_overall(ctx.compare.get(str(item.get("id"))) or {})) is not None
        ]
        sections.insert(0, compare_section(stats, run_stats(other), run.name, other.name, deltas))
    index_of = {str(item.get("id")): i for i, item in enumerate(run.items)}
    sections.append(groups_section(run.items, index_of, ctx))  # marks the best samples
    cards = "".join(item_card(item, i, ctx) for i, item in enumerate(run.items))
    problems = "".join(f"<li>{esc(p)}</li>" for p in run.problems)
    meta = {
        "run": str(run.folder),
        "compare": str(other.folder) if other is not None else None,
        "stages": run.stages,
        "items": len(run.items),
        "splits": [
            {"field": s.field, "value": s.value, "figures": dict(s.figures)} for s in stats.splits
        ],
        "splits_source": stats.splits_source,
        "version": __version__,
    }
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        # No network: nothing on this page may load from anywhere but the page itself.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data: 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{esc(title)} · genevolve-async report</title><style>{STYLE}</style></head><body><main>"
        f'<h1>{esc(title)}</h1><p class="muted">{esc(run.folder)} · {len(run.items)} items · stages '
        f"{esc(', '.join(run.stages))} · generated {generated} by genevolve-async {esc(__version__)}</p>"
        f"{f'<ul class=bad>{problems}</ul>' if problems else ''}"
        f"{''.join(sections)}<section><h2>Items</h2>{filters_bar(run.items, compare=other is not None)}"
        f'<div id="cards">{cards}</div></section></main>'
        f"{json_script('report-data', meta)}<script>{SCRIPT}</script></body></html>"
    )
