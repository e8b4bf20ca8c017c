"""What a chaos run must leave behind, checked: its report, census and audit.

Pure bookkeeping, no services: a :class:`Census` counts the process's
tasks, file descriptors and sockets; :func:`audit_outputs` reads a finished
pipeline folder and sorts every input id into "ended with output" or
"ended with a classified error" (or lost, duplicated, unclassified); and
:class:`ChaosReport` holds the figures, says which invariants failed
(:meth:`ChaosReport.problems`) and prints the table.
"""

from __future__ import annotations

import math
import os
import typing
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson

from .._errors import ErrorKind
from .._limits import ProviderLimiter, max_in_window

__all__ = [
    "ChaosReport",
    "LimiterCheck",
    "OutputAudit",
    "audit_outputs",
    "check_limiter",
    "find_secrets",
    "find_temp_files",
]

ERROR_KINDS: frozenset[str] = frozenset(typing.get_args(ErrorKind))
"""The classified error kinds a failed item may end with."""

_CHECKPOINTS = ("rollouts.jsonl", "render.jsonl", "eval.jsonl")
# libuv (uvloop) opens /dev/null when a loop's first server starts listening and
# keeps it for the loop's life: its spare descriptor for accepting under EMFILE.
# The loop's, not ours: not counted.
_LOOP_OWNED = frozenset({"/dev/null"})
_TEMP_SUFFIXES = (".tmp", ".part")


# -- the process census ---------------------------------------------------------


@dataclass(kw_only=True, slots=True, frozen=True)
class Census:
    """Counts of what the process holds at one moment."""

    tasks: int
    """Tasks on the event loop."""
    fds: int
    """Open file descriptors, the event loop's own spare left out (-1: cannot list them)."""
    sockets: int
    """Open sockets among them (-1: unknown)."""
    fd_targets: frozenset[str] = frozenset()
    """``fd -> target`` of each descriptor, where the platform says (to name a leak)."""

    @classmethod
    def take(cls) -> Census:
        """Count now (from inside the event loop)."""
        fds, sockets, targets = _count_fds()
        return cls(
            tasks=len(anyio.get_running_tasks()), fds=fds, sockets=sockets, fd_targets=targets
        )

    def within(self, baseline: Census) -> bool:
        """Whether nothing is held beyond ``baseline``."""
        return (
            self.tasks <= baseline.tasks
            and self.fds <= baseline.fds
            and self.sockets <= baseline.sockets
        )

    def new_fds(self, baseline: Census) -> list[str]:
        """Descriptors open now that were not open in ``baseline``."""
        return sorted(self.fd_targets - baseline.fd_targets)

    @staticmethod
    async def settle(baseline: Census, *, timeout: float = 5.0) -> Census:
        """Count until the process is back to ``baseline``, or ``timeout`` passes.

        A closed socket leaves the descriptor table at the loop's next turn,
        and a server's connection tasks end a few turns after the client
        left: a leak is what is still there after the grace period.
        """
        deadline = anyio.current_time() + timeout
        while True:
            now = Census.take()
            if now.within(baseline) or anyio.current_time() >= deadline:
                return now
            await anyio.sleep(0.05)


def _count_fds() -> tuple[int, int, frozenset[str]]:
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        fds = sockets = 0
        targets: set[str] = set()
        for name in names:
            try:
                target = os.readlink(os.path.join(folder, name))
            except OSError:
                # The descriptor listdir used for the folder itself (gone now),
                # or a platform without readlink on descriptors.
                if folder == "/dev/fd":
                    fds += 1
                continue
            if target in _LOOP_OWNED:
                continue
            fds += 1
            sockets += target.startswith("socket:")
            targets.add(f"{name} -> {target}")
        return fds, (sockets if folder == "/proc/self/fd" else -1), frozenset(targets)
    return -1, -1, frozenset()


# -- rate limits ----------------------------------------------------------------


@dataclass(kw_only=True, slots=True, frozen=True)
class LimiterCheck:
    """One limiter's grants against its configured limits."""

    name: str
    rate: float | None
    """Configured requests per second (``None``: unlimited)."""
    max_in_flight: int | None
    grants: int
    """Admissions, retries included (each attempt passes the limiter)."""
    waited: int = 0
    """Admissions that had to wait: the limit was binding."""
    max_in_1s: int
    """Most grants inside any one-second window ``[t, t + 1)``."""
    peak_in_flight: int

    @property
    def violations(self) -> int:
        """How far the busiest window and the in-flight peak went past the limits."""
        over = 0
        if self.rate is not None:
            # Grants spaced 1/rate apart: any one-second window holds at most ceil(rate).
            over += max(0, self.max_in_1s - math.ceil(self.rate - 1e-9))
        if self.max_in_flight is not None:
            over += max(0, self.peak_in_flight - self.max_in_flight)
        return over

    def text(self) -> str:
        """One line: limits and what was observed."""
        rate = f"{self.rate:g}/s" if self.rate is not None else "no rate"
        cap = (
            f", in flight {self.peak_in_flight}/{self.max_in_flight}" if self.max_in_flight else ""
        )
        return (
            f"{self.name} {rate}: {self.grants} grants ({self.waited} waited), "
            f"busiest 1s {self.max_in_1s}{cap}"
        )


def check_limiter(limiter: ProviderLimiter) -> LimiterCheck:
    """Check a limiter that recorded its grants (``RuntimeConfig.record_grants``)."""
    times = list(limiter.grant_times or ())
    return LimiterCheck(
        name=limiter.name,
        rate=limiter.limits.rate,
        max_in_flight=limiter.limits.max_in_flight,
        grants=limiter.stats.grants,
        waited=limiter.stats.waits,
        max_in_1s=max_in_window(times, 1.0) if times else 0,
        peak_in_flight=limiter.stats.peak_in_flight,
    )


# -- the output folder ----------------------------------------------------------


@dataclass(kw_only=True, slots=True)
class OutputAudit:
    """Where every input id of a pipeline run ended."""

    attempted: int = 0
    with_output: int = 0
    """Judged: the item went all the way through."""
    classified_error: int = 0
    """Ended with an error of a known kind at some stage."""
    lost: int = 0
    """Input ids missing from the results (or from a stage's checkpoint)."""
    duplicated: int = 0
    """Extra lines or rows for an id that should appear once."""
    unclassified: int = 0
    """Failed items whose error has no known kind."""
    unknown_ids: int = 0
    """Ids in the results that were not in the input."""
    errors_by_kind: Counter[str] = field(default_factory=Counter)
    """``stage:kind`` of the first stage each failed item failed at."""


def audit_outputs(out_dir: Path, input_ids: Sequence[str]) -> OutputAudit:
    """Sort each input id of a finished ``pipeline`` folder by how it ended (blocking).

    Reads ``results.json`` (rollout and render fields), ``results_eval.json``
    (the judge's rows) and the three checkpoints (each id once per stage in
    a fresh run).
    """
    audit = OutputAudit(attempted=len(input_ids))
    wanted = set(input_ids)
    missing: set[str] = set()
    unknown: set[str] = set()
    for name in _CHECKPOINTS:
        seen = Counter(_checkpoint_ids(out_dir / name))
        audit.duplicated += sum(n - 1 for n in seen.values() if n > 1)
        missing |= wanted - set(seen)
        unknown |= set(seen) - wanted
    rendered = {str(r.get("id")): r for r in _rows(out_dir / "results.json")}
    judged: dict[str, dict[str, Any]] = {}
    for row in _rows(out_dir / "results_eval.json"):
        if "summary_type" in row:
            continue
        row_id = str(row.get("id"))
        if row_id in judged:
            audit.duplicated += 1
        judged[row_id] = row
    missing |= wanted - set(judged)
    unknown |= set(judged) - wanted
    audit.lost, audit.unknown_ids = len(missing), len(unknown)
    for row_id in input_ids:
        if row_id in missing:
            continue
        row = judged[row_id]
        if row.get("eval_success") is True:
            audit.with_output += 1
            continue
        stage, kind = _first_failure(rendered.get(row_id, {}), row)
        audit.errors_by_kind[f"{stage}:{kind}"] += 1
        if kind in ERROR_KINDS:
            audit.classified_error += 1
        else:
            audit.unclassified += 1
    return audit


def _first_failure(rendered: Mapping[str, Any], judged: Mapping[str, Any]) -> tuple[str, str]:
    """The stage an item failed at first, and its error kind."""
    if rendered.get("termination") != "answer":
        error = rendered.get("error")
        kind = error.get("kind") if isinstance(error, dict) else None
        return "run", str(kind or "unclassified")
    if rendered.get("success") is not True:
        status = rendered.get("image_status")
        # image_status reads "error: <kind>: <message>".
        if isinstance(status, str) and status.startswith("error: "):
            return "render", status[len("error: ") :].split(":", 1)[0].strip()
        return "render", "unclassified"
    return "evaluate", str(judged.get("error_kind") or "unclassified")


def _checkpoint_ids(path: Path) -> Iterable[str]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        for number, line in enumerate(handle, 1):
            if number == 1 or not line.strip():
                continue  # the header
            try:
                yield str(orjson.loads(line).get("id"))
            except (orjson.JSONDecodeError, AttributeError):
                yield "<unreadable line>"


def _rows(path: Path) -> list[dict[str, Any]]:
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return []
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


def find_temp_files(*roots: Path) -> list[Path]:
    """Temp files left under ``roots``: ``*.tmp``, ``*.part``, anything in a ``.partial`` folder."""
    found: list[Path] = []
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            partial = os.path.basename(folder) == ".partial"
            found += [Path(folder, n) for n in names if partial or n.endswith(_TEMP_SUFFIXES)]
    return sorted(found)


def find_secrets(secrets: Iterable[str], roots: Iterable[Path], texts: Iterable[str] = ()) -> int:
    """How many (file or text, secret) pairs contain a secret (blocking)."""
    needles = [s.encode() for s in secrets if s]
    hits = 0
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                try:
                    data = Path(folder, name).read_bytes()
                except OSError:
                    continue
                hits += sum(1 for needle in needles if needle in data)
    for text in texts:
        data = text.encode("utf-8", "replace")
        hits += sum(1 for needle in needles if needle in data)
    return hits


# -- the report ------------------------------------------------------------------


@dataclass(kw_only=True, slots=True)
class ChaosReport:
    """The figures of one chaos run; :meth:`problems` lists the broken invariants."""

    rollouts: int
    in_flight: int
    outputs: OutputAudit
    limiters: list[LimiterCheck] = field(default_factory=list)
    leaked_tasks: int = 0
    leaked_fds: int = 0
    leaked_sockets: int = 0
    leaked_fd_names: list[str] = field(default_factory=list)
    """What the leaked descriptors point at (``fd -> target``), when the platform says."""
    temp_files: list[str] = field(default_factory=list)
    connections_in_use: int = 0
    """Pool connections still checked out when the batch returned."""
    secret_leaks: int = 0
    """Output files and log lines holding an API key."""
    error_logs: list[str] = field(default_factory=list)
    """ERROR records of our code or of the event loop (escaped exceptions, unclosed clients)."""
    loop_lag_max_s: float = 0.0
    loop_cpu_max_s: float = 0.0
    """The loop thread's own CPU in its worst stretch (``LoopLagProbe.worst_cpu``)."""
    duration_s: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    """Faults the simulated services served, as ``service:kind``."""
    retries: dict[str, int] = field(default_factory=dict)
    image_drops: dict[str, int] = field(default_factory=dict)
    replica: dict[str, Any] = field(default_factory=dict)
    """The dying replica: requests dropped, seconds down, requests served after it came back."""
    fault_mix: str = ""

    @property
    def rate_limit_violations(self) -> int:
        """Sum of every limiter's excess (0 when all limits held)."""
        return sum(check.violations for check in self.limiters)

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """Every invariant the run broke, in words (empty when it held)."""
        out = self.outputs
        checks = [
            (out.lost, "ids lost"),
            (out.duplicated, "ids duplicated"),
            (out.unclassified, "failed ids without a classified error"),
            (out.unknown_ids, "ids in the results that were not in the input"),
            (self.rate_limit_violations, "rate-limit violations"),
            (self.leaked_tasks, "leaked tasks"),
            (self.leaked_fds, "leaked file descriptors"),
            (self.leaked_sockets, "leaked sockets"),
            (len(self.temp_files), "temp files left"),
            (self.connections_in_use, "connections still in use"),
            (self.secret_leaks, "secrets in outputs or logs"),
            (len(self.error_logs), "error log records"),
            (out.attempted - out.with_output - out.classified_error - out.unclassified - out.lost,
             "ids unaccounted for"),
        ]  # fmt: skip
        return [f"{count} {what}" for count, what in checks if count]

    def rows(self) -> list[tuple[str, str]]:
        """The table's rows: (figure, value)."""
        out = self.outputs
        kinds = ", ".join(f"{k} {v}" for k, v in out.errors_by_kind.most_common())
        return [
            ("rollouts attempted", f"{out.attempted}  ({self.in_flight} in flight)"),
            ("ended with output", str(out.with_output)),
            ("ended with classified error", f"{out.classified_error}  ({kinds or 'none'})"),
            ("lost", str(out.lost)),
            ("duplicated", str(out.duplicated)),
            ("unclassified", str(out.unclassified)),
            ("rate-limit violations", f"{self.rate_limit_violations}  ({self._limits_text()})"),
            ("leaked tasks", str(self.leaked_tasks)),
            ("leaked fds", f"{self.leaked_fds}  (sockets {self.leaked_sockets}){self._fd_names()}"),
            ("leaked temp files", str(len(self.temp_files))),
            ("connections in use at end", str(self.connections_in_use)),
            ("secrets in outputs/logs", str(self.secret_leaks)),
            ("error log records", str(len(self.error_logs))),
            (
                "worst loop lag",
                f"{1000 * self.loop_lag_max_s:.1f} ms  (loop CPU {1000 * self.loop_cpu_max_s:.1f} ms)",
            ),
            ("faults injected", _counts(self.faults)),
            ("retries", _counts(self.retries)),
            ("images dropped", _counts(self.image_drops)),
            ("dying replica", _counts(self.replica)),
            ("duration", f"{self.duration_s:.1f} s"),
        ]

    def table(self) -> str:
        """The figures as an aligned text table, with the verdict last."""
        rows = self.rows()
        width = max(len(name) for name, _ in rows)
        lines = [f"chaos run: {self.fault_mix}"] if self.fault_mix else []
        lines += [f"{name:<{width}}  {value}" for name, value in rows]
        problems = self.problems()
        lines.append("verdict: " + ("ok" if not problems else "FAILED: " + "; ".join(problems)))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        data = asdict(self)
        data["outputs"]["errors_by_kind"] = dict(self.outputs.errors_by_kind)
        data["limiters"] = [{**asdict(c), "violations": c.violations} for c in self.limiters]
        data["rate_limit_violations"] = self.rate_limit_violations
        data["problems"] = self.problems()
        return data

    def _fd_names(self) -> str:
        return f": {', '.join(self.leaked_fd_names[:5])}" if self.leaked_fds else ""

    def _limits_text(self) -> str:
        return "; ".join(c.text() for c in self.limiters if c.rate or c.max_in_flight)


def _counts(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items()) or "none"
