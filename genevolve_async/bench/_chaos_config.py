"""What a chaos run does: its size, fault mix, latencies and limits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError

__all__ = ["ChaosConfig"]

_ENV = {
    "rollouts": "GENEVOLVE_CHAOS_ROLLOUTS",
    "in_flight": "GENEVOLVE_CHAOS_IN_FLIGHT",
    "seed": "GENEVOLVE_CHAOS_SEED",
}


@dataclass(kw_only=True, slots=True, frozen=True)
class ChaosConfig:
    """What a chaos run does. Defaults: the full-size run of the reliability figures."""

    rollouts: int = 2000
    """Input rows, each one rollout, render and judgement."""
    in_flight: int = 500
    """Rollouts in flight (the rollout stage's workers)."""
    render_parallel: int = 64
    """Renders in flight (and the simulated Qwen service's GPU slots)."""
    judge_parallel: int = 64
    """Judgements in flight (and the judge limiter's in-flight cap)."""
    replicas: int = 2
    """Policy replicas; the first one dies mid-run."""
    rate_429: float = 0.10
    """Share of requests answered 429 with ``Retry-After`` (every service)."""
    rate_500: float = 0.05
    """Share of requests answered 500 (every service)."""
    rate_reset: float = 0.03
    """Share of requests whose connection drops mid-response."""
    rate_slow: float = 0.05
    """Share of requests whose body trickles in past the per-call timeout."""
    bad_images: float = 0.05
    """Share of image results that are corrupt bytes or an HTML page."""
    qwen_success_false: float = 0.10
    """Share of renders answered HTTP 200 ``{"success": false}`` (not retried: a failed item)."""
    retry_after: float = 0.2
    """``Retry-After`` seconds of the 429s."""
    call_timeout: float = 2.0
    """Per-call timeout of every client (policy, Serper, downloads, Qwen, judge)."""
    slow_seconds: float = 4.0
    """How long a slow answer is held (past ``call_timeout``)."""
    kill_after: float = 0.25
    """The replica dies once this share of the expected policy calls was made."""
    down_seconds: float = 3.0
    """How long the dead replica stays dead."""
    cooldown: float = 1.0
    """Seconds a quarantined replica or render service waits for its health probe."""
    model_latency: float = 0.05
    """Mean seconds of a simulated policy answer (each latency varies by +-50%)."""
    search_latency: float = 0.03
    download_latency: float = 0.01
    render_latency: float = 0.05
    judge_latency: float = 0.05
    policy_rate: float = 400.0
    """Policy requests per second (burst-free), retries included, like every rate below."""
    serper_rate: float = 150.0
    image_rate: float = 800.0
    render_rate: float = 100.0
    judge_rate: float = 100.0
    serper_in_flight: int = 64
    """Serper requests under way at once."""
    rollout_timeout: float = 300.0
    """Deadline of one rollout (a rollout past it ends as ``timeout``)."""
    seed: int = 0
    """Seeds the simulated services' fault draws and the retry jitter."""
    work_dir: Path | None = None
    """Keep the input, output and image folders here (default: a temp folder, removed)."""

    @classmethod
    def from_env(cls, **defaults: Any) -> ChaosConfig:
        """A config from ``defaults``, with ``GENEVOLVE_CHAOS_ROLLOUTS``,
        ``GENEVOLVE_CHAOS_IN_FLIGHT`` and ``GENEVOLVE_CHAOS_SEED`` winning when set."""
        values = dict(defaults)
        for name, variable in _ENV.items():
            text = os.environ.get(variable, "").strip()
            if text:
                try:
                    values[name] = int(text)
                except ValueError:
                    raise ConfigurationError(
                        f"{variable} must be an integer, got {text!r}"
                    ) from None
        return cls(**values)

    def __post_init__(self) -> None:
        if self.rollouts < 1 or self.in_flight < 1 or self.replicas < 2:
            raise ConfigurationError("chaos: need rollouts >= 1, in_flight >= 1, replicas >= 2")
        if self.slow_seconds <= self.call_timeout:
            raise ConfigurationError("chaos: slow_seconds must exceed call_timeout")

    def fault_mix(self) -> str:
        """The faults in words, for the report."""
        return (
            f"{self.rollouts} rollouts, {self.in_flight} in flight; "
            f"{self.rate_429:.0%} 429 (Retry-After {self.retry_after:g}s), {self.rate_500:.0%} 500, "
            f"{self.rate_reset:.0%} resets, {self.rate_slow:.0%} slow past the {self.call_timeout:g}s "
            f"timeout, {self.bad_images:.0%} bad images, {self.qwen_success_false:.0%} Qwen "
            f"success:false, policy replica 1 of {self.replicas} dies for {self.down_seconds:g}s"
        )
