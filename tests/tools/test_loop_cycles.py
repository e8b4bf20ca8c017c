"""How often a rollout hands the event loop back: once per response, about.

Under load every suspension of a rollout's task costs it a whole loop cycle
(hundreds of other tasks run first), so a needless one (``await`` on an
Event that is already set, a checkpoint per downloaded image) shows up as
latency. This counts suspensions deterministically, with asyncio's pure
Python ``Task`` so that each step can be observed; no timing involved.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import contextvars
from collections import Counter
from collections.abc import Coroutine
from typing import Any

import pytest

from genevolve_async import GenEvolveAgent, Runtime
from genevolve_async.sim import SimImageHost, SimPolicy, SimSerper
from genevolve_async.tools import ImageCacheSettings

from .test_agent_with_search import search_tools

_IN_ROLLOUT: contextvars.ContextVar[bool] = contextvars.ContextVar("in_rollout", default=False)
# Besides one suspension per HTTP response: the task groups of a turn, of its
# downloads and of its queries; the side work writing the images (a thread
# hop and its checkpoint) and the wait for it before the answer; the
# rollout's own task-group exit; one to spare. Seen: 7 on top of 12 responses.
_ALLOWED_EXTRA = 8


def count_suspensions(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count, by innermost awaiting line, each time a rollout task suspends."""
    py_task: Any = asyncio.tasks._PyTask  # type: ignore[attr-defined]
    real_step = py_task._Task__step
    seen: Counter[str] = Counter()

    def step(task: Any, exc: BaseException | None = None) -> None:
        real_step(task, exc)
        if task.done() or not task._context.get(_IN_ROLLOUT, False):
            return
        frame = None
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = (
                getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None) or frame
            )
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        seen[f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame else "?"] += 1

    monkeypatch.setattr(py_task, "_Task__step", step)
    return seen


async def run_in_python_task(coro: Coroutine[Any, Any, str]) -> str:
    """Run ``coro`` in a pure-Python Task, as are the tasks it starts."""
    py_task: Any = asyncio.tasks._PyTask  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()

    def factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kw: Any) -> Any:
        return py_task(coro, loop=loop, **kw)

    previous = loop.get_task_factory()
    loop.set_task_factory(factory)
    try:
        return await loop.create_task(coro)
    finally:
        loop.set_task_factory(previous)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the pure-Python Task is asyncio's


async def test_a_rollout_suspends_about_once_per_response(
    monkeypatch: pytest.MonkeyPatch,
    sim_policy: tuple[SimPolicy, str],
    images: tuple[SimImageHost, str],
    serper: tuple[SimSerper, str],
    runtime: Runtime,
    cache_settings: ImageCacheSettings,
) -> None:
    policy, policy_url = sim_policy
    agent = GenEvolveAgent(
        runtime=runtime, base_url=policy_url, tools=search_tools(serper[1], cache_settings)
    )

    def responses() -> int:
        return policy.stats.requests + serper[0].stats.requests + images[0].stats.requests

    await agent.arun("warm-up: connections and the cache folder")
    before = responses()
    seen = count_suspensions(monkeypatch)

    async def rollout() -> str:
        _IN_ROLLOUT.set(True)
        return (await agent.arun("a lighthouse on a cliff at dawn")).termination

    assert await run_in_python_task(rollout()) == "answer"
    made = responses() - before
    assert made >= 10  # 4 model calls, 3 Serper calls, the downloads
    assert sum(seen.values()) <= made + _ALLOWED_EXTRA, seen.most_common()
