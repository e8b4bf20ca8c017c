"""Every fenced ``python`` and ``bash`` block of README.md, run as written against a simulated stack.

The rule (also in the README's "Simulated backends" section): a block runs
as it stands unless its info string has a second word, ``fragment`` (part
of a program, using names defined elsewhere) or ``real`` (needs real
servers, GPUs, datasets or the network). Those are checked for syntax
only (``compile`` for Python, ``bash -n`` for shell). Other languages are
not run. Blocks are found afresh on every collection, one test each, named
by the line they start on, so blocks added by anyone are picked up.

The blocks run in a scratch folder where ``examples/`` is the repository's,
with the exports of a :class:`~genevolve_async.sim.SimStack` started here
(what ``python -m genevolve_async.sim`` prints). A block may start its own
stack; its whole process group is stopped when it ends.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from anyio.abc import ByteReceiveStream

from genevolve_async.sim import SimConfig, SimStack

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CHECK_ONLY = frozenset({"fragment", "real"})
LANGUAGES = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Block:
    line: int
    language: str
    tags: frozenset[str]
    code: str

    @property
    def runs(self) -> bool:
        return not (self.tags & CHECK_ONLY)

    @property
    def name(self) -> str:
        tag = "-".join(sorted(self.tags)) or "run"
        return f"L{self.line}-{self.language}-{tag}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced python and bash blocks of ``text``, with their start line."""
    blocks = []
    for match in _FENCE.finditer(text):
        words = match.group(1).split()
        language = LANGUAGES.get(words[0].lower()) if words else None
        if language is None:
            continue
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(line, language, frozenset(words[1:]), match.group(2)))
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_the_rule_finds_blocks_and_tags() -> None:
    sample = "```python\nx = 1\n```\n\n```bash real\nls\n```\n\n```diff\n-a\n```\n"
    found = readme_blocks(sample)
    assert [(b.line, b.language, b.runs) for b in found] == [
        (1, "python", True),
        (5, "bash", False),
    ]
    assert any(b.runs for b in BLOCKS) and any(not b.runs for b in BLOCKS)
    unknown = {tag for b in BLOCKS for tag in b.tags} - CHECK_ONLY
    assert not unknown, f"unknown README block tags {unknown}; use 'fragment' or 'real'"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def sim_env() -> AsyncIterator[dict[str, str]]:
    config = SimConfig(model_latency=0.05, search_latency=0.02, download_latency=0.01)
    config.render_latency = config.judge_latency = 0.02
    async with SimStack(config) as stack:
        yield stack.env()


def _env(sim: dict[str, str], workdir: Path) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "GENEVOLVE_", "SERPER_", "GOOGLE_", "GEMINI_"))
    }
    path = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])
    return {
        **base,
        **sim,
        "PATH": path,
        "PYTHONPATH": str(ROOT),
        "IMAGE_DOWNLOAD_DIR": str(workdir / "image-cache"),
    }


def _check_syntax(block: Block) -> None:
    if block.language == "python":
        compile(block.code, f"README.md:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    else:
        result = subprocess.run(["bash", "-n"], input=block.code.encode(), capture_output=True)
        assert result.returncode == 0, result.stderr.decode()


def _stop_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)


async def run_block(block: Block, env: dict[str, str], workdir: Path) -> tuple[int, str]:
    """Run one block in ``workdir``; its exit status and output. Its process group ends with it."""
    (workdir / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    if block.language == "python":
        script = workdir / "block.py"
        script.write_text(block.code, encoding="utf-8")
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    process = await anyio.open_process(
        argv,
        cwd=workdir,
        env=_env(env, workdir),
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a block's background jobs are stopped with it
    )
    chunks: list[bytes] = []

    async def drain(stream: ByteReceiveStream) -> None:
        async for chunk in stream:
            chunks.append(chunk)

    try:
        with anyio.fail_after(180):  # a hang detector, not a timing
            assert process.stdout is not None and process.stderr is not None
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain, process.stdout)
                tg.start_soon(drain, process.stderr)
                status = await process.wait()
                # What the block left running holds our pipes open: stop it.
                _stop_group(process.pid)
    finally:
        _stop_group(process.pid)
        if process.returncode is None:
            process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()
    return status, b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
async def test_readme_block(block: Block, sim_env: dict[str, str], tmp_path: Path) -> None:
    _check_syntax(block)
    if not block.runs:
        return
    status, output = await run_block(block, sim_env, tmp_path)
    assert status == 0, f"README.md line {block.line}:\n{output[-4000:]}"


async def test_a_failing_block_fails_and_background_jobs_end(tmp_path: Path) -> None:
    failing = Block(1, "python", frozenset(), "import sys\nprint('boom')\nsys.exit(3)\n")
    (tmp_path / "a").mkdir()
    assert await run_block(failing, {}, tmp_path / "a") == (3, "boom\n")
    (tmp_path / "b").mkdir()
    marker = tmp_path / "b" / "late"
    background = Block(2, "bash", frozenset(), f"(sleep 2; touch {marker}) &\necho started\n")
    assert await run_block(background, {}, tmp_path / "b") == (0, "started\n")
    await anyio.sleep(3)
    assert not marker.exists()  # the block's background job was stopped with it
    with pytest.raises(SyntaxError):
        _check_syntax(Block(3, "python", frozenset({"fragment"}), "def (:\n"))
