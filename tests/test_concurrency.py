"""run_concurrently: concurrent, ordered, one task fewer, failures cancel the rest."""

from __future__ import annotations

import anyio
import pytest

from genevolve_async._concurrency import run_concurrently


async def test_items_run_concurrently_and_start_in_order() -> None:
    started: list[int] = []
    all_in = anyio.Event()

    async def one(i: int) -> None:
        started.append(i)
        if len(started) == 4:
            all_in.set()
        await all_in.wait()  # sequential runs would never get here

    with anyio.fail_after(5):
        await run_concurrently(one, [0, 1, 2, 3])
    assert started == [0, 1, 2, 3]


async def test_the_first_item_runs_in_the_callers_task() -> None:
    caller = anyio.get_current_task().id
    tasks: dict[int, int] = {}

    async def one(i: int) -> None:
        tasks[i] = anyio.get_current_task().id
        await anyio.lowlevel.checkpoint()

    await run_concurrently(one, [0, 1, 2])
    assert tasks[0] == caller
    assert len({tasks[1], tasks[2], caller}) == 3


@pytest.mark.parametrize("failing", [0, 2])
async def test_a_failure_cancels_the_others(failing: int) -> None:
    cancelled: list[int] = []

    async def one(i: int) -> None:
        if i == failing:
            await anyio.lowlevel.checkpoint()
            raise KeyError(i)
        try:
            await anyio.sleep(10)
        except anyio.get_cancelled_exc_class():
            cancelled.append(i)
            raise

    with anyio.fail_after(5), pytest.RaisesGroup(KeyError):
        await run_concurrently(one, [0, 1, 2])
    assert sorted(cancelled) == sorted({0, 1, 2} - {failing})


async def test_no_items_and_one_item() -> None:
    seen: list[int] = []

    async def one(i: int) -> None:
        seen.append(i)

    await run_concurrently(one, [])
    await run_concurrently(one, [7])
    assert seen == [7]
