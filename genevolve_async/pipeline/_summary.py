"""Final results and summaries: results files from checkpoints, and tables people can read.

:func:`finalize_stage` reads a stage's checkpoint once, in input order, and
writes its results file (``results.json``, or for the judge
``results_eval.json`` with ``summary.json`` and ``summary.csv``) while
gathering the figures of the final summary table. It blocks; callers run it
in a worker thread.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._stats import percentile
from ..judge import aggregate, format_summary_table, summary_csv_text, summary_dict, summary_rows
from ._checkpoint import read_records, scan_checkpoint
from ._groups import GroupReport
from ._results import write_json_rows, write_text
from ._stages import EvalOutputs, StageKind
from ._text import plural

__all__ = ["StageSummary", "finalize_stage"]


@dataclass(kw_only=True, slots=True)
class StageSummary:
    """Figures of one stage over every item its checkpoint holds."""

    kind: StageKind
    items: int = 0
    ok: int = 0
    terminations: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    """Failures by kind."""
    reasons: dict[str, str] = field(default_factory=dict)
    """The first message of each kind of failure: a kind alone can mislead
    (``missing_image`` is said both of a render that failed and of a row
    without ground truth)."""
    tool_calls: list[int] = field(default_factory=list)
    """Tool calls of each rollout."""
    tools: Counter[str] = field(default_factory=Counter)
    references: list[int] = field(default_factory=list)
    """Reference images of each answered rollout's program."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: list[float] = field(default_factory=list)
    """Rollout durations, from the records."""
    eval_table: str = ""
    """SPEC's summary table (judge stage)."""
    group_table: str = ""
    """Best-of-K and mean-of-K per split (judge stage of a sampled run)."""
    files: list[Path] = field(default_factory=list)
    """Files written."""

    def add(self, record: dict[str, Any]) -> None:
        """Count one record."""
        self.items += 1
        if self.kind == "run":
            self._add_rollout(record)
        elif self.kind == "render":
            if record.get("success") is True:
                self.ok += 1
            else:
                self._fail(_status_kind(record.get("image_status")), record.get("image_status"))
        elif record.get("eval_success") is True:
            self.ok += 1
        else:
            self._fail(str(record.get("error_kind") or "error"), record.get("error"))

    def _fail(self, kind: str, message: Any) -> None:
        self.errors[kind] += 1
        if kind not in self.reasons and isinstance(message, str) and message:
            self.reasons[kind] = message[:300]

    def _add_rollout(self, record: dict[str, Any]) -> None:
        termination = str(record.get("termination"))
        self.terminations[termination] += 1
        if termination == "answer":
            self.ok += 1
            refs = record.get("reference_images")
            self.references.append(len(refs) if isinstance(refs, list) else 0)
        error = record.get("error")
        if isinstance(error, dict):
            self._fail(str(error.get("kind")), error.get("message"))
        calls = record.get("tool_calls")
        if isinstance(calls, dict):
            self.tool_calls.append(sum(v for v in calls.values() if isinstance(v, int)))
            self.tools.update({k: v for k, v in calls.items() if isinstance(v, int)})
        usage = record.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
        timings = record.get("timings")
        if isinstance(timings, dict) and isinstance(timings.get("total"), int | float):
            self.seconds.append(float(timings["total"]))

    def lines(self, session: Sequence[float] = ()) -> list[str]:
        """The summary as text lines; ``session`` holds this session's item durations."""
        out = [
            f"[{self.kind}] {plural(self.items, 'item')}, {self.ok} ok, {self.items - self.ok} not ok"
        ]
        if self.terminations:
            out.append("  terminations: " + _counts(self.terminations))
        if self.errors:
            out.append("  errors by kind: " + _counts(self.errors))
            out.extend(
                f"    {kind}, e.g.: {self.reasons[kind]}"
                for kind, _ in self.errors.most_common()
                if kind in self.reasons
            )
        if self.tool_calls:
            mean = sum(self.tool_calls) / len(self.tool_calls)
            out.append(
                f"  tool calls per rollout: mean {mean:.2f}, max {max(self.tool_calls)} ({_counts(self.tools)})"
            )
        if self.references:
            mean = sum(self.references) / len(self.references)
            without = sum(1 for count in self.references if not count)
            out.append(
                f"  reference images per answer: mean {mean:.2f}"
                + (f"; {plural(without, 'answer')} with none" if without else "")
            )
        if self.prompt_tokens or self.completion_tokens:
            per = (self.prompt_tokens + self.completion_tokens) / max(1, self.items)
            out.append(
                f"  tokens: prompt {self.prompt_tokens}, completion {self.completion_tokens}, "
                f"{per:.0f} per rollout"
            )
        if self.seconds:
            out.append("  rollout seconds: " + _percentiles(self.seconds))
        if session:
            out.append(
                f"  this session: {plural(len(session), 'item')}, seconds per item "
                + _percentiles(session)
            )
        if self.eval_table:
            out.append(self.eval_table)
        if self.group_table:
            out.append(self.group_table)
        if self.files:
            out.append("  wrote " + ", ".join(str(p) for p in self.files))
        return out


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counter.most_common())


def _percentiles(values: Sequence[float]) -> str:
    return (
        " ".join(f"p{q} {percentile(values, q):.2f}" for q in (50, 90, 99))
        + f" max {max(values):.2f}"
    )


def _status_kind(status: Any) -> str:
    # image_status reads "error: <kind>: <message>".
    if isinstance(status, str) and status.startswith("error: "):
        return status[len("error: ") :].split(":", 1)[0].strip() or "error"
    return "error"


def finalize_stage(
    kind: StageKind,
    out_dir: Path,
    checkpoint: Path,
    results_name: str | None,
    *,
    eval_outputs: EvalOutputs | None = None,
) -> StageSummary:
    """Write a stage's results files from its checkpoint and summarise it (blocking).

    Args:
        kind: The stage.
        out_dir: Where the files go.
        checkpoint: The stage's checkpoint.
        results_name: The results file to write (``None``: summarise only).
        eval_outputs: The judge stage's file paths and denominator.

    Returns:
        The stage's figures, with the files written.
    """
    summary = StageSummary(kind=kind)
    entries = scan_checkpoint(checkpoint).ordered()

    def counted() -> Iterator[dict[str, Any]]:
        for record in read_records(checkpoint, entries) if entries else ():
            summary.add(record)
            yield record

    if kind == "evaluate":
        rows = list(counted())
        outputs = eval_outputs or EvalOutputs()
        splits = aggregate(rows, total_cases=outputs.total_cases)
        summary.eval_table = format_summary_table(splits)
        if results_name is not None:
            eval_path = (outputs.results_eval or out_dir / results_name).resolve()
            json_path = outputs.summary_json or out_dir / "summary.json"
            csv_path = outputs.summary_csv or out_dir / "summary.csv"
            for path in (eval_path, json_path, csv_path):
                path.parent.mkdir(parents=True, exist_ok=True)
            write_json_rows(eval_path, [*rows, *summary_rows(rows)])
            layout = summary_dict(rows, splits, eval_json=str(eval_path))
            write_text(json_path, json.dumps(layout, ensure_ascii=False, indent=2))
            write_text(csv_path, summary_csv_text(splits))
            summary.files += [eval_path, json_path, csv_path]
        groups = GroupReport.from_rows(rows)
        if groups is not None:
            summary.group_table = groups.table()
            if results_name is not None:
                summary.files += groups.write(out_dir)
        return summary
    if results_name is not None:
        write_json_rows(out_dir / results_name, counted())
        summary.files.append(out_dir / results_name)
    else:
        for _ in counted():
            pass
    return summary
