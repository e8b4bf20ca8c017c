"""A whole set of simulated backends, started together (in or out of process).

Every service the library talks to has a stand-in here: the policy (one
server per replica), Serper, the image host its answers point at, a
Qwen-Image-Edit service, the Gemini judge and Nano Banana Pro's Generative
Language API. :meth:`SimStack.env` and :meth:`SimStack.cli_flags` say how
to point the library and its command line at them.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Self

from ._common import Faults, Latency
from ._gemini import SimGemini
from ._images import SimImageHost
from ._judge import SimJudge
from ._policy import PolicyScript, SimPolicy
from ._qwen import SimQwenService
from ._serper import SimSerper
from ._server import SimServer

__all__ = ["SIM_GEMINI_KEY", "SIM_JUDGE_KEY", "SIM_SERPER_KEY", "SimConfig", "SimStack"]

# The keys the simulated services accept: they check that a key is sent and
# sent to the right place, which catches a client wiring one key to another
# service. They guard nothing.
SIM_SERPER_KEY = "sim-serper-key"
SIM_JUDGE_KEY = "sim-judge-key"
SIM_GEMINI_KEY = "sim-gemini-key"


@dataclass(kw_only=True, slots=True)
class SimConfig:
    """What to simulate. Latencies are in seconds (mean, relative spread)."""

    replicas: int = 1
    model_latency: float = 0.5
    search_latency: float = 0.3
    download_latency: float = 0.1
    spread: float = 0.1
    rounds: int = 4
    parallel_tool_calls: int = 1
    search_queries: int = 2
    image_top_k: int = 5
    tools: tuple[str, ...] = ("search", "image_search", "query_knowledge")
    policy_faults: dict[str, float] = field(default_factory=dict)
    render_latency: float = 0.2
    """Seconds per Qwen-Image-Edit and Nano Banana render."""
    qwen_gpus: int = 4
    """Renders the simulated Qwen service runs at once (its ``/health`` says so)."""
    judge_latency: float = 0.2
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tools"] = list(self.tools)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimConfig:
        data = dict(data)
        if "tools" in data:
            data["tools"] = tuple(data["tools"])
        return cls(**data)


class SimStack:
    """Starts the configured simulated servers; ``urls`` says where they listen."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.policies: list[SimPolicy] = []
        self.images: SimImageHost | None = None
        self.serper: SimSerper | None = None
        self.qwen: SimQwenService | None = None
        self.judge: SimJudge | None = None
        self.gemini: SimGemini | None = None
        self.urls: dict[str, Any] = {}
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        cfg = self.config
        script = PolicyScript(
            rounds=cfg.rounds,
            parallel_tool_calls=cfg.parallel_tool_calls,
            search_queries=cfg.search_queries,
            image_top_k=cfg.image_top_k,
            tools=cfg.tools,
        )
        faults = Faults(**cfg.policy_faults) if cfg.policy_faults else Faults()
        policy_urls = []
        for i in range(cfg.replicas):
            policy = SimPolicy(
                script=script,
                latency=Latency(mean=cfg.model_latency, spread=cfg.spread),
                faults=faults,
                seed=cfg.seed + i,
            )
            server = await self._stack.enter_async_context(SimServer(policy.app))
            self.policies.append(policy)
            policy_urls.append(server.url + "/v1")
        self.images = SimImageHost(
            latency=Latency(mean=cfg.download_latency, spread=cfg.spread), seed=cfg.seed
        )
        images = await self._stack.enter_async_context(SimServer(self.images.app))
        self.serper = SimSerper(
            image_host=images.url,
            latency=Latency(mean=cfg.search_latency, spread=cfg.spread),
            seed=cfg.seed,
        )
        serper = await self._stack.enter_async_context(SimServer(self.serper.app))
        render = Latency(mean=cfg.render_latency, spread=cfg.spread)
        self.qwen = SimQwenService(gpus=cfg.qwen_gpus, latency=render, seed=cfg.seed)
        qwen = await self._stack.enter_async_context(SimServer(self.qwen.app))
        self.judge = SimJudge(
            latency=Latency(mean=cfg.judge_latency, spread=cfg.spread),
            api_key=SIM_JUDGE_KEY,
            seed=cfg.seed,
        )
        judge = await self._stack.enter_async_context(SimServer(self.judge.app))
        self.gemini = SimGemini(latency=render, api_key=SIM_GEMINI_KEY, seed=cfg.seed)
        gemini = await self._stack.enter_async_context(SimServer(self.gemini.app))
        self.urls = {
            "policy": policy_urls,
            "images": images.url,
            "serper": serper.url,
            "qwen": qwen.url,
            "judge": judge.url + "/v1",
            "gemini": gemini.url,
        }
        return self

    def env(self) -> dict[str, str]:
        """Environment variables that point the library and its CLI at this stack.

        The image host listens on loopback, which the image guard refuses
        by default, so downloads from private hosts are allowed here.
        """
        return {
            "OPENAI_BASE_URL": self.urls["policy"][0],
            "OPENAI_API_KEY": "EMPTY",
            "SERPER_BASE_URL": self.urls["serper"],
            "SERPER_API_KEY": SIM_SERPER_KEY,
            "GENEVOLVE_ALLOW_PRIVATE_HOSTS": "1",
            "GENEVOLVE_JUDGE_BASE_URL": self.urls["judge"],
            "GENEVOLVE_JUDGE_API_KEY": SIM_JUDGE_KEY,
            "GOOGLE_GEMINI_BASE_URL": self.urls["gemini"],
            "GEMINI_API_KEY": SIM_GEMINI_KEY,
            "GENEVOLVE_SIM_QWEN_URL": self.urls["qwen"],
        }

    def cli_flags(self) -> list[str]:
        """``genevolve-async`` flags for ``run``/``render``/``pipeline`` against this stack."""
        flags: list[str] = []
        for url in self.urls["policy"]:
            flags += ["--base-url", url]
        return [*flags, "--service-url", self.urls["qwen"]]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            f"policy[{i}]": p.stats.to_dict() for i, p in enumerate(self.policies)
        }
        if self.images is not None:
            out["images"] = self.images.stats.to_dict()
        for name in ("serper", "qwen", "judge", "gemini"):
            sim = getattr(self, name)
            if sim is not None:
                out[name] = sim.stats.to_dict()
        return out
