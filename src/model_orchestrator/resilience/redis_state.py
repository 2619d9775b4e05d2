"""``RedisStateStore``: the ``StateStore`` on Redis or Valkey, shared by every process that names it.

Owns the Redis layout (one string key per state key, under a prefix, holding ``state_codec`` JSON), the
generic ``update`` as an optimistic transaction (compute from the value last seen, then a compare-and-set
script that writes only if the key still holds it and otherwise answers with what it holds; run the
changes again on that, a bounded number of times), and the rate windows as Lua scripts
(``redis_scripts``) that run ``request_log`` / ``sliding_window`` on the server, so a window is checked
and counted in one atomic step with no retries under contention (``take_windows``: several windows, such
as a deployment's rpm and tpm, in one script and one round trip).

Round trips are what a call costs here (60-120 µs of client CPU each), so the store makes few:

- **A read cache with a staleness bound.** What this process last read or wrote of a key is answered
  from memory for ``cache_ttl`` seconds (0.25 s): ``get`` of a cooldown or health result, and an
  ``update`` that changes nothing (a closed breaker admitting a call). A change made by another process
  is seen here within that bound; a change made here is seen here at once (writes go through).
  Windows are never cached: every rate-limit acquire runs on the server.
- **Group commit.** The updates of one key queue behind the one in flight and go out together as one
  compare-and-set (each change applied to its predecessor's result, in order; every caller gets its
  own result). Nothing is written when the changes leave the value as it was.
- **Late writes for outcomes nobody waits on.** ``record`` and ``adjust_window`` (a breaker's success, a
  token window's correction) are held up to ``write_delay`` (20 ms) and written with the key's other
  changes: one write per key per interval however many calls finished. A held correction goes to
  Redis with this process's next acquire of that window, in the same script, if that comes first.

It does not decide what happens when Redis is down: every failure is raised as
``StateUnavailableError`` and ``shared_state.FailoverStateStore`` applies ``state.on_unavailable`` (a late
write that fails is dropped, with a DEBUG line: it counted one outcome or a token correction).
Imported only when ``state.url`` is configured (``redis`` is an optional dependency).

Times come from the callers (wall time, ``now``): every host's clock must be synchronised (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from model_orchestrator.core.clock import Clock
from model_orchestrator.resilience.detachable import retrieve_outcome
from model_orchestrator.resilience.redis_commands import RedisCommands, unavailable
from model_orchestrator.resilience.redis_scripts import ADJUST, SWAP, TAKE
from model_orchestrator.resilience.state_codec import StateCodec, default_codec
from model_orchestrator.resilience.state_store import (
    StateContentionError,
    WindowGrant,
    WindowKind,
    WindowTake,
)

_log = logging.getLogger(__name__)

S = TypeVar("S")
R = TypeVar("R")
T = TypeVar("T")

_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def redis_client(url: str, *, timeout: float = 2.0) -> Redis:
    """A client for ``url`` whose connects and reads give up after ``timeout`` seconds, never retried: for
    users that bound nothing themselves (``SharedBudgetKeeper``). Not for ``RedisStateStore``."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )


def state_client(url: str, *, connect_timeout: float = 2.0) -> Redis:
    """A client for ``RedisStateStore``: connects give up after ``connect_timeout`` seconds, never retried;
    commands have no socket timeout (the store bounds each, ``redis_commands``). With one, redis-py sends
    under ``asyncio.wait_for`` (a task per send on 3.11, which can lose a cancellation) and reads under a
    timeout bound to the sending task, which a command left to finish elsewhere must not carry."""
    return Redis.from_url(
        url,
        socket_timeout=None,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )


@dataclass(frozen=True, slots=True)
class _Seen:
    """A key's value as this process last read or wrote it, and when (monotonic seconds)."""

    raw: bytes | None
    value: object | None
    at: float


_Change = Callable[[Any], tuple[Any, Any]]
_Waiter = tuple[_Change, "asyncio.Future[Any] | None"]


class RedisStateStore:
    """State in Redis under ``prefix``; ``update`` retries a contended key up to ``max_attempts`` times.

    ``cache_ttl``: how long (real seconds) a value read or written by this process answers reads and
    unchanged updates without a round trip, so how late a change made elsewhere may be seen here
    (0: always read). ``write_delay``: how long ``record`` and ``adjust_window`` may hold a change.
    ``command_timeout``: the bound on every command, waited on or not; ``client``: from ``state_client``.
    """

    def __init__(
        self,
        client: Redis,
        *,
        codec: StateCodec | None = None,
        prefix: str = "orchestrator:state:",
        max_attempts: int = 64,
        cache_ttl: float = 0.25,
        write_delay: float = 0.02,
        command_timeout: float = 2.0,
    ) -> None:
        self._commands = RedisCommands(client, timeout=command_timeout, on_failure=self._forget)
        self._client = client
        self._codec = codec or default_codec()
        self._prefix = prefix
        self._max_attempts = max_attempts
        self._cache_ttl = cache_ttl
        self._write_delay = write_delay
        self._seen: dict[str, _Seen] = {}
        self._ahead: dict[str, object | None] = {}  # the cached value with the held-back changes applied
        # Updates of one key wait here for the one in flight; one task per key drains its queue.
        self._queues: dict[str, list[_Waiter]] = {}
        self._draining: dict[str, asyncio.Task[None]] = {}
        self._adjusts: dict[str, dict[int, int]] = {}  # key -> slot -> units held back
        self._flush: asyncio.TimerHandle | None = None
        self._late: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._take = client.register_script(TAKE)
        self._swap = client.register_script(SWAP)
        self._adjust = client.register_script(ADJUST)

    def __repr__(self) -> str:
        return f"RedisStateStore(prefix={self._prefix!r})"

    def now(self, clock: Clock) -> float:
        return clock.wall()

    def cached(self, key: str) -> tuple[bool, object | None]:
        """``(True, value)`` when a read of ``key`` can be answered from this process's cache (what it read
        or wrote within ``cache_ttl``, with the changes it holds back applied)."""
        name = self._prefix + key
        if name in self._draining:
            return False, None
        seen = self._seen.get(name)
        if seen is None or time.monotonic() - seen.at >= self._cache_ttl:
            return False, None
        if name in self._ahead:
            return True, self._ahead[name]
        return (False, None) if self._queues.get(name) else (True, seen.value)

    async def get(self, key: str) -> object | None:
        hit, value = self.cached(key)
        if hit:
            return value
        return (await self._commands.run(self._read(self._prefix + key))).value

    async def update(self, key: str, change: Callable[[S | None], tuple[S, R]]) -> R:
        known, value = self.cached(key)
        if known:
            new, result = change(value)  # type: ignore[arg-type]
            if new == value:
                return result  # nothing to write: decided on a value seen within the staleness bound
        name = self._prefix + key
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(name, []).append((change, done))
        self._drain(name)
        return await self._result(done)

    async def record(self, key: str, change: Callable[[S | None], S]) -> None:
        known, value = self.cached(key)
        name = self._prefix + key
        if known:  # what this process reads of the key from now on includes the change
            self._ahead[name] = change(value)  # type: ignore[arg-type]
        else:  # reads go to Redis until the held changes are written
            self._ahead.pop(name, None)
        self._queues.setdefault(name, []).append((lambda old: (change(old), None), None))
        self._late.add(name)
        self._flush_soon()

    async def items(self, prefix: str) -> dict[str, object]:
        async def scan() -> dict[str, object]:
            pattern = (self._prefix + prefix).translate(_GLOB_SPECIAL) + "*"
            names = [name async for name in self._client.scan_iter(match=pattern, count=500)]
            if not names:
                return {}
            values = await self._client.mget(names)
            start = len(self._prefix)
            return {
                name.decode()[start:]: self._codec.decode(raw)
                for name, raw in zip(names, values, strict=True)
                if raw is not None
            }

        return await self._commands.run(scan())

    async def take_window(
        self, key: str, *, kind: WindowKind, now: float, limit: int | None, amount: int
    ) -> WindowGrant:
        return (await self.take_windows([WindowTake(key, kind, limit, amount)], now=now))[0]

    async def take_windows(self, takes: Sequence[WindowTake], *, now: float) -> tuple[WindowGrant, ...]:
        names, args = [], [repr(now)]
        for take in takes:
            name = self._prefix + take.key
            self._forget(name)  # the script changes it: an update must not start from a cached value
            held = self._adjusts.pop(name, {})  # corrections held back go first, in the same step
            names.append(name)
            limit = "" if take.limit is None else str(take.limit)
            args += [take.kind, limit, str(take.amount), str(len(held))]
            args += [str(part) for pair in held.items() for part in pair]
        reply = await self._commands.run(self._commands.script(self._take, names, args))
        fields = [part.decode() if isinstance(part, bytes) else str(part) for part in reply]
        replies = [fields[i : i + 3] for i in range(0, len(fields), 3)]
        if all(fits == "1" for fits, _, _ in replies):
            return tuple(
                WindowGrant(True, int(slot) if slot else None, float(previous) if previous else None)
                for _, slot, previous in replies
            )
        return tuple(
            WindowGrant(False, ready_at=now if fits == "1" else float(ready) if ready else None)
            for fits, ready, _ in replies
        )

    async def adjust_window(self, key: str, *, slot: int, delta: int) -> None:
        held = self._adjusts.setdefault(self._prefix + key, {})
        held[slot] = held.get(slot, 0) + delta
        self._flush_soon()

    async def flush(self) -> None:
        """Write what ``record`` and ``adjust_window`` hold now, and wait for every queued update."""
        while self._late or self._adjusts or self._tasks:
            if self._flush is not None:
                self._flush.cancel()
            self._write_late()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Write what is held, then close the connection pool."""
        with contextlib.suppress(RedisError, OSError):
            await self.flush()
        await self._client.aclose()

    def _flush_soon(self) -> None:
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self._write_delay, self._write_late)

    def _write_late(self) -> None:
        self._flush = None
        late, self._late = self._late, set()
        for name in late:
            self._drain(name, held_too=True)
        if self._adjusts:
            adjusts, self._adjusts = self._adjusts, {}
            self._spawn(self._write_adjusts(adjusts))

    async def _write_adjusts(self, adjusts: dict[str, dict[int, int]]) -> None:
        try:
            async with (
                asyncio.timeout(self._commands.timeout),
                self._client.pipeline(transaction=False) as pipe,
            ):
                for name, held in adjusts.items():
                    for slot, delta in held.items():
                        await self._adjust(keys=[name], args=[str(slot), str(delta)], client=pipe)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            _log.debug("token window corrections for shared state were dropped: %s", exc)

    def _drain(self, name: str, *, held_too: bool = False) -> None:
        """Start the task that writes ``name``'s queue, unless it runs already (it will take the rest);
        ``held_too``: write it even when it holds only recorded changes (their time has come)."""
        if name not in self._draining:
            self._draining[name] = self._spawn(self._drain_queue(name, held_too))

    async def _drain_queue(self, name: str, held_too: bool) -> None:
        try:
            while queue := self._queues.get(name):
                if not held_too and all(done is None for _, done in queue):
                    self._hold(name, queue)  # only records came in meanwhile: they wait for their time
                    break
                held_too = False
                del self._queues[name]
                self._ahead.pop(name, None)
                batch = [(change, done) for change, done in queue if done is None or not done.done()]
                if not batch:
                    continue
                try:
                    async with asyncio.timeout(self._commands.timeout):
                        results = await self._commit(name, [change for change, _ in batch])
                except Exception as exc:  # noqa: BLE001 - raised to every waiter; a late write is dropped
                    for _, done in batch:
                        if done is not None and not done.done():
                            done.set_exception(exc)
                    self._forget(name)
                    if any(done is None for _, done in batch):
                        _log.debug("a late write to shared state was dropped: %s", exc)
                    continue
                for (_, done), result in zip(batch, results, strict=True):
                    if done is not None and not done.done():
                        done.set_result(result)
        finally:
            del self._draining[name]

    def _hold(self, name: str, queue: list[_Waiter]) -> None:
        """Leave recorded changes for the next late write, and cache the value with them applied."""
        self._late.add(name)
        self._flush_soon()
        seen = self._seen.get(name)
        if seen is not None:
            value = seen.value
            for change, _ in queue:
                value, _ = change(value)
            self._ahead[name] = value

    async def _commit(self, name: str, changes: list[_Change]) -> list[Any]:
        """Apply ``changes`` in order, from what this process saw last, in one compare-and-set."""
        seen, fresh = self._seen.get(name), False
        if seen is None:
            seen, fresh = await self._read(name), True
        for attempt in range(self._max_attempts):
            value, results = seen.value, []
            for change in changes:
                value, result = change(value)
                results.append(result)
            if value == seen.value:
                if fresh or time.monotonic() - seen.at < self._cache_ttl:
                    return results  # nothing to write, decided on a value read within the staleness bound
                seen, fresh = await self._read(name), True
                continue
            encoded = self._codec.encode(value).encode()
            written, current = await self._commands.script(self._swap, [name], [seen.raw or b"", encoded])
            if written:
                self._seen[name] = _Seen(encoded, value, time.monotonic())
                return results
            seen, fresh = self._remember(name, current or None), True
            if attempt:  # contended more than once: let the other processes' writes through first
                await asyncio.sleep(random.uniform(0, 0.0005 * min(attempt, 8)))
        raise StateContentionError(
            f"shared state key {name!r} changed under {self._max_attempts} attempts in a row to update it; "
            "too many processes are writing it at once (retry the request)"
        )

    async def _read(self, name: str) -> _Seen:
        raw = await self._client.get(name)
        return self._remember(name, raw.encode() if isinstance(raw, str) else raw)

    def _remember(self, name: str, raw: bytes | None) -> _Seen:
        seen = _Seen(raw, None if raw is None else self._codec.decode(raw), time.monotonic())
        self._seen[name] = seen
        self._ahead.pop(name, None)  # held-back changes are no longer applied to what is cached
        return seen

    def _forget(self, name: str | None = None) -> None:
        """Drop what is cached of ``name`` (None: of every key)."""
        if name is None:
            self._seen.clear()
            self._ahead.clear()
        else:
            self._seen.pop(name, None)
            self._ahead.pop(name, None)

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(retrieve_outcome)
        return task

    async def _result(self, done: asyncio.Future[T]) -> T:
        """What a queued update's drain task set on ``done``; errors raised as ``RedisCommands.run`` does."""
        try:
            return await done
        except asyncio.CancelledError:
            self._forget()
            raise
        except (RedisError, OSError, TimeoutError) as exc:
            raise unavailable(exc) from exc
