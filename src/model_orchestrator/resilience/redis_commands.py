"""``RedisCommands``: a Redis client's commands run in their callers' tasks, each within a bound.

Why not a task per command (``ensure_future`` plus ``shield``) or redis-py's socket timeout: measured
through a deployment stack with rpm and tpm (``benchmarks/state.py``), those cost a command about six
event-loop turns and, on Python 3.11, a task per send (``asyncio.wait_for``); Redis then added 190-200 µs
of client CPU to a call one at a time. Here a command costs the turn its answer wakes, and:

- a caller cancelled (``FailoverStateStore``'s deadline) leaves at once even when the command does not
  stop: the rest of it finishes in a task of its own (``Detachable``; redis-py did not stop one of five
  concurrent commands on a frozen server);
- every command ends within ``timeout`` (the client has no socket timeout, ``redis_state.state_client``):
  one timer checks every command in flight twice per ``timeout`` instead of a timer per command (an
  ``asyncio.timeout`` each cost 4-10 µs);
- a command made while others are in flight is sent after them in the next turn: sends made back to back
  find redis-server busy (9 µs of kernel CPU each here) instead of waking it (24 µs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from model_orchestrator.core.errors import StateUnavailableError
from model_orchestrator.resilience.detachable import Detachable

T = TypeVar("T")


class _Running:
    """A command in flight in its caller's task: due by when, and whether the bound cancelled it."""

    __slots__ = ("cancelling", "due", "expired", "task")

    def __init__(self, task: asyncio.Task[Any], due: float) -> None:
        self.task = task
        self.due = due
        self.cancelling = task.cancelling()  # the task's pending cancellations before the command
        self.expired = False


class RedisCommands:
    """Runs ``client``'s commands within ``timeout`` seconds each; ``on_failure`` is called when one fails
    or its caller is cancelled (Redis may come back empty)."""

    def __init__(self, client: Redis, *, timeout: float, on_failure: Callable[[], None]) -> None:
        if client.connection_pool.connection_kwargs.get("socket_timeout") is not None:
            raise ValueError(
                "RedisStateStore needs a client without a socket timeout (it bounds every command itself, "
                "command_timeout): make it with state_client(url)"
            )
        self.client = client
        self.timeout = timeout
        self._on_failure = on_failure
        self._running: set[_Running] = set()
        self._watch: asyncio.TimerHandle | None = None

    async def run(self, command: Coroutine[Any, Any, T]) -> T:
        """``command``'s answer; Redis errors and the bound raised as ``StateUnavailableError``."""
        if self._running:  # others are in flight: send after them, back to back
            try:
                await asyncio.sleep(0)
            except BaseException:
                command.close()
                raise
        task = asyncio.current_task()
        assert task is not None  # a coroutine awaited runs in a task
        running = _Running(task, time.monotonic() + self.timeout)
        self._running.add(running)
        if self._watch is None:
            self._watch = asyncio.get_running_loop().call_later(self.timeout / 2, self._sweep)
        try:
            return await Detachable(command)
        except asyncio.CancelledError:
            self._on_failure()  # a deadline missed may be an outage
            if running.expired and task.uncancel() <= running.cancelling:  # the bound's cancellation
                raise unavailable(TimeoutError(f"{self.timeout:g}s")) from None
            raise
        except (RedisError, OSError) as exc:
            self._on_failure()
            raise unavailable(exc) from exc
        finally:
            self._running.discard(running)

    async def script(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """``script`` run by its SHA, loaded again if Redis lost it (a restart). Not ``script(...)``:
        redis-py's call imports and checks its pipeline types each time (5-8 µs of an 85 µs round trip)."""
        try:
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await script(keys=keys, args=args)

    def _sweep(self) -> None:
        """Cancel the callers whose command is past the bound."""
        self._watch = None
        now = time.monotonic()
        for running in self._running:
            if not running.expired and now >= running.due:
                running.expired = True
                running.task.cancel()
        if self._running:
            self._watch = asyncio.get_running_loop().call_later(self.timeout / 2, self._sweep)


def unavailable(exc: BaseException) -> StateUnavailableError:
    """The error a failed command (or one past its bound, ``TimeoutError``) is raised as."""
    reason = f"no answer within its bound ({exc})" if isinstance(exc, TimeoutError) else str(exc)
    return StateUnavailableError(
        f"shared state (Redis) failed: {type(exc).__name__}: {reason}; check that it runs and "
        "that state.url points at it"
    )
