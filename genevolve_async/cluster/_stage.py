"""The rollout stage of a batch, run by cluster workers instead of this process.

It is the batch runner's ordinary rollout stage seen from the driver: the
same kind, checkpoint, settings (so a cluster run resumes a single-process
one and the other way round), sampling expansion and failure records; only
``process`` differs, handing the row to a worker. The runner keeps doing
everything else on the driver alone: reading input, bad-row reports,
resume, exactly-once checkpoint lines and the results files.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .._errors import RolloutError
from ..pipeline._inputs import InputRow
from ..pipeline._stages import Outcome, RolloutStage, StageKind
from ._dispatch import Dispatcher

__all__ = ["ClusterRolloutStage"]


class ClusterRolloutStage:
    """A :class:`RolloutStage` whose rollouts run on the cluster's workers.

    Args:
        local: The stage as this process would run it (its settings, sampling
            and failure records are used; its agent is not).
        dispatcher: The job's workers.
    """

    kind: ClassVar[StageKind] = "run"
    checkpoint_name: ClassVar[str] = RolloutStage.checkpoint_name
    results_name: ClassVar[str] = RolloutStage.results_name

    def __init__(self, local: RolloutStage, dispatcher: Dispatcher) -> None:
        self.local = local
        self.dispatcher = dispatcher
        self.sampling = local.sampling
        # Enough runner tasks to fill every worker's credits and keep a pull ahead queued.
        self.parallel = dispatcher.workers * (dispatcher.per_worker + dispatcher.batch)

    async def prepare(self) -> None:
        """Hash the skills, as the local stage does (its settings need them)."""
        await self.local.prepare()

    def settings(self) -> dict[str, Any]:
        """The local stage's settings: where a rollout ran does not shape it."""
        return self.local.settings()

    def expand(self, row: InputRow) -> list[InputRow]:
        """The items of one input row (its K samples when sampling)."""
        return self.local.expand(row)

    async def process(self, row: InputRow) -> Outcome:
        """Run the row on some worker."""
        return await self.dispatcher.submit(row)

    def failure(self, row: InputRow, error: RolloutError) -> Outcome:
        """The local stage's failed record."""
        return self.local.failure(row, error)
