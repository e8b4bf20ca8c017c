"""The simulated services of a chaos run, every fault on, and its input rows."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ..sim import (
    Faults,
    JudgeFaults,
    Latency,
    QwenFaults,
    SimImageHost,
    SimJudge,
    SimPolicy,
    SimQwenService,
    SimSerper,
    SimServer,
    make_png,
)
from ._chaos_config import ChaosConfig

__all__ = ["ChaosKeys", "ChaosSims", "start_chaos_sims", "write_chaos_input"]


@dataclass(kw_only=True, slots=True, frozen=True)
class ChaosKeys:
    """Distinctive API keys: none may show up in an output file or a log line."""

    policy: str
    serper: str
    judge: str

    @classmethod
    def make(cls) -> ChaosKeys:
        """Fresh random keys (a fixed one could be in the output by coincidence)."""
        return cls(
            policy=f"sk-chaos-policy-{secrets.token_hex(8)}",
            serper=f"chaos-serper-{secrets.token_hex(8)}",
            judge=f"sk-chaos-judge-{secrets.token_hex(8)}",
        )

    def all(self) -> tuple[str, str, str]:
        """The three keys."""
        return self.policy, self.serper, self.judge


@dataclass(kw_only=True, slots=True)
class ChaosSims:
    """The running simulated services, and where they listen."""

    policies: list[SimPolicy]
    serper: SimSerper
    images: SimImageHost
    qwen: SimQwenService
    judge: SimJudge
    policy_urls: list[str] = field(default_factory=list)
    serper_url: str = ""
    qwen_url: str = ""
    judge_url: str = ""

    def faults(self) -> dict[str, int]:
        """Faults served so far, as ``service:kind``."""
        counts: dict[str, int] = {}
        named = [(f"policy{i}", p.stats) for i, p in enumerate(self.policies)]
        named += [("serper", self.serper.stats), ("images", self.images.stats)]
        named += [("qwen", self.qwen.stats), ("judge", self.judge.stats)]
        for name, stats in named:
            for kind, count in sorted(stats.faults.items()):
                counts[f"{name}:{kind}"] = count
        return counts


@asynccontextmanager
async def start_chaos_sims(cfg: ChaosConfig, keys: ChaosKeys) -> AsyncIterator[ChaosSims]:
    """Every simulated service, faults on, on loopback ports of this process."""
    seed = cfg.seed

    def faults() -> Faults:
        return Faults(
            rate_429=cfg.rate_429,
            rate_500=cfg.rate_500,
            rate_reset=cfg.rate_reset,
            rate_slow=cfg.rate_slow,
            retry_after=cfg.retry_after,
            slow_seconds=cfg.slow_seconds,
        )

    def latency(mean: float) -> Latency:
        return Latency(mean=mean, spread=0.5)

    images = SimImageHost(latency=latency(cfg.download_latency), faults=faults(), seed=seed)
    qwen_faults = QwenFaults(
        success_false=cfg.qwen_success_false,
        rate_429=cfg.rate_429,
        rate_500=cfg.rate_500,
        rate_reset=cfg.rate_reset,
        rate_slow=cfg.rate_slow,
        slow_seconds=cfg.slow_seconds,
    )
    judge_faults = JudgeFaults(
        rate_429=cfg.rate_429,
        rate_500=cfg.rate_500,
        rate_reset=cfg.rate_reset,
        rate_slow=cfg.rate_slow,
        retry_after=cfg.retry_after,
        slow_seconds=cfg.slow_seconds,
    )
    async with AsyncExitStack() as stack:
        # The image host first: Serper's answers point at it.
        image_url = (await stack.enter_async_context(SimServer(images.app))).url
        sims = ChaosSims(
            policies=[
                SimPolicy(latency=latency(cfg.model_latency), faults=faults(), seed=seed + i)
                for i in range(cfg.replicas)
            ],
            serper=SimSerper(
                image_host=image_url,
                api_key=keys.serper,
                latency=latency(cfg.search_latency),
                faults=faults(),
                image_faults={"corrupt": cfg.bad_images / 2, "html": cfg.bad_images / 2},
                seed=seed,
            ),
            images=images,
            qwen=SimQwenService(
                gpus=cfg.render_parallel,
                latency=latency(cfg.render_latency),
                faults=qwen_faults,
                retry_after=cfg.retry_after,
                seed=seed,
            ),
            judge=SimJudge(
                latency=latency(cfg.judge_latency),
                faults=judge_faults,
                api_key=keys.judge,
                seed=seed,
            ),
        )
        for policy in sims.policies:
            server = await stack.enter_async_context(SimServer(policy.app))
            sims.policy_urls.append(server.url + "/v1")
        sims.serper_url = (await stack.enter_async_context(SimServer(sims.serper.app))).url
        sims.qwen_url = (await stack.enter_async_context(SimServer(sims.qwen.app))).url
        sims.judge_url = (await stack.enter_async_context(SimServer(sims.judge.app))).url + "/v1"
        yield sims


def write_chaos_input(folder: Path, count: int) -> tuple[Path, list[str]]:
    """Benchmark-shaped rows sharing one ground-truth image (blocking)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gt.png").write_bytes(make_png((40, 90, 160)))
    ids = [str(i) for i in range(count)]
    with (folder / "test.jsonl").open("wb") as handle:
        for i in ids:
            row = {
                "id": i,
                "question": f"chaos request {i}: a lighthouse on a cliff at dusk",
                "gt_image": "gt.png",
                "eval_type": ("Knowledge-Anchored", "Quality-Anchored")[int(i) % 2],
            }
            handle.write(orjson.dumps(row) + b"\n")
    return folder / "test.jsonl", ids
