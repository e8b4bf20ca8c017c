"""Loopback simulated backends and benchmark folders for the batch tests."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genevolve_async import GenEvolveAgent, Runtime
from genevolve_async.judge import JudgeClient
from genevolve_async.sim import (
    JudgeFaults,
    Latency,
    PolicyScript,
    SimImageHost,
    SimJudge,
    SimPolicy,
    SimQwenService,
    SimSerper,
    SimServer,
    make_png,
)
from genevolve_async.tools import (
    ImageCacheSettings,
    ImageSearch,
    QueryKnowledge,
    SerperBackend,
    Tool,
    WebSearch,
)

SERPER_KEY = "sim-serper-key"
JUDGE_KEY = "sim-judge-key"
TRACKS = ("Knowledge-Anchored", "Quality-Anchored")


@dataclass(kw_only=True)
class Sims:
    """The simulated services of one test, and where they listen."""

    policy: SimPolicy
    serper: SimSerper
    images: SimImageHost
    qwen: SimQwenService
    judge: SimJudge
    policy_url: str
    serper_url: str
    qwen_url: str
    judge_url: str

    def env(self, cache: Path) -> dict[str, str]:
        """Environment for a CLI process using these services."""
        return {
            "SERPER_BASE_URL": self.serper_url,
            "SERPER_API_KEY": SERPER_KEY,
            "GENEVOLVE_ALLOW_PRIVATE_HOSTS": "1",
            "IMAGE_DOWNLOAD_DIR": str(cache),
            "GENEVOLVE_JUDGE_BASE_URL": self.judge_url,
            "GENEVOLVE_JUDGE_API_KEY": JUDGE_KEY,
        }

    def process_env(self, cache: Path, root: Path) -> dict[str, str]:
        """This process's environment for a CLI child: our settings, none of the caller's."""
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENAI_", "GENEVOLVE_", "SERPER_"))
        }
        return {**inherited, **self.env(cache), "PYTHONPATH": str(root)}

    def tools(self, cache: Path) -> list[Tool]:
        backend = SerperBackend(base_url=self.serper_url, api_key=SERPER_KEY)
        settings = ImageCacheSettings(folder=cache, allow_private=True)
        return [WebSearch(backend), ImageSearch(backend, cache=settings), QueryKnowledge()]

    def agent(self, runtime: Runtime, cache: Path, **options: Any) -> GenEvolveAgent:
        return GenEvolveAgent(
            runtime=runtime, base_url=self.policy_url, tools=self.tools(cache), **options
        )

    def judge_client(self, runtime: Runtime, **options: Any) -> JudgeClient:
        return JudgeClient(runtime, base_url=self.judge_url, api_key=JUDGE_KEY, **options)


@asynccontextmanager
async def start_sims(
    *,
    model_latency: float = 0.0,
    judge_faults: JudgeFaults | None = None,
    tools: tuple[str, ...] = ("search", "image_search", "query_knowledge"),
) -> AsyncIterator[Sims]:
    """Start every simulated backend on 127.0.0.1."""
    images = SimImageHost()
    policy = SimPolicy(script=PolicyScript(tools=tools), latency=Latency(mean=model_latency))
    qwen = SimQwenService(gpus=16)
    judge = SimJudge(faults=judge_faults, api_key=JUDGE_KEY)
    async with AsyncExitStack() as stack:
        image_server = await stack.enter_async_context(SimServer(images.app))
        serper = SimSerper(image_host=image_server.url, api_key=SERPER_KEY)
        servers = [
            await stack.enter_async_context(SimServer(app))
            for app in (policy.app, serper.app, qwen.app, judge.app)
        ]
        yield Sims(
            policy=policy,
            serper=serper,
            images=images,
            qwen=qwen,
            judge=judge,
            policy_url=servers[0].url + "/v1",
            serper_url=servers[1].url,
            qwen_url=servers[2].url,
            judge_url=servers[3].url + "/v1",
        )


def bench_rows(count: int) -> list[dict[str, Any]]:
    """Benchmark-shaped rows (both tracks, three categories, two difficulties)."""
    return [
        {
            "id": str(i),
            "question": f"request {i}: a lighthouse on a cliff at dusk",
            "gt_image": f"images/case_{i:05d}.png",
            "eval_type": TRACKS[i % 2],
            "category": ("architecture_landmark", "animal", "product")[i % 3],
            "difficulty": "hard" if i % 4 else "easy",
        }
        for i in range(count)
    ]


def write_bench(
    folder: Path, rows: Iterable[dict[str, Any]], *, extra_lines: Iterable[str] = ()
) -> Path:
    """Write a GenEvolve-Bench-like folder (test.jsonl and ground-truth images)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    png = make_png((40, 90, 160))
    path = folder / "test.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            if isinstance(row.get("gt_image"), str):
                (folder / row["gt_image"]).write_bytes(png)
            f.write(json.dumps(row) + "\n")
        for line in extra_lines:
            f.write(line + "\n")
    return path


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def checkpoint_lines(path: Path) -> list[dict[str, Any]]:
    """The envelope lines of a checkpoint (header left out)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[1:]]
