"""The batch runner: a chain of stages over a lazy input, on one event loop.

Each stage has a fixed pool of workers (its in-flight cap) pulling items
from a memory object stream; the first stream is unbuffered, so input rows
are read only as fast as workers take them (backpressure: never one task
per row). A finished item is appended to the stage's checkpoint, then
handed to the next stage's stream: with the three stages chained
(``pipeline``), an item is rendered as soon as its rollout ends and judged
as soon as its image exists.

On resume each row goes to the first stage that has not finished it; a
later stage's line counts only if it was made from the earlier stage's
latest line (``up``), so an item redone upstream is redone downstream too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import anyio
import anyio.to_thread
import orjson
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import RolloutError, classify_exception
from ._checkpoint import (
    CheckpointEntry,
    CheckpointScan,
    CheckpointWriter,
    OutputLock,
    check_settings,
    read_records,
    scan_checkpoint,
)
from ._groups import Sampling
from ._inputs import BadRow, InputRow, InputSource, aiter_entries, count_rows
from ._progress import ProgressDisplay, StageProgress
from ._stages import JudgeStage, Outcome, Stage, is_fatal, with_data
from ._summary import StageSummary, finalize_stage

__all__ = ["BatchOptions", "BatchReport", "run_batch"]

logger = logging.getLogger("genevolve_async.pipeline")


@dataclass(kw_only=True, slots=True)
class BatchOptions:
    """How a batch treats earlier results, and how it reports."""

    resume: bool | None = None
    """``None``: resume when a checkpoint exists; ``False``: set old checkpoints aside."""
    force: bool = False
    """Resume even when the checkpoint was written with other settings."""
    retry_failed: bool = True
    """Run failed items of earlier sessions again (otherwise only missing ones)."""
    fsync: bool = False
    """``fsync`` each checkpoint line (survives power loss; slower)."""
    quiet: bool = False
    """No live progress line."""
    handle_signals: bool = False
    """SIGINT/SIGTERM stop the batch cleanly (results still written); SIGUSR1 writes
    the results files now. For the command line."""
    stream: TextIO | None = None
    """Where progress and messages go (default: standard error)."""


@dataclass(kw_only=True, slots=True)
class BatchReport:
    """What a batch did."""

    out_dir: Path
    summaries: list[StageSummary]
    progress: list[StageProgress]
    bad_rows: list[BadRow] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    """Stopped by a signal before the input was through."""

    def text(self) -> str:
        """The final summary table."""
        lines = [f"output: {self.out_dir}  ({self.seconds:.1f}s)"]
        if self.bad_rows:
            lines.append(f"bad input rows skipped: {len(self.bad_rows)}")
        if self.interrupted:
            lines.append("interrupted: rerun the same command to resume")
        for summary, progress in zip(self.summaries, self.progress, strict=True):
            lines.extend(summary.lines(progress.durations))
        return "\n".join(lines)


class _Item(NamedTuple):
    row: InputRow
    upstream: int | None
    """Checkpoint line of the previous stage this item comes from."""


class _Batch:
    def __init__(
        self, source: InputSource, out_dir: Path, stages: Sequence[Stage], options: BatchOptions
    ) -> None:
        self.source = source
        self.out_dir = out_dir
        self.stages = list(stages)
        self.options = options
        self.paths = [out_dir / stage.checkpoint_name for stage in stages]
        self.progress = [StageProgress(name=stage.kind) for stage in stages]
        self.display = ProgressDisplay(self.progress, quiet=options.quiet, stream=options.stream)
        self.scans: list[CheckpointScan] = []
        self.writers: list[CheckpointWriter] = []
        self.bad_rows: list[BadRow] = []
        self.fatal: BaseException | None = None
        self.interrupted = False
        self.work_scope = anyio.CancelScope()

    async def run(self) -> BatchReport:
        started = time.monotonic()
        if self.source.path is not None:  # a bad input path fails before anything is written
            await anyio.to_thread.run_sync(self.source.resolve)
        await anyio.Path(self.out_dir).mkdir(parents=True, exist_ok=True)
        lock = OutputLock(self.out_dir)
        await anyio.to_thread.run_sync(lock.acquire)
        try:
            for stage in self.stages:
                await stage.prepare()
            try:
                for stage, path in zip(self.stages, self.paths, strict=True):
                    await self._open_checkpoint(stage, path)
                await self._drive()
            finally:
                for writer in self.writers:
                    await writer.aclose()
                self.display.clear()
            summaries = await self.finalize()
        finally:
            lock.release()
        if self.fatal is not None:
            raise self.fatal
        return BatchReport(
            out_dir=self.out_dir,
            summaries=summaries,
            progress=self.progress,
            bad_rows=self.bad_rows,
            seconds=time.monotonic() - started,
            interrupted=self.interrupted,
        )

    async def _open_checkpoint(self, stage: Stage, path: Path) -> None:
        scan = await anyio.to_thread.run_sync(lambda: scan_checkpoint(path, repair=True))
        if scan.exists and self.options.resume is False:
            backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
            await anyio.to_thread.run_sync(os.replace, path, backup)
            self.display.message(f"--no-resume: moved the old checkpoint to {backup}")
            scan = CheckpointScan(path=path)
        if scan.torn_bytes:
            self.display.message(f"{path}: dropped a torn last line ({scan.torn_bytes} bytes)")
        if scan.bad_lines:
            self.display.message(f"{path}: ignoring unreadable lines {scan.bad_lines[:10]}")
        settings = {
            **stage.settings(),
            "shard": str(self.source.shard) if self.source.shard else None,
        }
        check_settings(scan, stage.kind, settings, force=self.options.force)
        writer = CheckpointWriter(
            path, stage=stage.kind, settings=settings, fsync=self.options.fsync
        )
        await writer.open(scan)
        self.scans.append(scan)
        self.writers.append(writer)

    async def _drive(self) -> None:
        total = await anyio.to_thread.run_sync(count_rows, self.source)
        for progress in self.progress:
            progress.total = total * self._fanout() if total is not None else None
        streams = [
            anyio.create_memory_object_stream[_Item](0 if i == 0 else stage.parallel)
            for i, stage in enumerate(self.stages)
        ]
        async with anyio.create_task_group() as outer:
            outer.start_soon(self.display.run)
            if self._can_watch_signals():
                await outer.start(self._watch_signals)
            with self.work_scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._produce, [send.clone() for send, _ in streams])
                    for i, stage in enumerate(self.stages):
                        following = streams[i + 1][0] if i + 1 < len(streams) else None
                        for _ in range(max(1, stage.parallel)):
                            tg.start_soon(
                                self._work,
                                i,
                                streams[i][1].clone(),
                                following.clone() if following is not None else None,
                            )
                    # Only the clones stay open: a stage's stream ends when the
                    # producer and every worker of the stage before it are done.
                    for send, receive in streams:
                        send.close()
                        receive.close()
            outer.cancel_scope.cancel()

    async def _produce(self, sends: list[MemoryObjectSendStream[_Item]]) -> None:
        rows = 0
        with contextlib.ExitStack() as stack:
            for send in sends:
                stack.enter_context(send)
            async with aclosing(aiter_entries(self.source)) as entries:
                async for entry in entries:
                    if isinstance(entry, BadRow):
                        self.bad_rows.append(entry)
                        self.display.bad_row(entry, self._source_name())
                        continue
                    for item in self._expand(entry):
                        rows += 1
                        await self._dispatch(item, sends)
        for progress in self.progress:
            progress.total = rows

    def _expand(self, row: InputRow) -> list[InputRow]:
        # A sampling rollout stage (here or on a cluster) turns each row into K items
        # before any stage sees them.
        expand = getattr(self.stages[0], "expand", None)
        return list(expand(row)) if expand is not None else [row]

    def _fanout(self) -> int:
        sampling = getattr(self.stages[0], "sampling", None)
        return sampling.count if isinstance(sampling, Sampling) else 1

    async def _dispatch(self, row: InputRow, sends: list[MemoryObjectSendStream[_Item]]) -> None:
        previous: CheckpointEntry | None = None
        for i, scan in enumerate(self.scans):
            entry = scan.entries.get(row.id)
            if not self._finished(entry, previous):
                if previous is not None:
                    record = await anyio.to_thread.run_sync(_read_one, self.paths[i - 1], previous)
                    row = with_data(row, record)
                await sends[i].send(_Item(row, previous.line if previous is not None else None))
                return
            self.progress[i].skipped += 1
            previous = entry

    def _finished(self, entry: CheckpointEntry | None, previous: CheckpointEntry | None) -> bool:
        if entry is None or not (entry.ok or not self.options.retry_failed):
            return False
        # Made from an older line of the previous stage: that stage redid the item since.
        return previous is None or entry.upstream is None or entry.upstream == previous.line

    async def _work(
        self,
        index: int,
        receive: MemoryObjectReceiveStream[_Item],
        send: MemoryObjectSendStream[_Item] | None,
    ) -> None:
        with receive, send if send is not None else contextlib.nullcontext():
            async for item in receive:
                outcome = await self._process(index, item.row)
                if outcome is None:
                    return
                outcome, line = await self._write(index, item, outcome)
                if send is not None:
                    await send.send(_Item(with_data(item.row, outcome.record), line))

    async def _write(self, index: int, item: _Item, outcome: Outcome) -> tuple[Outcome, int]:
        """Append the item's line; a record orjson refuses becomes the item's error record.

        A record can hold what a model or an input row put there (tool-call
        arguments nested hundreds deep, say). One such record must fail its
        item, not the batch, and must not fail the resume either.
        """
        writer, row = self.writers[index], item.row
        try:
            line = await writer.append(
                row_id=row.id,
                index=row.index,
                ok=outcome.ok,
                record=outcome.record,
                upstream=item.upstream,
            )
            return outcome, line
        except (TypeError, orjson.JSONEncodeError) as exc:
            reason = str(exc) or type(exc).__name__
        message = f"row {row.id!r} (line {row.line}): its record cannot be written: {reason}"
        logger.warning("%s: %s", self.stages[index].kind, message)
        progress = self.progress[index]
        if outcome.ok:  # counted as done when it finished; it failed after all
            progress.done -= 1
            progress.failed += 1
        failed = self.stages[index].failure(
            row, RolloutError(kind="invalid_request", message=message)
        )
        try:
            record = failed.record
            line = await writer.append(
                row_id=row.id, index=row.index, ok=False, record=record, upstream=item.upstream
            )
        except (TypeError, orjson.JSONEncodeError):
            # The failure record carries the row's own data, and that is what failed.
            record = {"id": row.id, "error": {"kind": "invalid_request", "message": message}}
            line = await writer.append(
                row_id=row.id, index=row.index, ok=False, record=record, upstream=item.upstream
            )
        return Outcome(record=record, ok=False, error_kind="invalid_request"), line

    async def _process(self, index: int, row: InputRow) -> Outcome | None:
        stage, progress = self.stages[index], self.progress[index]
        progress.in_flight += 1
        started = time.monotonic()
        try:
            outcome = await stage.process(row)
        except Exception as exc:
            if is_fatal(exc):
                self.fatal = self.fatal or exc
                self.work_scope.cancel()
                return None
            logger.exception(
                "%s: row %r (line %d) failed unexpectedly", stage.kind, row.id, row.line
            )
            outcome = stage.failure(row, classify_exception(exc))
        finally:
            progress.in_flight -= 1
        progress.finish(outcome.ok, time.monotonic() - started)
        return outcome

    def _can_watch_signals(self) -> bool:
        # Signal handlers live in the main thread only (and SIGUSR1 on POSIX only).
        return (
            self.options.handle_signals
            and hasattr(signal, "SIGUSR1")
            and threading.current_thread() is threading.main_thread()
        )

    async def _watch_signals(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGUSR1) as signals:
            task_status.started()
            async for signum in signals:
                if signum == signal.SIGUSR1:
                    await self.finalize()
                    self.display.message("results files written (SIGUSR1)")
                    continue
                self.interrupted = True
                self.display.message("stopping: items in flight are dropped; rerun to resume")
                self.work_scope.cancel()
                return

    async def finalize(self) -> list[StageSummary]:
        names = [stage.results_name for stage in self.stages]
        summaries = []
        for i, (stage, path) in enumerate(zip(self.stages, self.paths, strict=True)):
            # In a chain, a later stage's file of the same name holds these fields too.
            name = None if names[i] in names[i + 1 :] else names[i]
            outputs = stage.outputs if isinstance(stage, JudgeStage) else None
            summaries.append(
                await anyio.to_thread.run_sync(
                    partial(finalize_stage, eval_outputs=outputs),
                    stage.kind,
                    self.out_dir,
                    path,
                    name,
                )
            )
        return summaries

    def _source_name(self) -> str:
        return str(self.source.path) if self.source.path is not None else "--prompt"


def _read_one(path: Path, entry: CheckpointEntry) -> dict[str, Any]:
    return next(read_records(path, [entry]))


async def run_batch(
    source: InputSource,
    out_dir: str | os.PathLike[str],
    stages: Sequence[Stage],
    *,
    options: BatchOptions | None = None,
) -> BatchReport:
    """Run ``stages`` (one, or a chain) over every row of ``source``.

    Args:
        source: The input rows.
        out_dir: The output folder: checkpoints, results files, images.
        stages: The stages, in order; each item flows through all of them.
        options: Resume, retry and display settings.

    Returns:
        The figures of every stage and the session's counts.

    Raises:
        ConfigurationError: Bad input path, a checkpoint of other settings,
            or a folder another process is writing to.
        AuthenticationError: A service refused its key (results so far are written).
        BatchAborted: A failure every item would share (results so far are written).
    """
    if not stages:
        raise ValueError("run_batch needs at least one stage")
    batch = _Batch(source, Path(out_dir), stages, options or BatchOptions())
    return await batch.run()
