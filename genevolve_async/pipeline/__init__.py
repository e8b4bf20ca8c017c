"""Batch runs: input rows, JSONL checkpoints, and the rollout → render → judge stages.

The command line (``python -m genevolve_async run|render|evaluate|pipeline|merge|export``)
is built on these; they can be used directly too::

    source = InputSource(path=Path("bench/test.jsonl"))
    async with Runtime() as runtime:
        agent = GenEvolveAgent(runtime=runtime, base_url="http://localhost:8000/v1")
        report = await run_batch(source, "runs/x", [RolloutStage(agent, parallel=64)])
    print(report.text())
"""

from __future__ import annotations

from ._checkpoint import CheckpointEntry as CheckpointEntry
from ._checkpoint import CheckpointScan as CheckpointScan
from ._checkpoint import scan_checkpoint as scan_checkpoint
from ._export import ExportOptions as ExportOptions
from ._export import ExportReport as ExportReport
from ._export import export_trajectories as export_trajectories
from ._groups import GroupReport as GroupReport
from ._groups import GroupSplit as GroupSplit
from ._groups import GroupSummary as GroupSummary
from ._groups import Sampling as Sampling
from ._ids import Shard as Shard
from ._ids import safe_file_stem as safe_file_stem
from ._inputs import BadRow as BadRow
from ._inputs import InputRow as InputRow
from ._inputs import InputSource as InputSource
from ._inputs import iter_entries as iter_entries
from ._merge import MergeReport as MergeReport
from ._merge import merge_checkpoints as merge_checkpoints
from ._runner import BatchOptions as BatchOptions
from ._runner import BatchReport as BatchReport
from ._runner import run_batch as run_batch
from ._stages import BatchAborted as BatchAborted
from ._stages import EvalOutputs as EvalOutputs
from ._stages import JudgeStage as JudgeStage
from ._stages import Outcome as Outcome
from ._stages import RenderStage as RenderStage
from ._stages import RolloutStage as RolloutStage
from ._stages import Stage as Stage
from ._stages import StageKind as StageKind
from ._summary import StageSummary as StageSummary
from ._summary import finalize_stage as finalize_stage

__all__ = [
    "BadRow",
    "BatchAborted",
    "BatchOptions",
    "BatchReport",
    "CheckpointEntry",
    "CheckpointScan",
    "EvalOutputs",
    "ExportOptions",
    "ExportReport",
    "GroupReport",
    "GroupSplit",
    "GroupSummary",
    "InputRow",
    "InputSource",
    "JudgeStage",
    "MergeReport",
    "Outcome",
    "RenderStage",
    "RolloutStage",
    "Sampling",
    "Shard",
    "Stage",
    "StageKind",
    "StageSummary",
    "export_trajectories",
    "finalize_stage",
    "iter_entries",
    "merge_checkpoints",
    "run_batch",
    "safe_file_stem",
    "scan_checkpoint",
]
