"""The agent's typed configuration, with SPEC's defaults."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from .._errors import ConfigurationError

__all__ = ["AgentConfig", "ToolMode"]

ToolMode = Literal["text", "native"]


def _env_base_url() -> str:
    return os.environ.get("OPENAI_BASE_URL") or "http://localhost:8000/v1"


def _env_api_key() -> str:
    return os.environ.get("OPENAI_API_KEY") or "EMPTY"


@dataclass(kw_only=True, slots=True)
class AgentConfig:
    """How an agent talks to its policy and runs its rollouts.

    Every field has SPEC's default. The original project's constructor
    keywords (``model``, ``base_url``, ``api_key``, ``max_rounds``,
    ``max_tokens_per_round``, ``temperature``, ``top_p``,
    ``n_max_reference_images``, ``system_prompt``, ``request_timeout``) are
    fields of the same names.
    """

    model: str = "GenEvolve"
    """Served model name."""
    base_url: str | Sequence[str] = field(default_factory=_env_base_url)
    """One base URL, or several (vLLM data-parallel replicas); env ``OPENAI_BASE_URL``."""
    api_key: str = field(default_factory=_env_api_key, repr=False)
    """Policy key; env ``OPENAI_API_KEY``, ``EMPTY`` for a local vLLM."""
    max_rounds: int = 11
    """Round budget; the last round gets the final-step message."""
    max_tokens_per_round: int = 4096
    temperature: float = 0.6
    top_p: float = 0.9
    n_max_reference_images: int = 2
    max_tool_calls: int = 10
    """Tool calls allowed per request; calls past it get a budget observation."""
    max_prompt_tokens: int = 6144
    """Budget for the request text (estimated; over it the rollout is refused)."""
    max_response_tokens: int = 30000
    """Completion tokens over all rounds; it caps each round's ``max_tokens``."""
    max_tool_concurrency: int = 8
    """Tool calls of one turn that run at once; the rest wait (none is dropped)."""
    tool_mode: ToolMode = "text"
    """``text``: tools described in the system prompt, calls as ``<tool_call>``
    blocks (the released policy). ``native``: OpenAI ``tools`` and
    ``tool_calls`` (vLLM with a tool parser)."""
    system_prompt: str | None = None
    """System prompt text replacing ours (``$tools`` etc. are filled if present)."""
    system_prompt_file: str | os.PathLike[str] | None = None
    """A file to read the system prompt from (e.g. the original's), used verbatim."""
    prompts_dir: str | os.PathLike[str] | None = None
    """A folder whose ``system.md``, ``final_step.md``, ``format_error.md`` and
    ``truncated.md`` (any of them) replace our texts, verbatim: with the
    original's texts the policy requests are byte for byte the original's."""
    skills_dir: str | os.PathLike[str] | None = None
    """A folder of ``<skill>.md`` files replacing ours."""
    request_timeout: float = 600.0
    """Seconds for one policy call."""
    policy_route: Literal["lean", "openai"] = "lean"
    """``lean``: a direct POST on the runtime's aiohttp session; ``openai``: through
    ``AsyncOpenAI``, on an httpx transport over the same session."""
    seed: int | None = None
    """Default sampling seed (``arun(seed=...)`` overrides)."""
    extra_body: dict[str, Any] | None = None
    """Extra fields for each chat-completions body (e.g. vLLM sampling options)."""
    capture_content: bool | None = None
    """Put prompts, replies and tool payloads into trace spans (GenAI conventions'
    opt-in); ``None`` reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` naming the first bad field."""
        checks: list[tuple[str, bool]] = [
            ("max_rounds", self.max_rounds >= 1),
            ("max_tokens_per_round", self.max_tokens_per_round >= 1),
            ("temperature", 0.0 <= self.temperature <= 2.0),
            ("top_p", 0.0 < self.top_p <= 1.0),
            ("n_max_reference_images", self.n_max_reference_images >= 0),
            ("max_tool_calls", self.max_tool_calls >= 0),
            ("max_prompt_tokens", self.max_prompt_tokens >= 1),
            ("max_response_tokens", self.max_response_tokens >= 1),
            ("max_tool_concurrency", self.max_tool_concurrency >= 1),
            ("tool_mode", self.tool_mode in ("text", "native")),
            ("request_timeout", self.request_timeout > 0),
            ("policy_route", self.policy_route in ("lean", "openai")),
        ]
        for name, ok in checks:
            if not ok:
                raise ConfigurationError(
                    f"AgentConfig.{name} has an invalid value: {getattr(self, name)!r}"
                )
        if self.system_prompt_file is not None and not Path(self.system_prompt_file).is_file():
            raise ConfigurationError(
                f"AgentConfig.system_prompt_file not found: {self.system_prompt_file}"
            )
        if self.prompts_dir is not None and not Path(self.prompts_dir).is_dir():
            raise ConfigurationError(f"AgentConfig.prompts_dir is not a folder: {self.prompts_dir}")

    @property
    def base_urls(self) -> list[str]:
        urls = [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)
        return [u for u in urls if u]

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))
