"""``RedisStateStore``: the ``StateStore`` on Redis or Valkey, shared by every process that names it.

Owns the Redis layout (one string key per state key, under a prefix, holding ``state_codec`` JSON), the
generic ``update`` as an optimistic transaction (compute from the value last seen, then a compare-and-set
script that writes only if the key still holds it and otherwise answers with what it holds; run
``change`` again on that, a bounded number of times; within one process updates of one key take turns;
nothing is written when ``change`` returns the current value unchanged), and the rate windows as Lua scripts
that run the same algorithm as ``request_log`` / ``sliding_window`` on the server, so a window is
checked and counted in one atomic step with no retries under contention.

It does not decide what happens when Redis is down: every failure is raised as
``StateUnavailableError`` and ``shared_state.FailoverStateStore`` applies ``state.on_unavailable``.
Imported only when ``state.url`` is configured (``redis`` is an optional dependency).

Times come from the callers (wall time, ``now``): every host's clock must be synchronised (NTP). The
scripts keep the window layout exactly as Python writes it; Lua's cjson writes numbers with 14
significant digits (wall times to 0.1 ms): send times are rounded up, so a slot may leave its window
up to 0.1 ms later than exact, never sooner.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import StateUnavailableError
from model_orchestrator.resilience.state_codec import StateCodec, default_codec
from model_orchestrator.resilience.state_store import StateContentionError, WindowGrant, WindowKind

S = TypeVar("S")
R = TypeVar("R")
T = TypeVar("T")

# Mirrors request_log.request_ready_at / take_request and sliding_window.pruned / ready_at / take.
# KEYS[1]: the key; ARGV: kind ("requests" | "units"), now, limit ("" = none), amount.
# Returns {"1", slot or "", previous last_sent or ""} or {"0", ready_at or "" (never fits)}.
_TAKE = """
local WINDOW, SLOT = 60, 1
local kind, now, limit, amount = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local raw = redis.call('GET', KEYS[1])
local value = raw and cjson.decode(raw) or nil
local req, log
if kind == 'requests' then
  req = value or {__t='RequestLog', last_sent=cjson.null, not_before=0, pace_interval=0, pace_until=0,
                  window={__t='WindowLog', slots={}, total=0}}
  log = req.window
else
  log = value or {__t='WindowLog', slots={}, total=0}
end
local slots, total, alive = {}, log.total, false
for _, s in ipairs(log.slots) do
  if alive or s.last + WINDOW > now then alive = true; slots[#slots + 1] = s else total = total - s.amount end
end
local ready = now
if req then
  if req.not_before > ready then ready = req.not_before end
  if req.last_sent ~= cjson.null and now < req.pace_until then
    ready = math.max(ready, req.last_sent + req.pace_interval)
  end
end
if limit then
  if amount > limit then return {'0', ''} end
  local used = total
  if used + amount > limit then
    for _, s in ipairs(slots) do
      used = used - s.amount
      if used + amount <= limit then ready = math.max(ready, s.last + WINDOW); break end
    end
  end
end
if ready > now then return {'0', string.format('%.17g', ready)} end
-- cjson keeps 14 significant digits (0.1 ms for wall times): round the send time up, never down, so a
-- slot leaves the window no sooner than it would in Python.
local stamp = math.ceil(now * 10000) / 10000
local slot = ''
if limit then
  local index = math.floor(now / SLOT)
  local n = #slots
  if n > 0 and slots[n].index == index then
    slots[n].last = math.max(slots[n].last, stamp)
    slots[n].amount = slots[n].amount + amount
  else
    slots[n + 1] = {__t='Slot', index=index, last=stamp, amount=amount}
  end
  total = total + amount
  slot = string.format('%d', index)
end
log.slots, log.total = slots, total
local previous = ''
if req then
  if req.last_sent ~= cjson.null then previous = string.format('%.17g', req.last_sent) end
  req.last_sent, req.window, value = stamp, log, req
else
  value = log
end
redis.call('SET', KEYS[1], cjson.encode(value))
return {'1', slot, previous}
"""

# Mirrors sliding_window.adjust. KEYS[1]: a units window; ARGV: slot index, delta.
_ADJUST = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local log = cjson.decode(raw)
local index, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = #log.slots, 1, -1 do
  local s = log.slots[i]
  if s.index == index then
    local amount = math.max(0, s.amount + delta)
    log.total = log.total - s.amount + amount
    s.amount = amount
    redis.call('SET', KEYS[1], cjson.encode(log))
    return 1
  end
end
return 0
"""

# Compare-and-set, the write half of ``update``. KEYS[1]: the key; ARGV: the value expected ("" for none:
# encoded state is never empty), the new value. Returns {1, ""} when written, {0, current value} if not.
_SWAP = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return {0, current} end
redis.call('SET', KEYS[1], ARGV[2])
return {1, ''}
"""

_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def redis_client(url: str, *, timeout: float = 2.0) -> Redis:
    """A client for ``url`` whose connects and reads give up after ``timeout`` seconds, never retried.

    A backstop: ``FailoverStateStore`` bounds every call far tighter (``state.timeout``, at most 1 s)
    and, unlike a socket timeout, tells a slow store from an event loop that was blocked elsewhere. A
    command its caller abandoned ends here at the latest (holding, until then, its key's update lock).
    """
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )


class RedisStateStore:
    """State in Redis under ``prefix``; ``update`` retries a contended key up to ``max_attempts`` times.

    An update that changes nothing may decide from a value this process read or wrote within
    ``trust_seen`` seconds (real time) instead of reading it again: a closed breaker admits a call without
    a round trip, and a breaker another process opened stops this one within that time (or at its next
    write, which fails and brings the current value). 0: always read.
    """

    def __init__(
        self,
        client: Redis,
        *,
        codec: StateCodec | None = None,
        prefix: str = "orchestrator:state:",
        max_attempts: int = 64,
        trust_seen: float = 0.25,
    ) -> None:
        self._client = client
        self._codec = codec or default_codec()
        self._prefix = prefix
        self._max_attempts = max_attempts
        # One transaction per key at a time from this process: concurrent WATCHes of one key would
        # mostly fail each other (measured: 32 in flight on one key exhaust 64 attempts), so only the
        # other processes contend, and retries stay rare and bounded.
        self._locks: dict[str, asyncio.Lock] = {}
        self._seen: dict[str, bytes | None] = {}
        self._seen_at: dict[str, float] = {}
        self._trust_seen = trust_seen
        self._take = client.register_script(_TAKE)
        self._swap = client.register_script(_SWAP)
        self._adjust = client.register_script(_ADJUST)

    def __repr__(self) -> str:
        return f"RedisStateStore(prefix={self._prefix!r})"

    def now(self, clock: Clock) -> float:
        return clock.wall()

    async def get(self, key: str) -> object | None:
        raw = await self._call(self._client.get(self._prefix + key))
        return None if raw is None else self._codec.decode(raw)

    async def update(self, key: str, change: Callable[[S | None], tuple[S, R]]) -> R:
        return await self._call(self._update(self._prefix + key, change))

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

        return await self._call(scan())

    async def take_window(
        self, key: str, *, kind: WindowKind, now: float, limit: int | None, amount: int
    ) -> WindowGrant:
        args = [kind, repr(now), "" if limit is None else str(limit), str(amount)]
        reply = await self._call(self._take(keys=[self._prefix + key], args=args))
        fields = [part.decode() if isinstance(part, bytes) else str(part) for part in reply]
        if fields[0] != "1":
            return WindowGrant(False, ready_at=float(fields[1]) if fields[1] else None)
        slot = int(fields[1]) if fields[1] else None
        previous = float(fields[2]) if fields[2] else None
        return WindowGrant(True, slot, previous)

    async def adjust_window(self, key: str, *, slot: int, delta: int) -> None:
        await self._call(self._adjust(keys=[self._prefix + key], args=[str(slot), str(delta)]))

    async def ping(self) -> None:
        """Raise ``StateUnavailableError`` unless Redis answers."""
        await self._call(self._client.ping())

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _update(self, name: str, change: Callable[[S | None], tuple[S, R]]) -> R:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        async with lock:
            # Start from what this process last saw (usually still current: one round trip, the swap);
            # a failed swap answers with the current value, so a retry needs no separate read.
            fresh, raw = name not in self._seen, self._seen.get(name)
            if fresh:
                raw = await self._read(name)
            for attempt in range(self._max_attempts):
                old = None if raw is None else self._codec.decode(raw)
                new, result = change(old)  # type: ignore[arg-type]
                if new == old and (fresh or time.monotonic() - self._seen_at[name] < self._trust_seen):
                    # Nothing to write (a closed breaker admitting a call), from a value read or written
                    # within ``trust_seen`` seconds: a change by another process shows within that long.
                    self._remember(name, raw, fresh)
                    return result
                if new == old:  # unchanged from a remembered value: read the current one first
                    raw, fresh = await self._read(name), True
                    continue
                encoded = self._codec.encode(new).encode()
                written, current = await self._swap(keys=[name], args=[raw or b"", encoded])
                if written:
                    self._remember(name, encoded, True)
                    return result
                raw, fresh = current or None, True
                self._remember(name, raw, True)
                if attempt:  # contended more than once: let the other processes' writes through first
                    await asyncio.sleep(random.uniform(0, 0.0005 * min(attempt, 8)))
        raise StateContentionError(
            f"shared state key {name!r} changed under {self._max_attempts} attempts in a row to update it; "
            "too many processes are writing it at once (retry the request)"
        )

    def _remember(self, name: str, raw: bytes | None, confirmed: bool) -> None:
        self._seen[name] = raw
        if confirmed:
            self._seen_at[name] = time.monotonic()

    async def _read(self, name: str) -> bytes | None:
        raw = await self._client.get(name)
        return raw.encode() if isinstance(raw, str) else raw  # bytes: the client never decodes

    async def _call(self, operation: Awaitable[T]) -> T:
        # The command runs in a task of its own, so a caller that is cancelled (FailoverStateStore's
        # deadline) leaves at once: redis-py does not always stop a command when cancelled (seen on a
        # frozen server: one of five concurrent commands kept its caller until the socket timeout).
        command = asyncio.ensure_future(operation)
        try:
            return await asyncio.shield(command)
        except asyncio.CancelledError:
            command.cancel()  # it ends by itself, at the latest at the client's socket timeout
            command.add_done_callback(_forget)
            raise
        except (RedisError, OSError) as exc:
            raise StateUnavailableError(
                f"shared state (Redis) failed: {type(exc).__name__}: {exc}; check that it runs and "
                "that state.url points at it"
            ) from exc


def _forget(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned command's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
