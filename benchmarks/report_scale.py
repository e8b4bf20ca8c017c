"""How long the HTML report takes, and how big it gets, at the benchmark's scale.

Synthesizes a judged run folder shaped like GenEvolve-Bench with
``--samples-per-prompt 4`` (594 prompts x 4 samples: a 512 px render per
sample, a 512 px ground truth per prompt, five 384 px image-search results
per rollout of which two are cited, a four-round trajectory), then builds
the report with thumbnails embedded and written beside it::

    python -m benchmarks.report_scale --prompts 594 --samples 4 --folder /tmp/report-scale

Run it on its own (it writes ~15k images); the figures go in the README.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from genevolve_async.judge import aggregate, summary_dict
from genevolve_async.pipeline._results import write_json_rows, write_text
from genevolve_async.report import build_report

TRACKS = ("Knowledge-Anchored", "Quality-Anchored")
CATEGORIES = ("architecture_landmark", "animal", "product", "person", "artwork", "text_design")


_POOL: dict[tuple[int, int], Image.Image] = {}


def _image(path: Path, side: int, rng: random.Random) -> None:
    # Distinct pictures, as a real run's are (the report embeds identical
    # thumbnails once, so repeated bytes would flatter its size): one of 48
    # drawn backgrounds per size, with a mark of its own on each file.
    key = (side, rng.randrange(48))
    if key not in _POOL:
        _POOL[key] = _draw(side, rng)
    image = _POOL[key].copy()
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y, r = rng.randrange(side), rng.randrange(side), rng.randrange(side // 12, side // 5)
        draw.rectangle(
            (x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3))
        )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    path.write_bytes(buffer.getvalue())


def _draw(side: int, rng: random.Random) -> Image.Image:
    # Shapes on a gradient: compresses like a picture, not like noise or a flat fill.
    base = tuple(rng.randrange(256) for _ in range(3))
    image = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    image = Image.blend(image, Image.new("RGB", (side, side), base), 0.6)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(side), rng.randrange(side)
        r = rng.randrange(side // 10, side // 3)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def _observation(query: str, images: list[dict[str, Any]]) -> str:
    lines = [f"--- image search result for [{query}] ---"]
    for img in images:
        lines += [
            f"{img['img_id']}: title: {img['title']}",
            f"  url: {img['url']}",
            f"  local_path: {img['local_path']}",
            f"  page_url: {img['page_url']}",
        ]
    return "\n".join(lines)


def synthesize(folder: Path, prompts: int, samples: int, seed: int = 0) -> None:
    """Write the run folder: images, results.json, results_eval.json, summary.json."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "gt").mkdir(exist_ok=True)
    (folder / "cache").mkdir(exist_ok=True)
    rendered: list[dict[str, Any]] = []
    judged: list[dict[str, Any]] = []
    for p in range(prompts):
        gt = f"gt/case_{p:05d}.jpg"
        _image(folder / gt, 512, rng)
        row = {
            "question": f"request {p}: the {CATEGORIES[p % 6]} described in a sentence or two, "
            "with the details a judge will check against the ground truth",
            "gt_image": gt,
            "eval_type": TRACKS[p % 2],
            "category": CATEGORIES[p % 6],
            "difficulty": ("easy", "medium", "hard")[p % 3],
        }
        for k in range(samples):
            item_id, stem = f"{p}#{k}", f"{p}_s{k}"
            registered = []
            for i in range(5):
                path = folder / "cache" / f"{stem}_{i}.jpg"
                _image(path, 384, rng)
                registered.append(
                    {
                        "img_id": f"IMG_{i + 1:03d}",
                        "note": "",
                        "local_path": str(path),
                        "url": f"https://images.example/{stem}/{i}.jpg",
                        "title": f"{row['category']} reference {i}",
                        "page_url": f"https://pages.example/{stem}/{i}",
                    }
                )
            _image(folder / "images" / f"{stem}.png", 512, rng)
            refs = [
                {**registered[0], "note": "the subject"},
                {**registered[3], "note": "the style"},
            ]
            program = {
                "gen_prompt": f"A photograph of request {p}, as the first reference image "
                "shows it, in the style of the second reference image.",
                "reference_images": [{"img_id": r["img_id"], "note": r["note"]} for r in refs],
            }
            think = "<think>" + "I should look up what it looks like first. " * 8 + "</think>"
            messages = [
                {"role": "system", "content": "You are a prompt planner. " * 200},
                {"role": "user", "content": row["question"]},
                {
                    "role": "assistant",
                    "content": think
                    + '<tool_call>{"name":"search","arguments":{"queries":["facts"]}}</tool_call>',
                },
                {
                    "role": "user",
                    "content": "<tool_response>\n"
                    + "1. title: a fact\n  snippet: details. " * 30
                    + "\n</tool_response>",
                },
                {
                    "role": "assistant",
                    "content": think
                    + '<tool_call>{"name":"image_search","arguments":{"query":"photo"}}</tool_call>',
                },
                {
                    "role": "user",
                    "content": "<tool_response>\n"
                    + _observation("photo", registered)
                    + "\n</tool_response>",
                },
                {
                    "role": "assistant",
                    "content": think
                    + '<tool_call>{"name":"query_knowledge","arguments":{"skill_name":"spatial_layout"}}</tool_call>',
                },
                {
                    "role": "user",
                    "content": "<tool_response>\n"
                    + "## Skill Guidance\n"
                    + "Say where things are. " * 120
                    + "\n</tool_response>",
                },
                {
                    "role": "assistant",
                    "content": think + "<answer>" + json.dumps(program) + "</answer>",
                },
            ]
            record = {
                "id": item_id,
                **row,
                "prompt": row["question"],
                **program,
                "reference_images": refs,
                "registered_images": registered,
                "messages": messages,
                "termination": "answer",
                "rounds": 4,
                "prompt_id": str(p),
                "sample_index": k,
                "tool_calls": {"search": 1, "image_search": 1, "query_knowledge": 1},
                "timings": {"model": rng.uniform(5, 40), "tools": rng.uniform(1, 9)},
                "image_path": f"images/{stem}.png",
                "success": True,
                "image_status": "ok",
            }
            record["timings"]["total"] = sum(record["timings"].values())
            rendered.append(record)
            scores = {
                key: rng.choice((0.0, 0.5, 1.0))
                for key in ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics")
            }
            scores["overall"] = round(
                0.1 * scores["faithfulness"]
                + 0.4 * scores["visual_correctness"]
                + 0.4 * scores["text_accuracy"]
                + 0.1 * scores["aesthetics"],
                2,
            )
            evaluated = {k2: v for k2, v in record.items() if k2 != "messages"}
            evaluated.update(
                eval_success=True,
                scores={**scores, "text_accuracy_na": False},
                rationale="The render keeps the subject but misses a detail. " * 3,
                error=None,
                error_kind=None,
            )
            judged.append(evaluated)
    write_json_rows(folder / "results.json", rendered)
    write_json_rows(folder / "results_eval.json", judged)
    write_text(
        folder / "summary.json",
        json.dumps(summary_dict(judged, aggregate(judged), eval_json=""), indent=2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=594)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/report-scale"))
    parser.add_argument("--workers", type=int)
    parser.add_argument("--modes", default="embed,files", help="image modes to build")
    args = parser.parse_args()
    if not (args.folder / "summary.json").is_file():
        started = time.perf_counter()
        synthesize(args.folder, args.prompts, args.samples)
        print(
            f"synthesized {args.prompts * args.samples} items in {time.perf_counter() - started:.0f} s"
        )
    for mode in args.modes.split(","):
        info = build_report(
            args.folder, args.folder / f"report-{mode}.html", images=mode, workers=args.workers
        )
        print(
            f"{mode}: {info.items} items, {info.thumbnails} thumbnails, page "
            f"{info.html_bytes / 1e6:.1f} MB, thumbnails {info.image_bytes / 1e6:.1f} MB, "
            f"built in {info.seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
