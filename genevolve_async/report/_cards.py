"""One card per item: request, images, scores, the program and its trajectory.

Each card carries its filter keys as ``data-*`` attributes (escaped like
any attribute), so the page's script filters and sorts without another copy
of the data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..judge._scoring import split_value
from ..pipeline._trajectory import registered_images, sft_messages
from ._markup import esc, link, shorten
from ._stats import METRICS, item_overall
from ._thumbs import Thumbnails
from ._trajectory import Step, trajectory_steps

__all__ = ["CardContext", "item_card", "split_label"]

RENDER_SIDE = 256
REF_SIDE = 128
RESULT_SIDE = 72
_OBSERVATION_CHARS = 420
_ARGS_CHARS = 600


@dataclass(kw_only=True, slots=True)
class CardContext:
    """What every card needs besides its item."""

    thumbs: Thumbnails
    folder: Path
    """The run folder: relative image paths resolve against it."""
    gt_roots: Sequence[Path] = ()
    """Folders relative ``gt_image`` paths may resolve against, tried in order."""
    compare: Mapping[str, Mapping[str, Any]] | None = None
    """The other run's items by id (``report RUN_A RUN_B``)."""
    compare_folder: Path | None = None
    compare_name: str = "B"
    best: set[str] = field(default_factory=set)
    """Ids that are the best sample of their prompt."""


def split_label(item: Mapping[str, Any], name: str) -> str:
    """The item's value for a filter field, read as the judge's splits read it, else ``unknown``."""
    return split_value(item, name)


def rendered_path(item: Mapping[str, Any], folder: Path | None) -> str | None:
    """The generated image of ``item``, if the render stage made one."""
    if item.get("success") is False:
        return None
    for key in ("image_path", "output_path"):
        value = item.get(key)
        if isinstance(value, str) and value:
            path = Path(value)
            if not path.is_absolute() and folder is not None:
                path = folder / path
            if path.is_file():
                return str(path)
    return None


def gt_path(item: Mapping[str, Any], roots: Sequence[Path]) -> str | None:
    """The ground-truth image of ``item``, tried against each root."""
    value = item.get("gt_image")
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    if path.is_absolute():
        return str(path) if path.is_file() else None
    for root in roots:
        if (root / path).is_file():
            return str(root / path)
    return None


def _figure(src: str | None, caption: str, *, css: str = "shot", missing: str = "none") -> str:
    if src is None:
        return (
            f'<figure class="{css}"><div class="noimg">{esc(missing)}</div>'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    return (
        f'<figure class="{css}"><img loading="lazy" decoding="async" src="{src}" '
        f'alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'
    )


def _scores(item: Mapping[str, Any]) -> str:
    scores = item.get("scores")
    if item.get("eval_success") is not True or not isinstance(scores, Mapping):
        if "eval_success" not in item:
            return '<div class="scores muted">not judged</div>'
        reason = item.get("error_kind") or "error"
        return (
            f'<div class="scores bad"><b>judge failed</b> ({esc(reason)}): '
            f"{esc(shorten(str(item.get('error') or ''), 300)[0])}</div>"
        )
    cells = "".join(
        f"<td>{esc(short)}<b>{_num(scores.get(key))}</b></td>" for key, short in METRICS[:5]
    )
    na = ' <span class="chip">text n/a</span>' if scores.get("text_accuracy_na") is True else ""
    rationale = str(item.get("rationale") or "")
    return (
        f'<div class="scores"><table class="sc"><tr>{cells}</tr></table>{na}'
        f'<p class="rationale">{esc(rationale)}</p></div>'
    )


def _num(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{float(value):.2f}"
    return "–"


def _program(item: Mapping[str, Any], ctx: CardContext) -> str:
    prompt = item.get("gen_prompt")
    if not isinstance(prompt, str) or not prompt:
        return ""
    refs = []
    for ref in item.get("reference_images") or []:
        if not isinstance(ref, Mapping):
            continue
        src = ctx.thumbs.src(ref.get("local_path"), REF_SIDE)
        caption = f"{ref.get('img_id') or '?'}: {ref.get('note') or ''}"
        source = link(ref.get("page_url"), "source") if ref.get("page_url") else ""
        refs.append(
            f"<div>{_figure(src, caption, css='ref', missing='not downloaded')}"
            f'<div class="src">{source}</div></div>'
        )
    return (
        '<div class="program"><h4>Program</h4>'
        f'<p class="gen">{esc(prompt)}</p><div class="refs">{"".join(refs)}</div></div>'
    )


def _step(step: Step, images: Mapping[str, str], ctx: CardContext) -> str:
    parts = [f'<li class="step"><span class="n">{step.number}</span><div class="body">']
    if step.think:
        head = esc(shorten(step.think.replace("\n", " "), 90)[0])
        parts.append(
            f'<details class="think"><summary>think · {head}</summary>'
            f"<pre>{esc(step.think)}</pre></details>"
        )
    for i, (name, arguments) in enumerate(step.calls):
        args = (
            arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        )
        parts.append(
            f'<div class="call"><span class="tool">{esc(name)}</span>'
            f"<code>{esc(shorten(args, _ARGS_CHARS)[0])}</code></div>"
        )
        if i < len(step.observations):
            parts.append(_observation(step, step.observations[i], images, ctx))
    for extra in step.observations[len(step.calls) :]:
        parts.append(_observation(step, extra, images, ctx))
    if step.answer is not None:
        parts.append('<div class="call"><span class="tool answer">answer</span></div>')
    if step.other:
        parts.append(f'<pre class="other">{esc(shorten(step.other, _OBSERVATION_CHARS)[0])}</pre>')
    parts.append("</div></li>")
    return "".join(parts)


def _observation(step: Step, text: str, images: Mapping[str, str], ctx: CardContext) -> str:
    short, left = shorten(text, _OBSERVATION_CHARS)
    more = f' <span class="muted">(+{left} chars)</span>' if left else ""
    thumbs = "".join(
        _figure(ctx.thumbs.src(images.get(img_id), RESULT_SIDE), img_id, css="hit", missing="–")
        for img_id in step.image_ids(text)
    )
    gallery = f'<div class="hits">{thumbs}</div>' if thumbs else ""
    return f'<div class="obs"><pre>{esc(short)}</pre>{more}{gallery}</div>'


def _trajectory(item: Mapping[str, Any], ctx: CardContext) -> str:
    raw = item.get("messages")
    if not isinstance(raw, list) or not raw:
        return ""
    _, steps = trajectory_steps(raw)
    images = registered_images(item, sft_messages(raw))
    calls = item.get("tool_calls")
    used = (
        ", ".join(f"{esc(k)} {int(v)}" for k, v in calls.items() if isinstance(v, int))
        if isinstance(calls, Mapping)
        else ""
    )
    body = "".join(_step(step, images, ctx) for step in steps)
    return (
        f'<details class="traj"><summary>Trajectory · {len(steps)} steps'
        # In a <template>: parsed, but no live DOM until the reader opens it. Two
        # thirds of a large page are trajectories, so this keeps it quick to load.
        f'{" · " + used if used else ""}</summary><template><ol class="steps">{body}</ol>'
        "</template></details>"
    )


def _compare(item: Mapping[str, Any], ctx: CardContext) -> tuple[str, str]:
    """The other run's image figure and the delta chip (empty without a comparison)."""
    if ctx.compare is None:
        return "", ""
    other = ctx.compare.get(str(item.get("id")))
    if other is None:
        return _figure(None, ctx.compare_name, missing="not in this run"), ""
    src = ctx.thumbs.src(rendered_path(other, ctx.compare_folder), RENDER_SIDE)
    a, b = item_overall(item), item_overall(other)
    label = f"{ctx.compare_name} · {_num(b)}"
    if a is None or b is None:
        return _figure(src, label), ""
    delta = b - a
    css = "up" if delta > 0 else "down" if delta < 0 else "same"
    return _figure(src, label), f'<span class="delta {css}">Δ {delta:+.2f}</span>'


def item_card(item: Mapping[str, Any], index: int, ctx: CardContext) -> str:
    """The ``<article>`` of one item."""
    item_id = str(item.get("id"))
    overall = item_overall(item)
    termination = str(item.get("termination") or "unknown")
    labels = {name: split_label(item, name) for name in ("eval_type", "category", "difficulty")}
    other = ctx.compare.get(item_id) if ctx.compare is not None else None
    other_overall = item_overall(other) if other is not None else None
    delta = other_overall - overall if other_overall is not None and overall is not None else None
    data = {
        "id": item_id,
        "index": str(index),
        "eval-type": labels["eval_type"],
        "category": labels["category"],
        "difficulty": labels["difficulty"],
        "termination": termination,
        "score": "" if overall is None else f"{overall:.4f}",
        "delta": "" if delta is None else f"{delta:.4f}",
    }
    attrs = " ".join(f'data-{key}="{esc(value)}"' for key, value in data.items())
    request = item.get("question") or item.get("prompt") or ""
    chips = "".join(
        f'<span class="chip">{esc(value)}</span>'
        for value in (*labels.values(), termination)
        if value != "unknown"
    )
    if isinstance(item.get("rounds"), int):
        chips += f'<span class="chip">{item["rounds"]} rounds</span>'
    best = ' <span class="best">★ best of group</span>' if item_id in ctx.best else ""
    render_src = ctx.thumbs.src(rendered_path(item, ctx.folder), RENDER_SIDE)
    render_missing = str(item.get("image_status") or "not rendered")
    gt_src = ctx.thumbs.src(gt_path(item, ctx.gt_roots), RENDER_SIDE)
    other_figure, delta_chip = _compare(item, ctx)
    badge = "–" if overall is None else f"{overall:.2f}"
    return (
        f'<article class="card" id="item-{index}" {attrs}>'
        f'<header><span class="iid">{esc(item_id)}</span>{chips}{best}'
        f'<span class="grow"></span>{delta_chip}<span class="badge">{badge}</span></header>'
        f'<p class="request">{esc(request)}</p>'
        '<div class="row"><div class="shots">'
        f"{_figure(render_src, 'generated', missing=shorten(render_missing, 80)[0])}"
        f"{other_figure}{_figure(gt_src, 'ground truth', missing='no ground truth')}</div>"
        f"{_scores(item)}</div>{_program(item, ctx)}{_trajectory(item, ctx)}</article>"
    )
