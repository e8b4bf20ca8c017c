"""The web app's settings, read once from ``GENEVOLVE_WEB_*`` environment variables.

Every field has a default that works for a local vLLM on port 8000; the
request-facing limits (concurrency, queue wait, prompt size, deadlines) are
the ones an operator tunes. Keys are kept out of ``repr`` so that logging a
settings object never leaks them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Literal, get_args

__all__ = ["ENV_PREFIX", "RendererName", "SettingsError", "WebSettings"]

ENV_PREFIX = "GENEVOLVE_WEB_"
"""Every setting ``name`` is read from ``GENEVOLVE_WEB_<NAME>``."""

RendererName = Literal["qwen-image-edit-service", "nano-banana-pro"]
"""Renderers the app can use (``None``: ``POST /v1/images`` answers 503)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

_KEY_VARIABLES = ("OPENAI_API_KEY", "SERPER_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY")


class SettingsError(ValueError):
    """A ``GENEVOLVE_WEB_*`` variable (or a settings field) has an unusable value."""


def _urls(value: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in value.split(",") if u.strip())


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE - {''})}")


def _renderer(value: str) -> RendererName | None:
    value = value.strip()
    if value in ("", "none"):
        return None
    if value not in get_args(RendererName):
        raise ValueError(f"expected 'none' or one of {list(get_args(RendererName))}")
    return value  # type: ignore[return-value]


def _text_or_none(value: str) -> str | None:
    return value.strip() or None


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("expected an integer") from None


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("expected a number of seconds") from None


_PARSERS: dict[str, Callable[[str], object]] = {
    "policy_urls": _urls,
    "policy_api_key": str,
    "model": str,
    "serper_url": _text_or_none,
    "serper_api_key": _text_or_none,
    "qwen_urls": _urls,
    "renderer": _renderer,
    "image_dir": _text_or_none,
    "allow_private_hosts": _bool,
    "max_connections": _int,
    "max_concurrent_rollouts": _int,
    "queue_wait": _float,
    "max_queued": _int,
    "retry_after": _int,
    "max_prompt_chars": _int,
    "max_body_bytes": _int,
    "default_timeout": _float,
    "max_timeout": _float,
    "max_rounds": _int,
    "stored_images": _int,
    "ping_interval": _float,
    "sim": _bool,
    "sim_latency": _float,
}


def _default_policy_urls() -> tuple[str, ...]:
    return _urls(os.environ.get("OPENAI_BASE_URL") or "http://localhost:8000/v1")


def _default_policy_key() -> str:
    return os.environ.get("OPENAI_API_KEY") or "EMPTY"


@dataclass(kw_only=True, slots=True, frozen=True)
class WebSettings:
    """How the web app reaches its backends and how much work it admits.

    Build one directly (tests) or with :meth:`from_env` (``uvicorn``), where
    field ``name`` comes from ``GENEVOLVE_WEB_<NAME>``; lists are
    comma-separated, booleans ``1``/``0``.
    """

    policy_urls: tuple[str, ...] = field(default_factory=_default_policy_urls)
    """Policy (vLLM) base URLs ending in ``/v1``, one per replica; default ``OPENAI_BASE_URL``."""
    policy_api_key: str = field(default_factory=_default_policy_key, repr=False)
    """Policy key; default ``OPENAI_API_KEY`` or ``EMPTY``."""
    model: str = "GenEvolve"
    """Served model name."""
    serper_url: str | None = None
    """Serper-compatible gateway; ``None``: ``SERPER_BASE_URL`` or Serper itself."""
    serper_api_key: str | None = field(default=None, repr=False)
    """Serper key; ``None``: ``SERPER_API_KEY``."""
    qwen_urls: tuple[str, ...] = ()
    """Qwen-Image-Edit service URLs (the renderer, when it is ``qwen-image-edit-service``)."""
    renderer: RendererName | None = None
    """The renderer; ``None`` with ``qwen_urls`` set means the Qwen service."""
    image_dir: str | None = None
    """Folder of the shared image cache; ``None``: ``IMAGE_DOWNLOAD_DIR`` or a user cache."""
    allow_private_hosts: bool = False
    """Let image downloads reach private and loopback hosts (self-hosted gateways, sims)."""
    max_connections: int = 256
    """Size of the runtime's one connection pool, shared by every request."""
    max_concurrent_rollouts: int = 32
    """Rollouts running at once in this process; more requests wait in line."""
    queue_wait: float = 10.0
    """Seconds a request may wait for a rollout slot before it gets 429."""
    max_queued: int = 128
    """Requests that may wait for a slot at once; the next one gets 429 at once."""
    retry_after: int = 2
    """Seconds sent in the 429's ``Retry-After`` header."""
    max_prompt_chars: int = 4000
    """Longest request text accepted; longer ones get 422."""
    max_body_bytes: int = 0
    """Largest request body; bigger ones get 413 before parsing (0: derived from the prompt cap)."""
    default_timeout: float = 120.0
    """Deadline in seconds of a request that names none (rollout plus render)."""
    max_timeout: float = 600.0
    """Largest deadline a request may ask for."""
    max_rounds: int = 11
    """Round budget of a request that names none, and the most it may ask for."""
    stored_images: int = 64
    """Rendered images kept in memory for ``GET /v1/images/{id}`` (oldest dropped first)."""
    ping_interval: float = 15.0
    """Seconds of silence after which an event stream gets a keep-alive comment."""
    sim: bool = False
    """Start simulated backends in-process and use them (a demo that needs no GPU or key)."""
    sim_latency: float = 0.4
    """Seconds each simulated model round and render takes (so the events visibly stream)."""

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("policy_urls", bool(self.policy_urls) or self.sim, "needs at least one URL"),
            ("max_connections", self.max_connections >= 1, "must be at least 1"),
            ("max_concurrent_rollouts", self.max_concurrent_rollouts >= 1, "must be at least 1"),
            ("queue_wait", self.queue_wait >= 0, "cannot be negative"),
            ("max_queued", self.max_queued >= 0, "cannot be negative"),
            ("retry_after", self.retry_after >= 0, "cannot be negative"),
            ("max_prompt_chars", self.max_prompt_chars >= 1, "must be at least 1"),
            ("max_body_bytes", self.max_body_bytes >= 0, "cannot be negative"),
            ("default_timeout", 0 < self.default_timeout <= self.max_timeout,
             "must be positive and at most max_timeout"),
            ("max_rounds", self.max_rounds >= 1, "must be at least 1"),
            ("stored_images", self.stored_images >= 1, "must be at least 1"),
            ("ping_interval", self.ping_interval > 0, "must be positive"),
            ("sim_latency", self.sim_latency >= 0, "cannot be negative"),
        ]  # fmt: skip
        for name, ok, why in checks:
            if not ok:
                raise SettingsError(f"WebSettings.{name} {why} (got {getattr(self, name)!r})")

    @property
    def body_limit(self) -> int:
        """The request-body cap in bytes.

        Derived from the prompt cap when not set: JSON may spend up to 12
        bytes on one character (an escaped surrogate pair), plus room for
        the other fields.
        """
        return self.max_body_bytes or 12 * self.max_prompt_chars + 16 * 1024

    @property
    def renderer_name(self) -> RendererName | None:
        """The renderer in use: the explicit one, else the Qwen service when URLs are set."""
        if self.renderer is not None:
            return self.renderer
        return "qwen-image-edit-service" if self.qwen_urls else None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every key the app knows, for scrubbing outgoing text."""
        found = [self.policy_api_key, self.serper_api_key]
        found += [os.environ.get(name) for name in _KEY_VARIABLES]
        return tuple(dict.fromkeys(s for s in found if s and s != "EMPTY"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebSettings:
        """Settings from ``GENEVOLVE_WEB_*`` variables; unset ones keep their defaults.

        Raises:
            SettingsError: naming the variable whose value cannot be used (never the value
                itself, which may be a key).
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            variable = ENV_PREFIX + f.name.upper()
            raw = env.get(variable)
            if raw is None:
                continue
            try:
                values[f.name] = _PARSERS[f.name](raw)
            except ValueError as exc:
                raise SettingsError(f"{variable}: {exc}") from None
        return cls(**values)  # type: ignore[arg-type]
