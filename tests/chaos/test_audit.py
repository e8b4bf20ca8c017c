"""The chaos run's bookkeeping on hand-made cases: a checker that cannot fail proves nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from genevolve_async import ConfigurationError, ProviderLimits
from genevolve_async._limits import ProviderLimiter
from genevolve_async.bench import ChaosConfig, ChaosReport
from genevolve_async.bench._chaos_audit import (
    Census,
    LimiterCheck,
    OutputAudit,
    audit_outputs,
    check_limiter,
    find_secrets,
    find_temp_files,
)


def _checkpoint(path: Path, ids: list[str]) -> None:
    header = {"genevolve_checkpoint": 1, "stage": "x", "settings": {}}
    lines = [json.dumps(header)]
    lines += [
        json.dumps({"id": i, "index": n, "ok": True, "record": {}}) for n, i in enumerate(ids)
    ]
    path.write_text("\n".join(lines) + "\n")


def _folder(tmp_path: Path, rendered: list[dict[str, Any]], judged: list[dict[str, Any]]) -> Path:
    ids = [r["id"] for r in rendered]
    for name in ("rollouts.jsonl", "render.jsonl", "eval.jsonl"):
        _checkpoint(tmp_path / name, ids)
    (tmp_path / "results.json").write_text(json.dumps(rendered))
    (tmp_path / "results_eval.json").write_text(json.dumps(judged))
    return tmp_path


def test_each_id_is_sorted_by_how_it_ended(tmp_path: Path) -> None:
    answered = {"termination": "answer", "success": True}
    rendered: list[dict[str, Any]] = [
        {"id": "ok", **answered},
        {"id": "run", "termination": "error", "error": {"kind": "rate_limited", "message": ""}},
        {"id": "render", "termination": "answer", "success": False,
         "image_status": "error: bad_response: success false"},
        {"id": "judge", **answered},
        {"id": "odd", "termination": "error", "error": {"kind": "gremlins", "message": ""}},
    ]  # fmt: skip
    judged: list[dict[str, Any]] = [
        {"id": "ok", "eval_success": True},
        {"id": "run", "eval_success": False, "error_kind": "missing_image"},
        {"id": "render", "eval_success": False, "error_kind": "missing_image"},
        {"id": "judge", "eval_success": False, "error_kind": "timeout"},
        {"id": "odd", "eval_success": False, "error_kind": "missing_image"},
        {"summary_type": "overall_avg"},
    ]
    audit = audit_outputs(
        _folder(tmp_path, rendered, judged), ["ok", "run", "render", "judge", "odd"]
    )
    assert (audit.with_output, audit.classified_error, audit.unclassified) == (1, 3, 1)
    assert audit.lost == audit.duplicated == audit.unknown_ids == 0
    assert dict(audit.errors_by_kind) == {
        "run:rate_limited": 1,
        "render:bad_response": 1,
        "evaluate:timeout": 1,
        "run:gremlins": 1,
    }


def test_lost_duplicated_and_unknown_ids_are_counted(tmp_path: Path) -> None:
    rendered = [{"id": i, "termination": "answer", "success": True} for i in ("a", "b")]
    judged = [{"id": "a", "eval_success": True}, {"id": "a", "eval_success": True}]
    folder = _folder(tmp_path, rendered, judged)
    _checkpoint(folder / "eval.jsonl", ["a", "a", "z"])
    audit = audit_outputs(folder, ["a", "b", "c"])
    assert audit.lost == 2  # b never judged, c nowhere
    assert audit.duplicated == 2  # a twice in eval.jsonl, twice in results_eval.json
    assert audit.unknown_ids == 1  # z
    assert audit.with_output == 1


async def test_a_limiter_over_its_rate_or_cap_is_a_violation() -> None:
    limiter = ProviderLimiter("x", ProviderLimits(rate=5, max_in_flight=2), record_grants=True)
    assert limiter.grant_times is not None
    limiter.grant_times.extend([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.95, 1.2])
    limiter.stats.peak_in_flight = 3
    check = check_limiter(limiter)
    assert check.max_in_1s == 7 and check.violations == (7 - 5) + (3 - 2)
    assert (
        LimiterCheck(
            name="ok", rate=5, max_in_flight=None, grants=5, max_in_1s=5, peak_in_flight=9
        ).violations
        == 0
    )


async def test_the_census_sees_a_descriptor_left_open(tmp_path: Path) -> None:
    before = Census.take()
    if before.fds < 0:
        pytest.skip("this platform cannot list file descriptors")
    handle = (tmp_path / "f").open("w")
    try:
        leaked = await Census.settle(before, timeout=0.1)
        assert leaked.fds == before.fds + 1
        assert any(str(tmp_path / "f") in name for name in leaked.new_fds(before))
    finally:
        handle.close()
    assert (await Census.settle(before)).within(before)


async def test_the_census_counts_tasks() -> None:
    before = Census.take()
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.sleep_forever)
        await anyio.lowlevel.checkpoint()
        assert Census.take().tasks == before.tasks + 1
        tg.cancel_scope.cancel()


def test_temp_files_and_secrets_are_found(tmp_path: Path) -> None:
    (tmp_path / "cache" / ".partial").mkdir(parents=True)
    (tmp_path / "cache" / ".partial" / "download").write_bytes(b"x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".results.json.abc.tmp").write_bytes(b"x")
    (tmp_path / "out" / "results.json").write_text('{"note": "sk-secret-key-1"}')
    assert len(find_temp_files(tmp_path / "out", tmp_path / "cache")) == 2
    assert find_secrets(["sk-secret-key-1", "other"], [tmp_path], ["a line with other"]) == 2


def test_the_report_names_every_broken_invariant() -> None:
    report = ChaosReport(
        rollouts=3, in_flight=1, outputs=OutputAudit(attempted=3, with_output=2, lost=1)
    )
    assert report.ok is False and report.problems() == ["1 ids lost"]
    report.leaked_fds, report.leaked_fd_names = 1, ["9 -> /tmp/x"]
    assert "1 leaked file descriptors" in report.problems()
    table = report.table()
    assert "lost                         1" in table and "9 -> /tmp/x" in table
    assert table.endswith("verdict: FAILED: 1 ids lost; 1 leaked file descriptors")
    assert json.dumps(report.to_dict())  # JSON-ready


def test_the_config_refuses_what_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError):
        ChaosConfig(slow_seconds=1.0, call_timeout=2.0)
    with pytest.raises(ConfigurationError):
        ChaosConfig(replicas=1)
    monkeypatch.setenv("GENEVOLVE_CHAOS_ROLLOUTS", "12")
    assert ChaosConfig.from_env(rollouts=400, in_flight=7).rollouts == 12
    monkeypatch.setenv("GENEVOLVE_CHAOS_IN_FLIGHT", "many")
    with pytest.raises(ConfigurationError, match="GENEVOLVE_CHAOS_IN_FLIGHT"):
        ChaosConfig.from_env()
