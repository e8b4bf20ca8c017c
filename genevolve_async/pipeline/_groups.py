"""Rollout groups: K sampled rollouts per prompt, and what their scores say together.

``--samples-per-prompt K`` turns each input row into K items before any
stage sees it (:class:`Sampling`): item ``k`` of row ``12`` has id ``12#k``,
file stem ``12_sk``, and carries ``prompt_id`` (the row's id),
``sample_index`` and its own ``seed``. The items are ordinary items from
then on: multiplexed with every other rollout, checkpointed and resumed one
by one, rendered and judged under their own ids.

Once they are judged, :class:`GroupReport` folds the samples of each prompt
into a group summary (mean, max, min, spread and standard deviation of
``overall``, the best sample) and the groups of each split into best-of-K
and mean-of-K figures: what GenEvolve's self-evolution stage looks at when
it scores several rollouts per request against the ground truth.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .._errors import ConfigurationError
from ..judge import DEFAULT_SPLIT_FIELDS, OVERALL_SPLIT, split_value
from ._inputs import InputRow
from ._results import write_text

__all__ = [
    "GROUPS_FILE",
    "GROUPS_SUMMARY_FILE",
    "GroupReport",
    "GroupSplit",
    "GroupSummary",
    "Sampling",
    "sample_id",
]

GROUPS_FILE = "groups.json"
"""Per-prompt group summaries, in input order, beside ``results_eval.json``."""
GROUPS_SUMMARY_FILE = "groups_summary.json"
"""Best-of-K and mean-of-K per split."""

_SAMPLE_SEP = "#"
_DIGITS = 4
_SEED_MASK = 0x7FFFFFFF  # 31 bits: every OpenAI-compatible server takes it


def sample_id(prompt_id: str, index: int) -> str:
    """The item id of sample ``index`` of the row ``prompt_id`` (``"12#3"``)."""
    return f"{prompt_id}{_SAMPLE_SEP}{index}"


@dataclass(kw_only=True, slots=True, frozen=True)
class Sampling:
    """How many independent rollouts each input row gets, and their seeds.

    Seeds are derived, not counted: sample ``k`` of row ``p`` gets the first
    31 bits of ``sha256(base_seed, p, k)``, so a sample keeps its seed across
    sessions, shards and a later, larger K.

    Args:
        count: Rollouts per input row (K).
        base_seed: Mixed into every sample's seed (``--seed``).

    Raises:
        ConfigurationError: ``count`` below 1.
    """

    count: int = 1
    base_seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigurationError(f"--samples-per-prompt must be at least 1, got {self.count!r}")

    def seed_for(self, prompt_id: str, index: int) -> int:
        """The sampling seed of sample ``index`` of row ``prompt_id``."""
        text = f"{self.base_seed}\x1f{prompt_id}\x1f{index}"
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        return int.from_bytes(digest[:4], "big") & _SEED_MASK

    def expand(self, row: InputRow) -> list[InputRow]:
        """The items of ``row``: itself when K is 1, else K samples.

        A sample's data is the row's plus ``prompt_id``, ``sample_index`` and
        ``seed`` (fields of those names in the input are replaced).
        """
        if self.count == 1:
            return [row]
        return [
            dataclasses.replace(
                row,
                id=sample_id(row.id, k),
                # Distinct rows have distinct stems and the suffix is all digits,
                # so no two samples share a file name.
                safe_id=f"{row.safe_id}_s{k}",
                index=row.index * self.count + k,
                data={
                    **row.data,
                    "prompt_id": row.id,
                    "sample_index": k,
                    "seed": self.seed_for(row.id, k),
                },
            )
            for k in range(self.count)
        ]


def _sample_key(row: Mapping[str, Any]) -> tuple[str, int] | None:
    prompt_id, index = row.get("prompt_id"), row.get("sample_index")
    if isinstance(prompt_id, str) and isinstance(index, int) and not isinstance(index, bool):
        return prompt_id, index
    return None


def _overall(row: Mapping[str, Any]) -> float | None:
    """The judged ``overall`` of a row, or None when it was not judged."""
    scores = row.get("scores")
    if row.get("eval_success") is not True or not isinstance(scores, Mapping):
        return None
    value = scores.get("overall")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


@dataclass(kw_only=True, slots=True)
class GroupSummary:
    """The samples of one prompt, scored together."""

    prompt_id: str
    prompt: str = ""
    samples: list[tuple[int, str, int | None, float | None]] = field(default_factory=list)
    """``(sample_index, id, seed, overall)`` per sample; ``overall`` None when not judged."""
    labels: dict[str, str] = field(default_factory=dict)
    """The prompt's split values (``eval_type``, ``category``, ``difficulty``)."""

    @property
    def judged(self) -> list[float]:
        """The ``overall`` of each judged sample."""
        return [s[3] for s in self.samples if s[3] is not None]

    @property
    def best(self) -> tuple[int, str, int | None, float | None] | None:
        """The judged sample with the highest ``overall`` (ties: the lowest index)."""
        judged = [s for s in self.samples if s[3] is not None]
        return max(judged, key=lambda s: (s[3], -s[0])) if judged else None

    def to_dict(self) -> dict[str, Any]:
        """The group's row in ``groups.json``."""
        judged = self.judged
        best = self.best
        mean = _mean(judged) if judged else None
        std = math.sqrt(_mean([(v - mean) ** 2 for v in judged])) if mean is not None else None
        ordered = sorted(self.samples)
        return {
            "prompt_id": self.prompt_id,
            "prompt": self.prompt,
            **self.labels,
            "samples": len(self.samples),
            "judged": len(judged),
            "mean_overall": _round(mean),
            "max_overall": max(judged) if judged else None,
            "min_overall": min(judged) if judged else None,
            "spread": _round(max(judged) - min(judged)) if judged else None,
            "std_overall": _round(std),
            "best_id": best[1] if best else None,
            "best_sample_index": best[0] if best else None,
            "best_seed": best[2] if best else None,
            "sample_ids": [s[1] for s in ordered],
            "overalls": [s[3] for s in ordered],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, _DIGITS)


@dataclass(kw_only=True, slots=True, frozen=True)
class GroupSplit:
    """Best-of-K and mean-of-K over the prompts of one split."""

    name: str
    """``overall_avg`` or ``field:value``, as in ``summary.json``."""
    prompts: int
    prompts_judged: int
    """Prompts with at least one judged sample: the denominator of the means."""
    samples: int
    samples_judged: int
    k: int
    """The most samples any prompt of the split has."""
    best_of_k: float | None
    """Mean over judged prompts of the best sample's ``overall``."""
    mean_of_k: float | None
    """Mean over judged prompts of the mean ``overall`` of their samples."""
    mean_spread: float | None
    """Mean over judged prompts of ``max - min`` of their samples' ``overall``."""
    best_of_k_missing_zero: float
    """Best-of-K with prompts that have no judged sample counted as zero."""

    def to_dict(self) -> dict[str, Any]:
        """The figures of ``groups_summary.json``."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "name"}


def _split(name: str, groups: Sequence[GroupSummary]) -> GroupSplit:
    judged = [g for g in groups if g.judged]
    best = [max(g.judged) for g in judged]
    return GroupSplit(
        name=name,
        prompts=len(groups),
        prompts_judged=len(judged),
        samples=sum(len(g.samples) for g in groups),
        samples_judged=sum(len(g.judged) for g in groups),
        k=max((len(g.samples) for g in groups), default=0),
        best_of_k=_round(_mean(best)) if best else None,
        mean_of_k=_round(_mean([_mean(g.judged) for g in judged])) if judged else None,
        mean_spread=_round(_mean([max(g.judged) - min(g.judged) for g in judged]))
        if judged
        else None,
        best_of_k_missing_zero=round(math.fsum(best) / len(groups), _DIGITS) if groups else 0.0,
    )


@dataclass(kw_only=True, slots=True)
class GroupReport:
    """The groups of a judged, sampled run, and their per-split figures."""

    groups: list[GroupSummary]
    splits: list[GroupSplit]

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        *,
        split_fields: Sequence[str] = DEFAULT_SPLIT_FIELDS,
    ) -> GroupReport | None:
        """Group judged rows by ``prompt_id``; None when no row is a sample.

        Args:
            rows: Evaluation rows (summary rows are skipped).
            split_fields: Fields that define the per-value splits.
        """
        groups: dict[str, GroupSummary] = {}
        for row in rows:
            key = _sample_key(row)
            if key is None or "summary_type" in row:
                continue
            group = groups.get(key[0])
            if group is None:
                prompt = row.get("prompt")
                group = groups[key[0]] = GroupSummary(
                    prompt_id=key[0],
                    prompt=prompt if isinstance(prompt, str) else "",
                    labels={f: split_value(row, f) for f in split_fields},
                )
            seed = row.get("seed")
            group.samples.append(
                (
                    key[1],
                    str(row.get("id")),
                    seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                    _overall(row),
                )
            )
        if not groups:
            return None
        ordered = list(groups.values())
        splits = [_split(OVERALL_SPLIT, ordered)]
        for split_field in split_fields:
            values = sorted({g.labels[split_field] for g in ordered if split_field in g.labels})
            for value in values:
                members = [g for g in ordered if g.labels.get(split_field) == value]
                splits.append(_split(f"{split_field}:{value}", members))
        return cls(groups=ordered, splits=splits)

    def summary_dict(self) -> dict[str, dict[str, Any]]:
        """The content of ``groups_summary.json``: split name to its figures."""
        return {split.name: split.to_dict() for split in self.splits}

    def write(self, out_dir: Path) -> list[Path]:
        """Write ``groups.json`` and ``groups_summary.json`` atomically (blocking).

        Returns:
            The files written.
        """
        option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        groups = orjson.dumps([g.to_dict() for g in self.groups], option=option)
        write_text(out_dir / GROUPS_FILE, groups.decode("utf-8") + "\n")
        summary = orjson.dumps(self.summary_dict(), option=option)
        write_text(out_dir / GROUPS_SUMMARY_FILE, summary.decode("utf-8") + "\n")
        return [out_dir / GROUPS_FILE, out_dir / GROUPS_SUMMARY_FILE]

    def table(self) -> str:
        """Best-of-K and mean-of-K per split, as an aligned text table."""
        headers = ("split", "prompts", "judged", "K", "best-of-K", "mean-of-K", "spread")
        body = [
            (
                s.name,
                str(s.prompts),
                str(s.prompts_judged),
                str(s.k),
                *(
                    "-" if v is None else f"{v:.4f}"
                    for v in (s.best_of_k, s.mean_of_k, s.mean_spread)
                ),
            )
            for s in self.splits
        ]
        widths = [max(len(row[i]) for row in (headers, *body)) for i in range(len(headers))]

        def line(cells: Sequence[str]) -> str:
            rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
            return "  ".join([cells[0].ljust(widths[0]), *rest]).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(headers), rule, *(line(cells) for cells in body)])
