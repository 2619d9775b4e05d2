"""``Detachable``: a command runs in the task that awaits it (no task of its own), and a cancelled awaiter
leaves at once even when the command does not stop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from model_orchestrator.resilience.detachable import Detachable

T = TypeVar("T")


async def test_the_command_runs_in_the_awaiting_task_and_its_outcome_passes_through() -> None:
    async def command() -> asyncio.Task[object] | None:
        await asyncio.sleep(0)
        return asyncio.current_task()

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("refused")

    caller = asyncio.current_task()
    assert await Detachable(command()) is caller
    with pytest.raises(ValueError, match="refused"):
        await Detachable(failing())


async def test_a_command_that_stops_when_cancelled_ends_in_the_awaiting_task() -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def command() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise

    caller = asyncio.ensure_future(_await(command()))
    await started.wait()
    before = asyncio.all_tasks()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert stopped.is_set() and asyncio.all_tasks() <= before  # no task was left running it


async def test_a_cancelled_awaiter_leaves_a_command_that_does_not_stop_running_on_its_own() -> None:
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def deaf() -> str:
        started.set()
        while True:
            try:
                await release.wait()
                break
            except asyncio.CancelledError:
                continue  # what a client that swallows the cancellation does
        finished.set()
        return "late"

    caller = asyncio.ensure_future(_await(deaf()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller  # left at once, while the command still waits
    assert not finished.is_set()
    release.set()
    await finished.wait()  # finished in a task of its own


async def test_an_awaiter_under_a_timeout_gets_the_timeout_when_the_command_does_not_stop() -> None:
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await Detachable(deaf())
    release.set()


async def _await(command: Coroutine[Any, Any, T]) -> T:
    return await Detachable(command)
