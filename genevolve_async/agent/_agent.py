"""``GenEvolveAgent``: ``arun`` (async), ``run`` (sync), ``stream`` (events)."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import math
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from .._errors import ConfigurationError
from .._runtime import Runtime
from ..policy import PolicyClient
from ..tools import QueryKnowledge, Tool, tool_schema
from ._config import AgentConfig
from ._events import AgentEvent, AgentHook
from ._loop import Emit, Rollout
from ._portal import PortalThread
from ._prompts import build_prompts
from ._result import AgentResult

__all__ = ["GenEvolveAgent", "default_tools"]

logger = logging.getLogger("genevolve_async.agent")


def default_tools(config: AgentConfig) -> list[Tool]:
    """The tools an agent gets when none are given."""
    tools: list[Tool] = []
    try:
        from ..tools.search import ImageSearch, WebSearch  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        tools += [WebSearch(), ImageSearch()]
    tools.append(QueryKnowledge(config.skills_dir))
    return tools


# The original's constructor keywords that our config names differently.
_RENAMED = {"max_prompt_length": "max_prompt_tokens", "max_response_length": "max_response_tokens"}
# The original's one keyword per tool, and the tool each one replaces.
_TOOL_KEYWORDS = {
    "text_search_tool": "search",
    "image_search_tool": "image_search",
    "knowledge_tool": "query_knowledge",
}


def _original_keywords(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Tool]]:
    """Rename the original's budget keywords; take out its per-tool keywords (by tool name)."""
    renamed = {_RENAMED.get(k, k): v for k, v in options.items()}
    tools = {_TOOL_KEYWORDS[k]: renamed.pop(k) for k in list(renamed) if k in _TOOL_KEYWORDS}
    return renamed, {name: tool for name, tool in tools.items() if tool is not None}


def _shutdown(portal: PortalThread, runtime: Runtime) -> None:
    try:
        portal.call(runtime.aclose)
    except Exception:  # pragma: no cover - best effort at interpreter exit
        pass
    portal.stop()


class GenEvolveAgent:
    """A GenEvolve agent: request in, prompt-reference program out.

    Args:
        config: an :class:`AgentConfig`; keyword options override its fields
            (the original's keywords work: ``model``, ``base_url``,
            ``api_key``, ``max_rounds``, ..., ``max_prompt_length`` and
            ``max_response_length``). A string is the model name, as the
            original's first positional argument.
        runtime: a shared :class:`Runtime`. Without one the agent opens its
            own: for the ``async with agent`` block, for each bare ``arun``
            call, or for the agent's lifetime under ``run()``.
        tools: the tools to offer (default: search, image_search and
            query_knowledge).
        hooks: callbacks receiving every event of every rollout.
        **options: :class:`AgentConfig` fields; also the original's
            ``text_search_tool``, ``image_search_tool`` and ``knowledge_tool``,
            which take our tool objects and replace that one default tool.

    Example::

        async with GenEvolveAgent(base_url="http://localhost:8000/v1") as agent:
            result = await agent.arun("a red fox in fresh snow, dawn light")
            print(result.gen_prompt, [r.local_path for r in result.reference_images])
    """

    def __init__(
        self,
        config: AgentConfig | str | None = None,
        *,
        runtime: Runtime | None = None,
        tools: Sequence[Tool] | None = None,
        hooks: Sequence[AgentHook] = (),
        **options: Any,
    ) -> None:
        if isinstance(config, str):  # the original's first positional argument: the model
            config, options = None, {"model": config, **options}
        options, replaced = _original_keywords(options)
        if replaced and tools is not None:
            raise ConfigurationError("pass tools=[...] or the per-tool keywords, not both")
        unknown = set(options) - AgentConfig.field_names()
        if unknown:
            raise TypeError(
                f"GenEvolveAgent got unknown option(s) {sorted(unknown)}; "
                f"valid: {sorted(AgentConfig.field_names())}"
            )
        if config is None:
            config = AgentConfig(**options)
        elif options:
            config = dataclasses.replace(config, **options)
        self.config = config
        tool_list = list(tools) if tools is not None else default_tools(config)
        if replaced:
            # text_search_tool= and friends take our tool objects; the rest keep their defaults.
            tool_list = [replaced.pop(t.name, t) for t in tool_list] + list(replaced.values())
        names = [t.name for t in tool_list]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"tool names must be unique, got {names}")
        self.tools: dict[str, Tool] = {t.name: t for t in tool_list}
        self.prompts = build_prompts(config, tool_list)
        self._tool_schemas = (
            [tool_schema(t) for t in tool_list] if config.tool_mode == "native" else None
        )
        self._hooks = tuple(hooks)
        self._runtime = runtime
        self._entered: Runtime | None = None
        self._policies: weakref.WeakKeyDictionary[Runtime, PolicyClient] = (
            weakref.WeakKeyDictionary()
        )
        self._portal: PortalThread | None = None
        self._portal_runtime: Runtime | None = None
        self._portal_lock = threading.Lock()
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"GenEvolveAgent(model={self.config.model!r}, base_url={self.config.base_urls!r})"

    # -- async use -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._runtime is None and self._entered is None:
            runtime = Runtime()
            await runtime.__aenter__()
            self._entered = runtime
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the runtime the agent opened for ``async with`` (not a shared one)."""
        runtime, self._entered = self._entered, None
        if runtime is not None:
            await runtime.aclose()

    async def arun(
        self,
        prompt: str,
        *,
        seed: int | None = None,
        max_rounds: int | None = None,
        timeout: float | None = None,
        rollout_id: str | None = None,
    ) -> AgentResult:
        """Run one rollout and return its record.

        Args:
            prompt: the image request.
            seed: sampling seed for this rollout (default: the config's).
            max_rounds: round budget for this rollout (default: the config's).
            timeout: seconds before the rollout ends as ``timeout``.
            rollout_id: the id tagging logs and events (default: random).

        Returns:
            The :class:`AgentResult`. Failures are recorded in it
            (``termination`` and ``error``), not raised; only cancellation
            propagates.
        """
        async with self._runtime_scope() as runtime:
            rollout = self._rollout(
                runtime, prompt, seed, max_rounds, rollout_id, self._hook_emit()
            )
            return await rollout.execute(timeout=timeout)

    @asynccontextmanager
    async def stream(
        self,
        prompt: str,
        *,
        seed: int | None = None,
        max_rounds: int | None = None,
        timeout: float | None = None,
        rollout_id: str | None = None,
    ) -> AsyncIterator[MemoryObjectReceiveStream[AgentEvent]]:
        """Run one rollout, yielding its events as they happen.

        Use as ``async with agent.stream(prompt) as events: async for event
        in events: ...``. The last event is :class:`Finished` with the
        result. Leaving the block early cancels the rollout and its tool
        calls; nothing keeps running afterwards.
        """
        async with self._runtime_scope() as runtime:
            send, receive = anyio.create_memory_object_stream[AgentEvent](math.inf)
            hooks = self._hook_emit()

            async def emit(event: AgentEvent) -> None:
                try:
                    send.send_nowait(event)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # the consumer left the block; hooks still hear the end

                if hooks is not None:
                    await hooks(event)

            rollout = self._rollout(runtime, prompt, seed, max_rounds, rollout_id, emit)

            async def drive() -> None:
                with send:
                    await rollout.execute(timeout=timeout)

            async with anyio.create_task_group() as tg:
                tg.start_soon(drive)
                try:
                    with receive:
                        yield receive
                finally:
                    tg.cancel_scope.cancel()

    # -- sync use ------------------------------------------------------------

    def run(
        self,
        prompt: str,
        *,
        seed: int | None = None,
        max_rounds: int | None = None,
        timeout: float | None = None,
        rollout_id: str | None = None,
    ) -> AgentResult:
        """``arun`` for sync code (the original's name).

        The rollouts run on an event loop in a background thread that lives
        as long as the agent, so connection pools and limiters persist across
        calls. Call :meth:`close` when done (it also happens at exit).

        Raises:
            RuntimeError: when called from a running event loop (use
                ``await agent.arun(...)`` there).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "GenEvolveAgent.run() blocks, so it cannot be called from a running event loop; "
                "use 'await agent.arun(...)' instead"
            )
        if self._runtime is not None:
            raise ConfigurationError(
                "run() cannot use a Runtime passed to the agent (it belongs to another event loop); "
                "call 'await agent.arun(...)' in that loop"
            )
        portal = self._ensure_portal()
        return portal.call(
            lambda: self.arun(
                prompt, seed=seed, max_rounds=max_rounds, timeout=timeout, rollout_id=rollout_id
            )
        )

    def close(self) -> None:
        """Stop the background loop ``run()`` started and close its runtime."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._portal = None
        self._portal_runtime = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------

    def _ensure_portal(self) -> PortalThread:
        with self._portal_lock:
            if self._portal is None:
                portal = PortalThread()
                runtime = Runtime()
                portal.call(runtime.__aenter__)
                self._portal, self._portal_runtime = portal, runtime
                self._finalizer = weakref.finalize(self, _shutdown, portal, runtime)
            return self._portal

    @asynccontextmanager
    async def _runtime_scope(self) -> AsyncIterator[Runtime]:
        if self._runtime is not None:
            yield self._runtime
            return
        if self._entered is not None:
            yield self._entered
            return
        portal = self._portal
        if (
            portal is not None
            and self._portal_runtime is not None
            and threading.current_thread() is portal.thread
        ):
            yield self._portal_runtime
            return
        # A bare arun(): a runtime for this call only (use 'async with agent'
        # or a shared Runtime to keep connections across calls).
        async with Runtime() as runtime:
            yield runtime

    def _policy(self, runtime: Runtime) -> PolicyClient:
        policy = self._policies.get(runtime)
        if policy is None:
            cfg = self.config
            policy = PolicyClient(
                runtime,
                base_urls=cfg.base_urls,
                model=cfg.model,
                api_key=cfg.api_key,
                route=cfg.policy_route,
                request_timeout=cfg.request_timeout,
            )
            self._policies[runtime] = policy
        return policy

    def _rollout(
        self,
        runtime: Runtime,
        prompt: str,
        seed: int | None,
        max_rounds: int | None,
        rollout_id: str | None,
        emit: Emit | None,
    ) -> Rollout:
        if max_rounds is not None and max_rounds < 1:
            raise ConfigurationError(f"max_rounds must be at least 1, got {max_rounds}")
        return Rollout(
            rollout_id=rollout_id or uuid.uuid4().hex[:12],
            prompt=prompt,
            config=self.config,
            prompts=self.prompts,
            tools=self.tools,
            tool_schemas=self._tool_schemas,
            policy=self._policy(runtime),
            runtime=runtime,
            seed=seed if seed is not None else self.config.seed,
            max_rounds=max_rounds or self.config.max_rounds,
            emit=emit,
        )

    def _hook_emit(self) -> Emit | None:
        hooks = self._hooks
        if not hooks:
            return None

        async def dispatch(event: AgentEvent) -> None:
            for hook in hooks:
                try:
                    outcome = hook(event)
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception:
                    logger.exception("agent hook %r failed on %s", hook, event.kind)

        return dispatch
