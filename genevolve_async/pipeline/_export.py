"""Trajectory export in the GenEvolve-Data-SFT layout: ``genevolve-async export``.

A results folder (or its ``results.json``) becomes a dataset folder::

    DIR/train.jsonl                      {"messages": [...], "images": ["images/traj_00000/IMG_001.jpg", ...]}
    DIR/images/traj_NNNNN/IMG_###.jpg    every image the trajectory registered, as JPEG
    DIR/provenance.csv                   which result row, sample and score each trajectory came from
    DIR/README.md                        a dataset card (``load_dataset(DIR)`` reads its config)

Only answered trajectories are exported: their ``messages`` run from the
system prompt to the assistant's ``<answer>``. Scores come from
``results_eval.json`` beside the results, for ``min_overall`` and
``best_of_group``. Records are read lazily, planned in a worker thread a
chunk at a time, and the images are converted in worker threads (each
source file once; later uses are hard links).
"""

from __future__ import annotations

import csv
import datetime
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread
import orjson

from .._errors import ConfigurationError
from .._progress import StageProgress
from .._version import __version__
from ._inputs import BadRow, InputRow, InputSource, aiter_entries
from ._trajectory import Trajectory, link_all, plan_trajectory, to_jpeg

__all__ = ["CARD_FILE", "DATA_FILE", "ExportOptions", "ExportReport", "export_trajectories"]

DATA_FILE = "train.jsonl"
"""The records (split ``train``)."""
CARD_FILE = "README.md"
PROVENANCE_FILE = "provenance.csv"
_CHUNK = 64
_PROVENANCE_COLUMNS = ("trajectory", "id", "prompt_id", "sample_index", "seed", "overall", "images")


@dataclass(kw_only=True, slots=True, frozen=True)
class ExportOptions:
    """Which trajectories to export, and how."""

    min_overall: float | None = None
    """Keep trajectories whose judged ``overall`` is at least this."""
    best_of_group: bool = False
    """Keep the best judged sample of each prompt (ties: the lowest sample index)."""
    rewrite_paths: bool = False
    """Point the ``local_path:`` lines of observations at the exported files."""
    jpeg_quality: int = 95
    workers: int = 8
    """Image conversions at once (worker threads)."""

    def __post_init__(self) -> None:
        if self.min_overall is not None and not math.isfinite(self.min_overall):
            raise ConfigurationError(f"--min-overall must be a number, got {self.min_overall}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigurationError(f"--jpeg-quality must be 1..100, got {self.jpeg_quality}")
        if self.workers < 1:
            raise ConfigurationError(f"--workers must be at least 1, got {self.workers}")

    @property
    def needs_scores(self) -> bool:
        """Whether the selection reads judge scores."""
        return self.min_overall is not None or self.best_of_group


@dataclass(kw_only=True, slots=True)
class ExportReport:
    """What an export wrote and left out."""

    out_dir: Path
    trajectories: int = 0
    images: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    """Rows not exported, by reason."""
    missing_images: int = 0
    """Registered images whose file was gone or unreadable (left out of ``images``)."""
    seconds: float = 0.0

    def text(self) -> str:
        """A short account for the terminal."""
        lines = [
            f"exported {self.trajectories} trajectories ({self.images} images) to "
            f"{self.out_dir}  ({self.seconds:.1f}s)"
        ]
        if self.skipped:
            lines.append(
                "  skipped: " + ", ".join(f"{k} {v}" for k, v in self.skipped.most_common())
            )
        if self.missing_images:
            lines.append(
                f"  {self.missing_images} registered images were missing or unreadable "
                "and left out (their trajectories did not cite them)"
            )
        return "\n".join(lines)


def locate_results(path: Path) -> tuple[Path, Path | None]:
    """The results file holding messages, and the judge's file beside it if any (blocking).

    Raises:
        ConfigurationError: Nothing to export there.
    """
    if path.is_dir():
        folder, data = path, path / "results.json"
    elif path.is_file():
        folder, data = path.parent, path
    else:
        raise ConfigurationError(f"--results not found: {path}")
    if data.name == "results_eval.json":
        # Evaluation rows leave the messages out; they live in results.json.
        data = folder / "results.json"
    if not data.is_file():
        raise ConfigurationError(
            f"no results.json in {folder}: export needs the rollout (or render) results, "
            "whose rows carry the messages"
        )
    scores = folder / "results_eval.json"
    return data, scores if scores.is_file() else None


def load_scores(path: Path) -> dict[str, tuple[float | None, str, int]]:
    """``id -> (overall, prompt_id, sample_index)`` from a ``results_eval.json`` (blocking).

    Unsampled rows are their own group (``prompt_id`` is the id, index 0).
    """
    rows = orjson.loads(path.read_bytes())
    if not isinstance(rows, list):
        raise ConfigurationError(f"{path} is not a JSON array of evaluation rows")
    scores: dict[str, tuple[float | None, str, int]] = {}
    for row in rows:
        if not isinstance(row, dict) or "summary_type" in row or row.get("id") is None:
            continue
        row_id = str(row["id"])
        overall: float | None = None
        judged = row.get("scores")
        if row.get("eval_success") is True and isinstance(judged, dict):
            value = judged.get("overall")
            if isinstance(value, int | float) and not isinstance(value, bool):
                overall = float(value)
        prompt_id, index = row.get("prompt_id"), row.get("sample_index")
        scores[row_id] = (
            overall,
            prompt_id if isinstance(prompt_id, str) else row_id,
            index if isinstance(index, int) and not isinstance(index, bool) else 0,
        )
    return scores


def select_ids(
    scores: Mapping[str, tuple[float | None, str, int]], options: ExportOptions
) -> dict[str, str]:
    """Why each scored id is left out; ids not in the answer are kept."""
    dropped: dict[str, str] = {}
    best: dict[str, tuple[float, int, str]] = {}
    for row_id, (overall, prompt_id, index) in scores.items():
        if overall is None:
            dropped[row_id] = "no judge score"
            continue
        if options.min_overall is not None and overall < options.min_overall:
            dropped[row_id] = "below --min-overall"
        # The best is the highest overall, then the lowest sample index.
        held = best.get(prompt_id)
        if held is None or (overall, -index) > (held[0], -held[1]):
            best[prompt_id] = (overall, index, row_id)
    if options.best_of_group:
        winners = {held[2] for held in best.values()}
        for row_id in scores:
            if row_id not in winners and row_id not in dropped:
                dropped[row_id] = "not the best of its group"
    return dropped


class _Exporter:
    """Plans, converts and writes chunks of trajectories, in input order."""

    def __init__(
        self,
        out_dir: Path,
        options: ExportOptions,
        report: ExportReport,
        data: IO[bytes],
        provenance: Any,
    ) -> None:
        self.out_dir = out_dir
        self.options = options
        self.report = report
        self.data = data
        self.provenance = provenance
        self.limiter = anyio.CapacityLimiter(options.workers)
        self.converted: dict[str, Path | None] = {}
        """Source file -> its first JPEG (None: unreadable), so each converts once."""
        self.number = 0

    async def run_chunk(self, rows: list[tuple[dict[str, Any], float | None]]) -> None:
        plans, reasons = await anyio.to_thread.run_sync(_plan_chunk, rows, self.number)
        self.report.skipped.update(reasons)
        self.number += len(plans)
        await self._convert(plans)
        await anyio.to_thread.run_sync(self._write, plans)

    async def _convert(self, plans: list[Trajectory]) -> None:
        firsts: dict[str, Path] = {}
        links: list[tuple[str, Path]] = []
        for traj in plans:
            for img in traj.images:
                dest = self.out_dir / img.relative
                if img.source in self.converted or img.source in firsts:
                    links.append((img.source, dest))
                else:
                    firsts[img.source] = dest
        async with anyio.create_task_group() as tg:
            for source, dest in firsts.items():
                tg.start_soon(self._convert_one, source, dest)
        pairs = [(self.converted.get(source), dest) for source, dest in links]
        await anyio.to_thread.run_sync(link_all, [(s, d) for s, d in pairs if s is not None])

    async def _convert_one(self, source: str, dest: Path) -> None:
        ok = await anyio.to_thread.run_sync(
            to_jpeg, source, dest, self.options.jpeg_quality, limiter=self.limiter
        )
        self.converted[source] = dest if ok else None

    def _write(self, plans: list[Trajectory]) -> None:
        """Append the chunk's records and provenance rows (blocking; a worker thread)."""
        lines: list[bytes] = []
        for traj in plans:
            kept = [img for img in traj.images if self.converted.get(img.source) is not None]
            if any(img.cited and img not in kept for img in traj.images):
                self.report.skipped["reference image unreadable"] += 1
                shutil.rmtree(self.out_dir / traj.folder, ignore_errors=True)
                continue
            self.report.missing_images += traj.missing + len(traj.images) - len(kept)
            self.report.trajectories += 1
            self.report.images += len(kept)
            lines.append(traj.record(kept, rewrite_paths=self.options.rewrite_paths))
            self.provenance.writerow(traj.provenance(len(kept)))
        self.data.writelines(lines)


def _plan_chunk(
    rows: list[tuple[dict[str, Any], float | None]], start: int
) -> tuple[list[Trajectory], Counter[str]]:
    plans: list[Trajectory] = []
    reasons: Counter[str] = Counter()
    for record, overall in rows:
        planned = plan_trajectory(record, start + len(plans), overall=overall)
        if isinstance(planned, str):
            reasons[planned] += 1
        else:
            plans.append(planned)
    return plans, reasons


def _prepare_out(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigurationError(
            f"--out {out_dir} exists and is not an empty folder; export into a new folder"
        )
    (out_dir / "images").mkdir(parents=True, exist_ok=True)


def _card(results: Path, options: ExportOptions, report: ExportReport) -> str:
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    chosen = []
    if options.min_overall is not None:
        chosen.append(f"judged `overall` at least {options.min_overall:g}")
    if options.best_of_group:
        chosen.append("the best judged sample of each prompt")
    selection = ": " + "; ".join(chosen) if chosen else ""
    skipped = "".join(f"- {k}: {v}\n" for k, v in report.skipped.most_common()) or "- none\n"
    return f"""---
configs:
- config_name: default
  data_files:
  - split: train
    path: {DATA_FILE}
tags:
- genevolve
- agent-trajectories
- image-generation
---
# GenEvolve trajectories

{report.trajectories} tool-orchestrated image-generation trajectories in the layout of
GenEvolve-Data-SFT, exported by genevolve-async {__version__} on {when} from
`{results}`.

## Layout

- `{DATA_FILE}`: one record per trajectory. `messages` is the chat-format ReAct
  conversation (system prompt, request, assistant turns, tool responses), ending with
  the assistant's `<answer>{{"gen_prompt": ..., "reference_images": [...]}}</answer>`.
  `images` lists the images the trajectory registered, in `IMG_###` order, as paths
  relative to this folder.
- `images/traj_NNNNN/IMG_###.jpg`: those images as JPEG ({report.images} files).
- `{PROVENANCE_FILE}`: the result row, sample, seed and judged score of each trajectory.

## Selection

Answered trajectories{selection}. Left out:

{skipped}
## Loading

```python
from datasets import load_dataset

data = load_dataset("json", data_files="{DATA_FILE}", split="train")  # from this folder
```
"""


def _skip_reason(
    entry: InputRow | BadRow, dropped: Mapping[str, str], scored: set[str] | None
) -> str | None:
    if isinstance(entry, BadRow):
        return "unreadable results row"
    if scored is not None and entry.id not in scored:
        return "no judge score"
    return dropped.get(entry.id)


def _count(progress: StageProgress | None, rows: int) -> None:
    if progress is not None:
        progress.done += rows


async def export_trajectories(
    results: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    options: ExportOptions | None = None,
    progress: StageProgress | None = None,
) -> ExportReport:
    """Export the answered trajectories of a results folder as a GenEvolve-SFT dataset.

    Args:
        results: An output folder, its ``results.json``, or its ``results_eval.json``.
        out_dir: The dataset folder to create (it must not hold anything yet).
        options: Selection and image settings.
        progress: Counters to keep up to date for a live display (rows done, rows skipped).

    Returns:
        What was written and what was left out, by reason.

    Raises:
        ConfigurationError: No results there, a filter without judge scores,
            or an output folder that is not empty.
    """
    options = options or ExportOptions()
    started = time.monotonic()
    out = Path(out_dir)
    data_path, scores_path = await anyio.to_thread.run_sync(locate_results, Path(results))
    if options.needs_scores and scores_path is None:
        raise ConfigurationError(
            f"--min-overall and --best-of-group need judge scores, but {data_path.parent} "
            "has no results_eval.json (run 'evaluate' or 'pipeline' first)"
        )
    scores: dict[str, tuple[float | None, str, int]] = {}
    if scores_path is not None:
        scores = await anyio.to_thread.run_sync(load_scores, scores_path)
    dropped = select_ids(scores, options) if options.needs_scores else {}
    scored = set(scores) if options.needs_scores else None
    await anyio.to_thread.run_sync(_prepare_out, out)
    report = ExportReport(out_dir=out)
    tmp = out / f".{DATA_FILE}.tmp"
    data = await anyio.to_thread.run_sync(tmp.open, "wb")
    try:
        prov_handle = await anyio.to_thread.run_sync(
            lambda: (out / PROVENANCE_FILE).open("w", encoding="utf-8", newline="")
        )
        try:
            provenance = csv.writer(prov_handle)
            provenance.writerow(_PROVENANCE_COLUMNS)
            exporter = _Exporter(out, options, report, data, provenance)
            chunk: list[tuple[dict[str, Any], float | None]] = []
            async with aclosing(aiter_entries(InputSource(path=data_path))) as entries:
                async for entry in entries:
                    reason = _skip_reason(entry, dropped, scored)
                    if reason is not None:
                        report.skipped[reason] += 1
                        if progress is not None:
                            progress.skipped += 1
                        continue
                    assert isinstance(entry, InputRow)
                    held = scores.get(entry.id)
                    chunk.append(({**entry.data, "id": entry.id}, held[0] if held else None))
                    if len(chunk) >= _CHUNK:
                        await exporter.run_chunk(chunk)
                        _count(progress, len(chunk))
                        chunk = []
            if chunk:
                await exporter.run_chunk(chunk)
                _count(progress, len(chunk))
        finally:
            await anyio.to_thread.run_sync(prov_handle.close)
    finally:
        await anyio.to_thread.run_sync(data.close)
    await anyio.to_thread.run_sync(os.replace, tmp, out / DATA_FILE)
    report.seconds = time.monotonic() - started
    card = _card(Path(results), options, report)
    await anyio.Path(out / CARD_FILE).write_text(card, encoding="utf-8")
    return report
