"""A whole set of simulated backends, started together (in or out of process)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Self

from ._common import Faults, Latency
from ._images import SimImageHost
from ._policy import PolicyScript, SimPolicy
from ._serper import SimSerper
from ._server import SimServer

__all__ = ["SimConfig", "SimStack"]


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
        self.urls = {"policy": policy_urls, "images": images.url, "serper": serper.url}
        return self

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
        if self.serper is not None:
            out["serper"] = self.serper.stats.to_dict()
        return out
