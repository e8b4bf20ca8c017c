"""Cluster runs on the session's local Ray instance, against loopback sims.

The workers are real Ray actors in their own processes; they reach the sims
over sockets like any client.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from genevolve_async import AgentConfig, ProviderLimits, Runtime
from genevolve_async._limits import max_in_window
from genevolve_async.cluster import Cluster
from genevolve_async.pipeline import BatchOptions, InputSource, RolloutStage, run_batch

from ..pipeline._sims import Sims, bench_rows, checkpoint_lines, load_json, start_sims, write_bench
from .conftest import ROOT

pytestmark = pytest.mark.usefixtures("ray_address")

RATE = 20.0


@pytest.fixture
async def sims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sims]:
    async with start_sims(model_latency=0.02) as started:
        for key, value in started.env(tmp_path / "cache").items():
            monkeypatch.setenv(key, value)  # the workers get these from the driver
        yield started


def _comparable(records: list[dict[str, Any]], cache: Path) -> list[dict[str, Any]]:
    """Records without what differs between two runs of one seed: ids of rollouts, times."""
    text = json.dumps(records).replace(str(cache), "<cache>")
    out = json.loads(text)
    for record in out:
        record.pop("rollout_id", None)
        record.pop("timings", None)
    return out


async def test_map_streams_every_row_from_both_workers(sims: Sims, tmp_path: Path) -> None:
    rows: list[dict[str, Any] | str] = [{"id": f"r{i}", "prompt": f"a fox {i}"} for i in range(24)]
    rows.append({"id": "r3", "prompt": "a duplicate id"})
    async with Cluster(workers=2, parallel=8, batch=2) as cluster:
        records = [
            r
            async for r in cluster.map(
                rows,
                AgentConfig(base_url=sims.policy_url, seed=3),
                tools=sims.tools(tmp_path / "c"),
            )
        ]
        assert cluster.dispatcher is not None
        taken = [w.taken for w in cluster.dispatcher.live]
    assert sorted(r["id"] for r in records) == sorted(f"r{i}" for i in range(24))
    assert all(r["termination"] == "answer" for r in records)
    assert [b.row_id for b in cluster.bad_rows] == ["r3"]
    assert len(taken) == 2 and all(t > 0 for t in taken), taken


async def test_two_workers_give_the_single_process_records_within_the_limit(
    sims: Sims, tmp_path: Path
) -> None:
    data = write_bench(tmp_path / "bench", bench_rows(20))
    limits = {"serper": ProviderLimits(rate=RATE)}
    options = BatchOptions(quiet=True)
    single_cache, cluster_cache = tmp_path / "c1", tmp_path / "c2"
    async with Runtime(limits=limits) as runtime:
        stage = RolloutStage(sims.agent(runtime, single_cache, seed=11), parallel=16)
        await run_batch(InputSource(path=data), tmp_path / "single", [stage], options=options)

    sims.serper.arrivals["search"].clear()
    sims.serper.arrivals["images"].clear()
    config = AgentConfig(base_url=sims.policy_url, seed=11)
    async with Cluster(workers=2, parallel=16, limits=limits, record_grants=True) as cluster:
        report = await cluster.run_batch(
            InputSource(path=data),
            tmp_path / "cluster",
            config,
            tools=sims.tools(cluster_cache),
            options=options,
        )
        assert cluster.dispatcher is not None
        stats = cluster.dispatcher.final_stats
    assert not report.bad_rows

    single = load_json(tmp_path / "single" / "results.json")
    clustered = load_json(tmp_path / "cluster" / "results.json")
    assert _comparable(clustered, cluster_cache) == _comparable(single, single_cache)

    grants = [t for s in stats for t in s["limiters"]["serper"]["grant_times"]]
    arrivals = sims.serper.request_times()
    assert len(stats) == 2 and all(s["limiters"]["serper"]["grants"] > 0 for s in stats)
    assert len(grants) == len(arrivals) > 2 * RATE  # enough calls to press on the limit
    assert max_in_window(grants) <= RATE
    assert max_in_window(arrivals) <= RATE


async def test_a_killed_worker_gives_its_items_back(sims: Sims, tmp_path: Path) -> None:
    data = write_bench(tmp_path / "bench", bench_rows(60))
    out = tmp_path / "out"
    checkpoint = out / "rollouts.jsonl"
    config = AgentConfig(base_url=sims.policy_url, seed=5)
    killed: list[int] = []

    async def kill_one(cluster: Cluster) -> None:
        with anyio.fail_after(120):
            # Nothing to wait on but the file itself: poll it.
            while _lines(checkpoint) < 16:
                assert not killed
                await anyio.sleep(0.02)
        assert cluster.dispatcher is not None
        victim = cluster.dispatcher.live[0]
        os.kill(victim.pid, signal.SIGKILL)
        killed.append(victim.pid)

    async with Cluster(workers=2, parallel=12, max_restarts=1) as cluster:
        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_one, cluster)
            await cluster.run_batch(
                InputSource(path=data),
                out,
                config,
                tools=sims.tools(tmp_path / "cache"),
                options=BatchOptions(quiet=True),
            )
        assert cluster.dispatcher is not None
        deaths = cluster.dispatcher.deaths
    assert killed and deaths == 1
    ids = [line["id"] for line in checkpoint_lines(checkpoint)]
    assert sorted(ids, key=int) == [str(i) for i in range(60)]  # every id exactly once
    results = load_json(out / "results.json")
    assert [r["id"] for r in results] == [str(i) for i in range(60)]
    assert all(r["termination"] == "answer" for r in results)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _cli_env(sims: Sims, cache: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "GENEVOLVE_", "SERPER_"))
    }
    return {**env, **sims.env(cache), "PYTHONPATH": str(ROOT)}


async def _cli(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = await anyio.run_process(
        [sys.executable, "-m", "genevolve_async", *argv], env=env, check=False, cwd=ROOT
    )
    return result.returncode, result.stdout.decode() + result.stderr.decode()


async def test_the_run_command_on_ray_matches_a_single_process_run_and_resumes_a_killed_driver(
    sims: Sims, tmp_path: Path, ray_address: str
) -> None:
    data = write_bench(tmp_path / "bench", bench_rows(16))
    common = ["run", "--input", str(data), "--base-url", sims.policy_url, "--seed", "4"]
    common += ["--search-rps", str(RATE), "--parallel", "8", "--quiet"]
    code, output = await _cli(
        [*common, "--output-dir", str(tmp_path / "one")], _cli_env(sims, tmp_path / "c1")
    )
    assert code == 0, output
    sims.serper.arrivals["search"].clear()
    sims.serper.arrivals["images"].clear()

    argv = [*common, "--output-dir", str(tmp_path / "two"), "--ray", ray_address, "--workers", "2"]
    checkpoint = tmp_path / "two" / "rollouts.jsonl"
    env = _cli_env(sims, tmp_path / "c2")
    driver = await anyio.open_process(
        [sys.executable, "-m", "genevolve_async", *argv], env=env, cwd=ROOT
    )
    try:
        with anyio.fail_after(120):
            # Nothing to wait on but the file itself: poll it.
            while _lines(checkpoint) < 7:  # the header and 6 items
                assert driver.returncode is None, "the run ended before the kill could land"
                await anyio.sleep(0.02)
        driver.send_signal(signal.SIGKILL)  # the driver: its workers go with it
        await driver.wait()
    finally:
        if driver.returncode is None:
            driver.kill()
            await driver.wait()
    assert not (tmp_path / "two" / "results.json").exists()
    code, output = await _cli(argv, env)  # the same command again resumes
    assert code == 0, output

    ids = [line["id"] for line in checkpoint_lines(checkpoint)]
    assert sorted(ids, key=int) == [str(i) for i in range(16)]  # every id exactly once
    one = load_json(tmp_path / "one" / "results.json")
    two = load_json(tmp_path / "two" / "results.json")
    assert _comparable(two, tmp_path / "c2") == _comparable(one, tmp_path / "c1")
    assert max_in_window(sims.serper.request_times()) <= RATE


async def test_an_address_that_does_not_answer_fails_within_seconds(tmp_path: Path) -> None:
    started = time.monotonic()
    code, output = await _cli(
        [
            "run",
            "--prompt",
            "a fox",
            "--output-dir",
            str(tmp_path / "o"),
            "--tools",
            "query_knowledge",
            "--ray",
            "127.0.0.1:9",
            "--quiet",
            "--no-preflight",
        ],
        {**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert code == 1, output
    assert "no Ray cluster answers at 127.0.0.1:9" in output
    assert time.monotonic() - started < 60  # a hang detector, not a timing claim


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from genevolve_async._errors import ConfigurationError
    from genevolve_async.cluster._ray import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigurationError, match=r"genevolve-async\[ray\]"):
        import_ray()
