"""``LedgerWriter``: the one long-lived thread that writes the ledger's rows, off the event loop.

The loop side (``recorder``) only appends plain tuples to a ``RowQueue`` (``deque.append`` is safe across
threads) and sets ``wake`` when a batch is full. This thread wakes every ``flush_interval`` seconds, or
at once for a full batch, a ``flush()`` or closing, and writes everything queued, ``batch_size`` rows
per transaction, one statement per table (``BatchSink``). So a row waits at most one interval plus the
write before it is committed: a crash (SIGKILL included) loses at most that window.

Requests: a start waits here for its finish, and the two are written as one row. A start still open at
the next tick (a request running longer than the interval) is written alone, and its finish later
completes the row (the sink's upsert never lets a NULL erase a known value), so a crash leaves it counted
as unfinished, as before; ``flush()`` and closing write every open start the same way.

Failures never reach a request: a failed write keeps its rows, is logged once (and once more when writes
recover), retried at the next tick, and raised to whoever awaits ``flush()``. While writes fail, the
queue is bounded by the recorder (``max_queue``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from model_orchestrator.ledger.records import Batch, Row, request_row

_log = logging.getLogger("model_orchestrator.ledger.recorder")


class BatchSink(Protocol):
    """Writes batches to one database from the writer thread (``writer_sql``: SQLite and PostgreSQL)."""

    def write(self, batch: Batch) -> None:
        """Commit ``batch`` in one transaction, or raise with nothing committed. Idempotent by row key."""
        ...

    def close(self) -> None:
        """Close the connection (on the writer thread)."""
        ...


OnCommit = Callable[[Batch], None]


class RowQueue:
    """The hand-off from the event loop to the writer thread: one deque per kind of row."""

    __slots__ = ("attempts", "finishes", "labels", "prompts", "starts", "wake")

    def __init__(self) -> None:
        self.attempts: deque[Row] = deque()
        self.starts: deque[Row] = deque()
        self.finishes: deque[Row] = deque()
        self.labels: deque[Row] = deque()
        self.prompts: deque[Row] = deque()
        self.wake = threading.Event()

    def __len__(self) -> int:
        return (
            len(self.attempts) + len(self.starts) + len(self.finishes) + len(self.labels) + len(self.prompts)
        )


class LedgerWriter:
    """The writer thread over ``queue`` (see the module docstring); ``sink_factory`` runs on it."""

    def __init__(
        self,
        queue: RowQueue,
        sink_factory: Callable[[], BatchSink],
        *,
        flush_interval: float,
        batch_size: int,
        on_commit: OnCommit | None = None,
    ) -> None:
        self._queue = queue
        self._factory = sink_factory
        self._interval = flush_interval
        self._batch_size = batch_size
        self._on_commit = on_commit
        self._held = Batch()  # taken from the queue, not yet committed
        self._open: dict[str, tuple[Row, int]] = {}  # request id -> (start, tick it arrived at)
        self._tick = 0
        self._starts_left = False  # due starts that did not fit in the last batch
        self._waiters: list[concurrent.futures.Future[None]] = []
        self._waiters_lock = threading.Lock()
        self._closing = False
        self._stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.written = 0
        self.failure: str | None = None  # the last write error, while writes fail
        self._thread = threading.Thread(target=self._main, name="ledger-writer", daemon=True)
        self._thread.start()

    @property
    def held(self) -> int:
        """Rows taken from the queue but not committed yet (a failed write's, or one in progress)."""
        return len(self._held) + len(self._open)

    async def flush(self) -> None:
        """Everything queued before this call, committed (raises the write's error if it failed)."""
        waiter: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._waiters_lock:
            if self._stopped.done():
                raise RuntimeError("the ledger writer is closed")
            self._waiters.append(waiter)
        self._queue.wake.set()
        await asyncio.wrap_future(waiter)

    async def aclose(self) -> None:
        """Write everything, then stop the thread (a final write that fails is logged: rows are lost)."""
        self._closing = True
        self._queue.wake.set()
        await asyncio.wrap_future(self._stopped)

    # --- on the writer thread ----------------------------------------------------------------------

    def _main(self) -> None:
        sink: list[BatchSink] = []  # made on this thread at the first write
        next_tick = time.monotonic() + self._interval
        wake = self._queue.wake
        try:
            while True:
                wake.wait(max(0.0, next_tick - time.monotonic()))
                wake.clear()
                closing = self._closing
                with self._waiters_lock:
                    waiters, self._waiters = self._waiters, []
                ticked = time.monotonic() >= next_tick
                if ticked:
                    self._tick += 1
                    next_tick = time.monotonic() + self._interval
                full = len(self._queue) >= self._batch_size and self.failure is None
                if ticked or full or waiters or closing:
                    self._round(sink, waiters, closing)
                if closing:
                    return
        finally:
            if sink:
                _close_quietly(sink[0])
            with self._waiters_lock:
                for waiter in self._waiters:
                    waiter.set_exception(RuntimeError("the ledger writer stopped"))
                self._waiters = []
                self._stopped.set_result(None)

    def _round(
        self, sink: list[BatchSink], waiters: list[concurrent.futures.Future[None]], closing: bool
    ) -> None:
        """One round of writes; its outcome goes to the ``flush()`` calls waiting for it."""
        error: Exception | None = None
        try:
            if not sink:
                sink.append(self._factory())
            self._write_all(sink[0], everything=closing or bool(waiters))
        except Exception as exc:  # noqa: BLE001 - reported here and to flush(), never to a request
            self._failed(exc, closing)
            error = exc
        for waiter in waiters:
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _write_all(self, sink: BatchSink, *, everything: bool) -> None:
        """Commit held rows and what is queued now, ``batch_size`` rows per transaction; rows queued
        meanwhile are written too only while they fill whole batches (small ones wait for the tick)."""
        due = len(self._queue)
        while True:
            due -= self._take(everything=everything)
            if not self._held:
                return
            sink.write(self._held)
            batch, self._held = self._held, Batch()
            self.written += len(batch)
            if self.failure is not None:
                _log.warning("ledger writes work again; %d rows written", len(batch))
                self.failure = None
            if self._on_commit is not None:
                self._on_commit(batch)
            if due <= 0 and len(self._queue) < self._batch_size and not self._starts_left:
                return

    def _take(self, *, everything: bool) -> int:
        """Move up to ``batch_size`` rows (less those held) from the queue into ``_held``; how many
        queued items were taken (open starts included)."""
        held, queue, room = self._held, self._queue, self._batch_size - len(self._held)
        # Every finish counted here was queued after its start, so its start is taken below first.
        finishes = len(queue.finishes)
        taken = len(queue.starts)
        while queue.starts:
            start = queue.starts.popleft()
            self._open[start[0]] = (start, self._tick)
        room_before = room
        for source, target in (
            (queue.attempts, held.attempts),
            (queue.labels, held.labels),
            (queue.prompts, held.prompts),
        ):
            while room > 0 and source:
                target.append(source.popleft())
                room -= 1
        while room > 0 and finishes:
            finish = queue.finishes.popleft()
            finishes -= 1
            opened = self._open.pop(finish[0], None)
            held.requests.append(request_row(opened[0] if opened else None, finish))
            room -= 1
        taken += room_before - room
        # Starts open since an earlier tick (or all of them, for flush and close) are written alone.
        self._starts_left = False
        for request_id, (start, tick) in list(self._open.items()):
            if everything or tick < self._tick:
                if room <= 0:
                    self._starts_left = True
                    break
                del self._open[request_id]
                held.requests.append(request_row(start, None))
                room -= 1
        return taken

    def _failed(self, exc: Exception, closing: bool) -> None:
        waiting = len(self._held) + len(self._queue) + len(self._open)
        if closing:
            _log.error(
                "ledger: %d rows could not be written on close and are lost: %s", waiting, _describe(exc)
            )
        elif self.failure is None:
            _log.error(
                "ledger write failed; %d rows kept, retried every %g s: %s",
                waiting,
                self._interval,
                _describe(exc),
            )
        else:
            _log.debug("ledger write failed again", exc_info=True)
        self.failure = _describe(exc)


def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def _close_quietly(sink: BatchSink) -> None:
    try:
        sink.close()
    except Exception:  # noqa: BLE001 - closing must finish
        _log.debug("ledger writer: closing the connection failed", exc_info=True)
