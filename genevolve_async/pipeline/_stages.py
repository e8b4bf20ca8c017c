"""The three stages over one item: rollout, render, judge.

A stage turns one :class:`InputRow` into one record and says whether it
succeeded. Per-item failures (a rollout that errs, a render the service
refuses, an unreadable image) become failed records and the batch goes on;
failures that would hit every item alike (a refused key, missing
configuration) raise :class:`BatchAborted` to stop the batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import anyio
import anyio.to_thread
from PIL import Image

from .._errors import (
    AuthenticationError,
    ConfigurationError,
    GenEvolveError,
    RolloutError,
    RuntimeClosedError,
    classify_exception,
)
from ..agent import GenEvolveAgent
from ..judge import DEFAULT_JUDGE_USER_TEMPLATE, JudgeImageError
from ..judge._client import JudgeClient
from ..renderers import ReferenceRequiredError, Renderer, render_program
from ..tools import load_skills
from ._groups import Sampling
from ._inputs import InputRow

__all__ = [
    "BatchAborted",
    "EvalOutputs",
    "JudgeStage",
    "Outcome",
    "RenderStage",
    "RolloutStage",
    "Stage",
    "StageKind",
]

StageKind = Literal["run", "render", "evaluate"]

# Rollouts that ended on their own: the policy's verdict, worth keeping.
_FINAL_TERMINATIONS = frozenset({"answer", "max_rounds_reached", "no_answer"})
# Rollout error kinds that every later rollout would hit as well.
_FATAL_KINDS = frozenset({"authentication", "configuration"})
# Fields of a rollout record the evaluation rows leave out: the judge's
# `error` replaces the rollout's, and `registered_images` is ours alone. The
# rest stays, `messages` included, as in the original's results_eval.json.
_EVAL_DROPPED = frozenset({"error", "registered_images"})


class BatchAborted(GenEvolveError):
    """A failure every item would share (bad key, missing setting): the batch stops."""


@dataclass(kw_only=True, slots=True, frozen=True)
class Outcome:
    """One item's result at one stage."""

    record: dict[str, Any]
    """The row written to the checkpoint and the results file."""
    ok: bool
    """Success (failed items are retried when a run resumes)."""
    error_kind: str | None = None
    """The failure's kind, for the summary."""


class Stage(Protocol):
    """What the batch runner needs from a stage."""

    kind: ClassVar[StageKind]
    """Which stage this is."""
    checkpoint_name: ClassVar[str]
    """The checkpoint's file name in the output folder."""
    results_name: ClassVar[str]
    """The results file it feeds."""
    parallel: int
    """Items in flight (its number of workers)."""

    async def prepare(self) -> None:
        """Get ready before the first item (folders, hashes); called once."""
        ...

    def settings(self) -> dict[str, Any]:
        """The settings that shape this stage's results (recorded in its checkpoint)."""
        ...

    async def process(self, row: InputRow) -> Outcome:
        """Handle one item; per-item failures are returned, not raised."""
        ...

    def failure(self, row: InputRow, error: RolloutError) -> Outcome:
        """The failed record of an item whose processing raised unexpectedly."""
        ...


def is_fatal(exc: BaseException) -> bool:
    """Whether ``exc`` must stop the whole batch rather than fail one item."""
    return isinstance(exc, AuthenticationError | BatchAborted | RuntimeClosedError)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class RolloutStage:
    """Runs the agent on the row's request; the record is SPEC's plus ``id`` and extras.

    Args:
        agent: The agent (bound to the batch's runtime).
        parallel: Rollouts in flight.
        timeout: Seconds per rollout (``None``: no deadline).
        samples_per_prompt: Independent rollouts per input row (K). Above 1,
            each row becomes K items (see :class:`Sampling`), seeded from the
            agent's ``seed`` (0 when unset) and sampled at its temperature.

    Raises:
        ConfigurationError: K below 1, or K above 1 at temperature 0 (the
            samples would all be the same greedy rollout).
    """

    kind: ClassVar[StageKind] = "run"
    checkpoint_name: ClassVar[str] = "rollouts.jsonl"
    results_name: ClassVar[str] = "results.json"

    def __init__(
        self,
        agent: GenEvolveAgent,
        *,
        parallel: int = 128,
        timeout: float | None = None,
        samples_per_prompt: int = 1,
    ) -> None:
        self.agent = agent
        self.parallel = parallel
        self.timeout = timeout
        self.sampling = Sampling(count=samples_per_prompt, base_seed=agent.config.seed or 0)
        if samples_per_prompt > 1 and agent.config.temperature == 0:
            raise ConfigurationError(
                f"--samples-per-prompt {samples_per_prompt} at temperature 0 gives the same "
                "greedy rollout every time; sample at a temperature above 0 (--temperature)"
            )
        self._skills_sha = ""

    async def prepare(self) -> None:
        """Hash the skill texts for the settings record (file reads, off the loop)."""
        texts = await anyio.to_thread.run_sync(load_skills, self.agent.config.skills_dir)
        self._skills_sha = _sha("\n".join(f"{k}\n{v}" for k, v in sorted(texts.items())))

    def settings(self) -> dict[str, Any]:
        """Agent settings that shape the rollouts (no URLs, no keys)."""
        cfg = self.agent.config
        return {
            "model": cfg.model,
            "max_rounds": cfg.max_rounds,
            "max_tokens_per_round": cfg.max_tokens_per_round,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "n_max_reference_images": cfg.n_max_reference_images,
            "max_tool_calls": cfg.max_tool_calls,
            "tool_mode": cfg.tool_mode,
            "tools": sorted(self.agent.tools),
            "seed": cfg.seed,
            "system_prompt_sha256": _sha(self.agent.prompts.system),
            "skills_sha256": self._skills_sha,
            # Only with loaded texts, so checkpoints of earlier runs stay resumable.
            **({"prompts_sha256": _prompts_sha(self.agent.prompts)} if cfg.prompts_dir else {}),
            # Only when sampling, so checkpoints of unsampled runs stay resumable.
            **({"samples_per_prompt": self.sampling.count} if self.sampling.count > 1 else {}),
        }

    def expand(self, row: InputRow) -> list[InputRow]:
        """The items of one input row: the row itself, or its K samples."""
        return self.sampling.expand(row)

    async def process(self, row: InputRow) -> Outcome:
        """Run one rollout; a failure every rollout would share raises :class:`BatchAborted`."""
        seed = row.data.get("seed") if self.sampling.count > 1 else None
        result = await self.agent.arun(
            row.prompt,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            timeout=self.timeout,
            rollout_id=row.safe_id[:48],
        )
        if result.error is not None and result.error.kind in _FATAL_KINDS:
            raise BatchAborted(f"row {row.id!r} (line {row.line}): {result.error}")
        record = result.to_dict()
        _add_extras(record, row)
        kind = result.error.kind if result.error is not None else None
        return Outcome(record=record, ok=result.termination in _FINAL_TERMINATIONS, error_kind=kind)

    def failure(self, row: InputRow, error: RolloutError) -> Outcome:
        """A rollout record for an item whose processing raised unexpectedly."""
        record: dict[str, Any] = {
            "prompt": row.prompt,
            "gen_prompt": "",
            "reference_images": [],
            "messages": [],
            "termination": "error",
            "rounds": 0,
            "error": error.to_dict(),
        }
        _add_extras(record, row)
        return Outcome(record=record, ok=False, error_kind=error.kind)


def _add_extras(record: dict[str, Any], row: InputRow) -> None:
    """Add ``id`` and the input's extra fields; the record's own fields win."""
    record["id"] = row.id
    for key, value in row.data.items():
        if key not in record:
            record[key] = value


class RenderStage:
    """Renders the row's program (or its request) to ``images/{safe_id}.png``.

    Args:
        renderer: The backend.
        out_dir: The output folder (images go to its ``images/``).
        parallel: Renders in flight.
        seed: Seed passed to the renderer.
        options: The backend keywords the renderer was made with (recorded in
            the checkpoint's settings, since they shape the images).
    """

    kind: ClassVar[StageKind] = "render"
    checkpoint_name: ClassVar[str] = "render.jsonl"
    results_name: ClassVar[str] = "results.json"

    def __init__(
        self,
        renderer: Renderer,
        *,
        out_dir: Path,
        parallel: int = 32,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.renderer = renderer
        self.options = dict(options or {})
        # Absolute once, here: records carry it, and the loop never touches the disk for it.
        self.images_dir = Path(os.path.abspath(out_dir)) / "images"
        self.parallel = parallel
        self.seed = seed

    async def prepare(self) -> None:
        """Create the images folder."""
        await anyio.Path(self.images_dir).mkdir(parents=True, exist_ok=True)

    def settings(self) -> dict[str, Any]:
        """The backend, seed and options (they shape the images)."""
        return {
            "backend": self.renderer.name,
            "render_seed": self.seed,
            "render_options": self.options,
        }

    async def process(self, row: InputRow) -> Outcome:
        """Render one row to ``images/{safe_id}.png``; failures become failed records."""
        dest = self.images_dir / f"{row.safe_id}.png"
        try:
            image = await render_program(
                self.renderer, row.data, request=row.prompt, seed=self.seed
            )
            await anyio.to_thread.run_sync(_save_png, image, dest)
        except ReferenceRequiredError as exc:
            return self.failure(row, RolloutError(kind="invalid_request", message=str(exc)))
        except Exception as exc:
            if is_fatal(exc):
                raise
            return self.failure(row, classify_exception(exc))
        record = {
            **row.data,
            "id": row.id,
            # Absolute, as the original wrote both; the judge still finds the
            # image when the folder moves (see JudgeStage._generated).
            "image_path": str(dest),
            "output_path": str(dest),
            "success": True,
            "image_status": "ok",
        }
        return Outcome(record=record, ok=True)

    def failure(self, row: InputRow, error: RolloutError) -> Outcome:
        """The row with ``success: false`` and ``image_status: "error: ..."``."""
        record = {
            **row.data,
            "id": row.id,
            "image_path": "",
            "output_path": "",
            "success": False,
            "image_status": f"error: {error}",
        }
        return Outcome(record=record, ok=False, error_kind=error.kind)


def _save_png(image: Image.Image, dest: Path) -> None:
    """Save through a temporary name, so a reader never sees half an image."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class EvalOutputs:
    """Where the judge stage's files go, and the whole set's denominator.

    The original's ``-o/--output-json``, ``--summary-json``,
    ``--summary-csv`` and ``--total-cases``; None keeps the default (the
    output folder's ``results_eval.json``, ``summary.json``, ``summary.csv``;
    the row count).
    """

    results_eval: Path | None = None
    summary_json: Path | None = None
    summary_csv: Path | None = None
    total_cases: int | None = None


class JudgeStage:
    """Scores the row's generated image against its ground truth.

    Args:
        judge: The judge client.
        image_root: Folder that relative ``image_path`` values resolve against
            (the rendered results' folder).
        parallel: Samples in flight (the judge client caps its requests too).
        outputs: Where its results files go and the whole set's denominator
            (the original's ``-o``, ``--summary-json``, ``--summary-csv``,
            ``--total-cases``); None: the defaults.
    """

    kind: ClassVar[StageKind] = "evaluate"
    checkpoint_name: ClassVar[str] = "eval.jsonl"
    results_name: ClassVar[str] = "results_eval.json"

    def __init__(
        self,
        judge: JudgeClient,
        *,
        image_root: Path,
        parallel: int = 16,
        outputs: EvalOutputs | None = None,
    ) -> None:
        self.judge = judge
        self.image_root = image_root
        self.parallel = parallel
        self.outputs = outputs

    async def prepare(self) -> None:
        """Nothing to prepare."""
        return None

    def settings(self) -> dict[str, Any]:
        """The judge model and a hash of the rubric (they shape the scores)."""
        settings = {"judge_model": self.judge.model, "rubric_sha256": _sha(self.judge.rubric)}
        if self.judge.user_template != DEFAULT_JUDGE_USER_TEMPLATE:
            # Only when changed, so checkpoints of earlier runs stay resumable.
            settings["user_template_sha256"] = _sha(self.judge.user_template)
        return settings

    async def process(self, row: InputRow) -> Outcome:
        """Judge one row; rows without both images fail without a request."""
        generated = await self._generated(row.data)
        if isinstance(generated, tuple):
            return self._failed(row, *generated)
        if row.gt_path is None:
            return self._failed(row, "missing_image", "the row names no gt_image")
        if not await anyio.Path(row.gt_path).is_file():
            return self._failed(
                row,
                "missing_image",
                f"ground-truth image not found: {row.data.get('gt_image')} "
                "(point --gt-root at the dataset folder)",
            )
        try:
            verdict = await self.judge.judge_sample(row.id, row.prompt, generated, row.gt_path)
        except JudgeImageError as exc:
            return self._failed(row, "invalid_request", str(exc))
        except Exception as exc:
            if is_fatal(exc):
                raise
            error = classify_exception(exc)
            return self._failed(row, error.kind, str(error))
        record = _eval_base(row)
        record.update(
            eval_success=True,
            # The original keeps the rationale inside `scores`; so do we (and beside).
            scores={"rationale": verdict.rationale, **verdict.scores},
            rationale=verdict.rationale,
            error=None,
            error_kind=None,
            judge_model=self.judge.model,
        )
        return Outcome(record=record, ok=True)

    def failure(self, row: InputRow, error: RolloutError) -> Outcome:
        """The evaluation row with ``eval_success: false`` and the error."""
        return self._failed(row, error.kind, str(error))

    def _failed(self, row: InputRow, kind: str, message: str) -> Outcome:
        record = _eval_base(row)
        record.update(
            eval_success=False,
            scores=None,
            rationale="",
            error=message,
            error_kind=kind,
            judge_model=self.judge.model,
        )
        return Outcome(record=record, ok=False, error_kind=kind)

    async def _generated(self, data: Mapping[str, Any]) -> Path | tuple[str, str]:
        """The generated image's path, or the failure's kind and why there is none.

        The paths come from a results file, which may be crafted or shared:
        one that resolves outside ``image_root`` is refused, not read.
        """
        if data.get("success") is False:
            why = f"no generated image: {data.get('image_status') or 'the render failed'}"
            return "missing_image", why
        refused = ""
        for key in ("image_path", "output_path"):
            value = data.get(key)
            if isinstance(value, str) and value:
                path = Path(value)
                # An absolute path into a folder since moved or merged: the
                # image under the results' own images/ folder stands in.
                tries = (
                    (path, self.image_root / "images" / path.name)
                    if path.is_absolute()
                    else (self.image_root / path,)
                )
                for candidate in tries:
                    inside = await anyio.to_thread.run_sync(
                        _inside, self.image_root, str(candidate)
                    )
                    if inside is None:
                        refused = refused or f"{key} {value[:80]!r} is outside {self.image_root}"
                    elif await anyio.Path(inside).is_file():
                        return inside
        if refused:
            return "invalid_request", refused
        named = data.get("image_path") or data.get("output_path")
        if not named:
            return "missing_image", "the row has no image_path (render it first)"
        return "missing_image", f"generated image not found: {str(named)[:200]}"


def _inside(root: Path, value: str) -> Path | None:
    """``value`` (relative to ``root`` unless absolute), when it resolves inside ``root``."""
    try:
        path = Path(value)
        real = os.path.realpath(path if path.is_absolute() else root / path)
        base = os.path.realpath(root)
    except (ValueError, OSError):  # a NUL byte, a loop of links
        return None
    return Path(real) if real == base or real.startswith(base.rstrip(os.sep) + os.sep) else None


def _prompts_sha(prompts: Any) -> str:
    return _sha("\0".join((prompts.final_step, prompts.format_error, prompts.truncated)))


def _eval_base(row: InputRow) -> dict[str, Any]:
    return {
        "id": row.id,
        **{k: v for k, v in row.data.items() if k not in _EVAL_DROPPED and k != "id"},
    }


def with_data(row: InputRow, data: dict[str, Any]) -> InputRow:
    """``row`` carrying another stage's record as its data."""
    return dataclasses.replace(row, data=data)
