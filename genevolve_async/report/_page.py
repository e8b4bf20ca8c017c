"""The page around the cards: summary tables and charts, groups, comparison, filters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ._cards import CardContext, rendered_path, split_label
from ._markup import esc
from ._stats import METRICS, RunStats, Split, item_overall
from ._svg import bar_chart, histogram

__all__ = ["compare_section", "filters_bar", "groups_section", "summary_section"]

_GROUP_SIDE = 112
_FIELD_TITLES = {
    "eval_type": "By eval_type",
    "category": "By category",
    "difficulty": "By difficulty",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return esc(value)


def splits_table(splits: Sequence[Split], *, css: str = "splits") -> str:
    """The summary table: counts and the six figures per split."""
    head = "".join(f"<th>{esc(short)}</th>" for _, short in METRICS)
    rows = []
    for split in splits:
        f = split.figures
        label = "all" if split.field == "all" else f"{split.field}: {split.value}"
        cells = "".join(f'<td data-metric="{key}">{_fmt(f.get(key))}</td>' for key, _ in METRICS)
        rows.append(
            f'<tr class="{"all" if split.field == "all" else ""}" '
            f'data-split="{esc(split.field)}:{esc(split.value)}"><td>{esc(label)}</td>'
            f"<td>{_fmt(f.get('count_eval_success'))}</td><td>{_fmt(f.get('denominator'))}</td>"
            f"<td>{_fmt(f.get('missing_or_failed'))}</td>{cells}</tr>"
        )
    return (
        f'<table class="t {css}"><thead><tr><th>split</th><th>ok</th><th>n</th>'
        f"<th>missing</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _counts(counter: Counter[str]) -> str:
    if not counter:
        return '<span class="muted">none</span>'
    return "".join(
        f'<span class="chip">{esc(key)} <b>{value}</b></span>'
        for key, value in counter.most_common()
    )


def summary_section(stats: RunStats) -> str:
    """Scores (table and a bar chart per split field), outcomes, histograms, latency."""
    parts = ['<section id="summary"><h2>Summary</h2>']
    if stats.splits:
        parts.append(
            f'<div class="panel"><h3>Scores <span class="muted">({esc(stats.splits_source)})'
            f"</span></h3>{splits_table(stats.splits)}</div>"
        )
        charts = []
        for field, title in _FIELD_TITLES.items():
            rows = [(s.value, s.figures) for s in stats.splits if s.field == field]
            whole = [("all", s.figures) for s in stats.splits if s.field == "all"]
            if rows:
                charts.append(
                    f'<div class="panel"><h3>{title}</h3>{bar_chart(whole + rows, METRICS[:5])}</div>'
                )
        parts.append(f'<div class="grid">{"".join(charts)}</div>')
    else:
        parts.append('<div class="panel muted">Not judged yet: no scores in this folder.</div>')
    stage_rows = "".join(
        f"<tr><td>{esc(stage)}</td><td>{summary.items}</td><td>{summary.ok}</td>"
        f"<td>{_counts(summary.terminations) if stage == 'run' else ''}</td>"
        f"<td>{_counts(summary.errors)}</td></tr>"
        for stage, summary in stats.stages.items()
    )
    parts.append(
        '<div class="panel"><h3>Stages</h3><table class="t stages"><tr><th>stage</th>'
        f"<th>items</th><th>ok</th><th>terminations</th><th>failures by kind</th></tr>{stage_rows}</table></div>"
    )
    if stats.rounds or stats.tool_calls:
        parts.append(
            '<div class="grid">'
            f'<div class="panel"><h3>Rounds per rollout</h3>{histogram(stats.rounds, label="rounds")}</div>'
            f'<div class="panel"><h3>Tool calls per rollout</h3>'
            f"{histogram(stats.tool_calls, label='tool calls')}</div>"
            f"{_latency(stats.latency)}</div>"
        )
    parts.append("</section>")
    return "".join(parts)


def _latency(latency: Mapping[str, Mapping[str, float]]) -> str:
    if not latency:
        return ""
    cols = ("p50", "p90", "p99", "max")
    rows = "".join(
        f"<tr><td>{esc(name)}</td>"
        + "".join(f"<td>{figures.get(c, 0.0):.2f}</td>" for c in cols)
        + "</tr>"
        for name, figures in latency.items()
    )
    head = "".join(f"<th>{c}</th>" for c in cols)
    return (
        '<div class="panel"><h3>Rollout latency (seconds)</h3>'
        f'<table class="t"><tr><th>timing</th>{head}</tr>{rows}</table></div>'
    )


def groups_section(
    items: Sequence[Mapping[str, Any]], index_of: Mapping[str, int], ctx: CardContext
) -> str:
    """Sampled runs: each prompt's K samples side by side, the best one marked."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for item in items:
        prompt_id = item.get("prompt_id")
        if isinstance(prompt_id, str) and isinstance(item.get("sample_index"), int):
            groups.setdefault(prompt_id, []).append(item)
    if not groups:
        return ""
    rows = []
    for prompt_id, samples in groups.items():
        samples = sorted(samples, key=lambda s: int(s["sample_index"]))
        scored = [(item_overall(s), str(s.get("id"))) for s in samples]
        judged = [(score, sid) for score, sid in scored if score is not None]
        best = max(judged, key=lambda p: p[0])[1] if judged else None
        if best is not None:
            ctx.best.add(best)
        cells = []
        for sample, (score, sid) in zip(samples, scored, strict=True):
            # Its own small size: the card's larger thumbnail would be embedded twice.
            src = ctx.thumbs.src(rendered_path(sample, ctx.folder), _GROUP_SIDE)
            img = (
                f'<img loading="lazy" decoding="async" src="{src}" alt="{esc(sid)}">'
                if src
                else '<div class="noimg">none</div>'
            )
            star = " ★" if sid == best else ""
            cells.append(
                f'<a class="s{" best" if sid == best else ""}" href="#item-{index_of[sid]}">'
                f"{img}<div>#{esc(sample['sample_index'])} · "
                f"{'–' if score is None else f'{score:.2f}'}{star}</div></a>"
            )
        mean = sum(s for s, _ in judged) / len(judged) if judged else None
        request = samples[0].get("question") or samples[0].get("prompt") or ""
        rows.append(
            f'<div class="g" data-prompt-id="{esc(prompt_id)}"><div class="req"><b>{esc(prompt_id)}</b>'
            f" · {esc(split_label(samples[0], 'eval_type'))}<br>{esc(request)}<br>"
            f'<span class="muted">mean {"–" if mean is None else f"{mean:.3f}"}</span></div>'
            f"{''.join(cells)}</div>"
        )
    return (
        f'<section id="groups"><h2>Sampled groups ({len(groups)} prompts)</h2>'
        f'<div class="panel groups">{"".join(rows)}</div></section>'
    )


def compare_section(
    stats_a: RunStats, stats_b: RunStats, name_a: str, name_b: str, deltas: Sequence[float]
) -> str:
    """Two runs: the whole-set figures side by side and how the per-item deltas fall."""
    whole = [
        Split(field="all", value=name, figures=s.figures)
        for name, stats in ((name_a, stats_a), (name_b, stats_b))
        for s in stats.splits
        if s.field == "all"
    ]
    table = splits_table(whole, css="compare") if whole else ""
    better = sum(1 for d in deltas if d > 0)
    worse = sum(1 for d in deltas if d < 0)
    mean = sum(deltas) / len(deltas) if deltas else 0.0
    return (
        f'<section id="compare"><h2>Compared: {esc(name_a)} → {esc(name_b)}</h2>'
        f'<div class="panel">{table}<p>{len(deltas)} items judged in both: '
        f"<b>{better}</b> better, <b>{worse}</b> worse, {len(deltas) - better - worse} equal; "
        f"mean Δ overall {mean:+.4f}. Sort the cards by Δ to see the largest changes.</p></div>"
        "</section>"
    )


def filters_bar(items: Sequence[Mapping[str, Any]], *, compare: bool) -> str:
    """Selects for the split fields and termination, a score range and the sort order."""
    parts = ['<div class="filters" id="filters">']
    for key, name in (
        ("eval-type", "eval_type"),
        ("category", "category"),
        ("difficulty", "difficulty"),
        ("termination", "termination"),
    ):
        values = sorted(
            {
                str(i.get("termination") or "unknown")
                if name == "termination"
                else split_label(i, name)
                for i in items
            }
        )
        options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        parts.append(
            f'<label>{esc(name)} <select id="f-{key}"><option value="">all</option>{options}</select></label>'
        )
    parts.append(
        '<label>score <input id="f-min" type="number" min="0" max="1" step="0.05" placeholder="min">'
        ' – <input id="f-max" type="number" min="0" max="1" step="0.05" placeholder="max"></label>'
    )
    sorts = [("index", "input order"), ("score-desc", "score ↓"), ("score-asc", "score ↑")]
    if compare:
        sorts += [("delta-desc", "Δ ↓"), ("delta-asc", "Δ ↑")]
    options = "".join(f'<option value="{k}">{esc(v)}</option>' for k, v in sorts)
    parts.append(f'<label>sort <select id="f-sort">{options}</select></label>')
    parts.append('<span id="shown"></span></div>')
    return "".join(parts)
