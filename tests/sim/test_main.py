"""``python -m genevolve_async.sim``: every simulated service, in the background, until stopped."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import anyio
import anyio.to_thread

ROOT = Path(__file__).resolve().parents[2]


def _exports(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            (out[name],) = shlex.split(value) or [""]
    return out


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    # stdin closed, as with "&" in a script: the sim must not take that as a signal to stop.
    return subprocess.Popen(
        [sys.executable, "-m", "genevolve_async.sim", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def _wait_for(path: Path, process: subprocess.Popen[bytes]) -> str:
    with anyio.fail_after(60):  # a hang detector, not a timing
        # Nothing to wait on but the file itself: poll it.
        while not await anyio.Path(path).exists():
            assert process.poll() is None, process.communicate()
            await anyio.sleep(0.05)
    return await anyio.Path(path).read_text()


async def _exited(process: subprocess.Popen[bytes]) -> int:
    return await anyio.to_thread.run_sync(process.wait, 60)  # raises past 60 s: a hang


async def test_every_service_runs_in_the_background_until_sigterm(tmp_path: Path) -> None:
    env_file = tmp_path / "sim.env"
    process = _start(tmp_path, "--env-file", str(env_file))
    try:
        exports = _exports(await _wait_for(env_file, process))
        assert exports["GENEVOLVE_ALLOW_PRIVATE_HOSTS"] == "1" and exports["SERPER_API_KEY"]
        flags = shlex.split(exports["GENEVOLVE_SIM_FLAGS"])
        assert flags[::2] == ["--base-url", "--service-url"]
        policy, qwen = flags[1], flags[3]
        assert policy == exports["OPENAI_BASE_URL"] and qwen == exports["GENEVOLVE_SIM_QWEN_URL"]
        judge, key = exports["GENEVOLVE_JUDGE_BASE_URL"], exports["GENEVOLVE_JUDGE_API_KEY"]
        gemini = exports["GOOGLE_GEMINI_BASE_URL"]
        async with aiohttp.ClientSession() as http:
            async with http.get(policy + "/models") as resp:
                assert resp.status == 200
            async with http.get(qwen + "/health") as resp:
                assert resp.status == 200
            async with http.post(
                exports["SERPER_BASE_URL"] + "/search",
                json={"q": "lighthouse"},
                headers={"X-API-KEY": exports["SERPER_API_KEY"]},
            ) as resp:
                assert resp.status == 200
            async with http.post(
                judge + "/chat/completions",
                json={"model": "x", "messages": []},
                headers={"Authorization": f"Bearer {key}"},
            ) as resp:
                assert resp.status == 400  # it answers, and checked the key first
            async with http.post(
                gemini + "/v1beta/models/m:generateContent",
                json={},
                headers={"x-goog-api-key": exports["GEMINI_API_KEY"]},
            ) as resp:
                assert resp.status in (200, 400)
        # Still up a moment later: closed stdin did not end it.
        await anyio.sleep(0.5)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        await _exited(process)
        out, err = process.communicate()
        assert process.returncode == 0, err.decode()
        assert "export SERPER_API_KEY=" in out.decode() and "SIGTERM" in err.decode()
        assert not env_file.exists()  # removed on exit: a stale file would mislead a waiter
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def test_max_seconds_ends_it_and_json_mode_prints_one_line(tmp_path: Path) -> None:
    process = _start(tmp_path, "--json", "--max-seconds", "0.5")
    await _exited(process)
    out, err = process.communicate()
    assert process.returncode == 0, err.decode()
    (line,) = out.decode().splitlines()
    urls = json.loads(line)
    assert set(urls) == {"policy", "images", "serper", "qwen", "judge", "gemini"}


def test_help_names_the_background_use() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "genevolve_async.sim", "--help"],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    text = result.stdout.decode()
    assert "--max-seconds" in text and "--env-file" in text and "SIGTERM" in text
