"""Reading a run folder: whichever stages it holds, as one merged record per item.

A folder written by ``run``, ``render``, ``evaluate`` or ``pipeline`` (or
joined by ``merge`` from shards) holds a checkpoint per stage it ran
(``rollouts.jsonl``, ``render.jsonl``, ``eval.jsonl``) and, once finalized,
the results files derived from them (``results.json``,
``results_eval.json``). Checkpoints are read first because they are the
source of truth and exist mid-run; results files stand in when a folder was
copied without them. Each later stage's record is laid over the earlier
one, so an item keeps its trajectory (rollout), image (render) and scores
(judge) together.

Everything here blocks (file reads); the report builder runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .._errors import ConfigurationError
from ..pipeline import scan_checkpoint
from ..pipeline._checkpoint import read_records

__all__ = ["RunData", "load_run"]

_STAGE_FILES = (
    # (stage, checkpoint, results file that stands in for it)
    ("run", "rollouts.jsonl", None),
    ("render", "render.jsonl", None),
    ("evaluate", "eval.jsonl", "results_eval.json"),
)


@dataclass(kw_only=True, slots=True)
class RunData:
    """One run folder, loaded."""

    folder: Path
    items: list[dict[str, Any]] = field(default_factory=list)
    """One merged record per item id, in input order."""
    stages: list[str] = field(default_factory=list)
    """The stages found (``run``, ``render``, ``evaluate``), in pipeline order."""
    summary: dict[str, Any] | None = None
    """``summary.json`` as written, when there is one."""
    groups: list[dict[str, Any]] | None = None
    """``groups.json`` (sampled runs), when there is one."""
    group_summary: dict[str, Any] | None = None
    """``groups_summary.json``, when there is one."""
    problems: list[str] = field(default_factory=list)
    """Files that could not be read, and why (the report shows them)."""

    @property
    def name(self) -> str:
        """The folder's name, for headings."""
        return self.folder.name or str(self.folder)


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        problems.append(f"{path.name}: {exc}")
        return None


def _checkpoint_rows(path: Path) -> list[dict[str, Any]] | None:
    scan = scan_checkpoint(path)
    if not scan.entries:
        return None
    return list(read_records(path, scan.ordered()))


def _result_rows(payload: Any) -> Iterator[dict[str, Any]]:
    if isinstance(payload, list):
        for row in payload:
            # Summary rows carry summary_type and no id; they are not items.
            if isinstance(row, dict) and "summary_type" not in row and "id" in row:
                yield row


def _stage_rows(folder: Path, problems: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    found: list[tuple[str, list[dict[str, Any]]]] = []
    for stage, checkpoint, results in _STAGE_FILES:
        rows = _checkpoint_rows(folder / checkpoint)
        if rows is None and results is not None:
            rows = list(_result_rows(_read_json(folder / results, problems))) or None
        if rows is not None:
            found.append((stage, rows))
    if not any(stage in ("run", "render") for stage, _ in found):
        # results.json is the last of run/render; without checkpoints it stands in for both.
        rows = list(_result_rows(_read_json(folder / "results.json", problems)))
        if rows:
            stage = "render" if any("image_path" in r or "success" in r for r in rows) else "run"
            found.insert(0, (stage, rows))
    return found


def load_run(path: str | Path) -> RunData:
    """Load a run folder (or the folder of a results file given instead).

    Args:
        path: The folder a stage wrote, or one of its files.

    Returns:
        The merged items and the summary files found.

    Raises:
        ConfigurationError: The folder does not exist or holds no stage's output.
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigurationError(f"report: no such run folder: {folder}")
    run = RunData(folder=folder)
    merged: dict[str, dict[str, Any]] = {}
    for stage, rows in _stage_rows(folder, run.problems):
        run.stages.append(stage)
        for row in rows:
            key = str(row.get("id"))
            # Later stages carry the earlier record's fields forward, minus a few
            # (the judge row drops messages), so lay each over the last.
            merged[key] = {**merged.get(key, {}), **row, "id": key}
    if not run.stages:
        raise ConfigurationError(
            f"report: {folder} holds no rollouts.jsonl, render.jsonl, eval.jsonl, "
            "results.json or results_eval.json"
        )
    run.items = list(merged.values())
    summary = _read_json(folder / "summary.json", run.problems)
    run.summary = summary if isinstance(summary, dict) else None
    groups = _read_json(folder / "groups.json", run.problems)
    run.groups = [g for g in groups if isinstance(g, dict)] if isinstance(groups, list) else None
    group_summary = _read_json(folder / "groups_summary.json", run.problems)
    run.group_summary = group_summary if isinstance(group_summary, dict) else None
    return run
