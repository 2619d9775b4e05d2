"""``Detachable``: await a coroutine in the awaiting task, and leave it to a task of its own only when a
cancellation is not honoured.

Why: ``RedisStateStore`` must let a caller whose deadline passed leave at once, even when a client
library does not stop a command when cancelled (it catches the cancellation and goes on waiting for a
frozen server). A task per command (``ensure_future`` plus ``shield``) guarantees that, but costs about
five event-loop turns per command, more than half of what the store's call path costs besides the round
trip. Driving the coroutine from the awaiting task costs none: its suspensions are passed to that task
as they are. When the task is cancelled, the cancellation is passed to the coroutine; if the coroutine
raises, that is the outcome, and if it suspends again instead (it did not stop, or it still cleans up),
the rest of it runs in a new task and the awaiting task leaves with the cancellation.

A coroutine that may be detached must not have entered, before it was cancelled, anything bound to the
awaiting task (``asyncio.timeout`` is): that binding would outlive the detachment. redis-py without a
socket timeout enters none around a command (``redis_state.state_client``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Detachable(Generic[T]):
    """``await Detachable(coroutine)``: ``coroutine``'s outcome, run in the awaiting task (see the module)."""

    __slots__ = ("_coroutine", "_suspended")

    def __init__(self, coroutine: Coroutine[Any, Any, T], suspended: object = None) -> None:
        self._coroutine = coroutine
        self._suspended = suspended  # set when it continues a detached coroutine: what it waits on

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine = self._coroutine
        try:
            signal = self._suspended if self._suspended is not None else coroutine.send(None)
            while True:
                try:
                    sent = yield signal
                except GeneratorExit:
                    coroutine.close()
                    raise
                except BaseException as thrown:  # the task's cancellation: passed on
                    signal = coroutine.throw(thrown)
                    if isinstance(thrown, asyncio.CancelledError):
                        _detach(coroutine, signal)  # it suspended instead of ending: leave it running
                        raise thrown from None
                    continue
                signal = coroutine.send(sent)
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]


def _detach(coroutine: Coroutine[Any, Any, Any], suspended: object) -> None:
    async def rest() -> Any:
        return await Detachable(coroutine, suspended)

    task = asyncio.ensure_future(rest())
    task.add_done_callback(retrieve_outcome)


def retrieve_outcome(task: asyncio.Future[Any]) -> None:
    """A done callback retrieving a task's outcome nobody awaits, so asyncio does not log it as never
    retrieved."""
    if not task.cancelled():
        task.exception()
