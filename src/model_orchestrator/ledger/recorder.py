"""``LedgerRecorder``: the event sink that turns attempts and requests into ledger rows, off the call path.

``handle()`` only appends to a bounded in-memory queue (it never waits and never does I/O). A background
task writes the queue in batches: when ``batch_size`` events are waiting, or ``flush_interval`` seconds
after the oldest one arrived, whichever comes first, each batch in one transaction. ``flush()`` writes
everything now; ``aclose()`` flushes and stops the task. So a crash loses at most what arrived in the
last ``flush_interval`` (plus a batch being written); everything committed before stays.

When the queue is full (the database is down or far slower than the request rate), new events are
dropped and counted (``dropped``) with a warning, rather than blocking requests or growing without
bound. A failed write keeps its events queued and is retried at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from model_orchestrator.core.events import Event
from model_orchestrator.ledger.records import RECORDED, Batch, to_batch

_log = logging.getLogger(__name__)

Writer = Callable[[Batch], Awaitable[None]]
OnCommit = Callable[[Sequence[Event]], None]


class LedgerRecorder:
    """Queues recorded events and writes them in batches through ``writer`` (see the module docstring).

    ``on_commit`` is called with each batch's events after its transaction committed (monitoring,
    and how the crash test learns what is durable). ``on_start`` is awaited when the background writer
    starts, i.e. at the first event, so the database can be opened while that request is in flight.
    """

    def __init__(
        self,
        writer: Writer,
        *,
        flush_interval: float = 1.0,
        batch_size: int = 200,
        max_queue: int = 10_000,
        on_commit: OnCommit | None = None,
        on_start: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._writer = writer
        self._interval = flush_interval
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._on_commit = on_commit
        self._on_start = on_start
        self._queue: deque[Event] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._closing = False
        self.dropped = 0
        self.written = 0

    @property
    def pending(self) -> int:
        """Events waiting to be written."""
        return len(self._queue)

    def handle(self, event: Event) -> None:
        """Queue ``event`` if the ledger records its type; never blocks (see the module docstring)."""
        if not isinstance(event, RECORDED):
            return
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                _log.warning(
                    "ledger queue full (%d events): %d events dropped", self._max_queue, self.dropped
                )
            return
        self._queue.append(event)
        self._ensure_task()
        if self._wake is not None and len(self._queue) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Write every queued event now (raises if the database refuses them; they stay queued)."""
        while self._queue:
            await self._write_some()

    async def aclose(self) -> None:
        """Flush and stop the background writer (a failing final write is logged: events are lost).

        The writer is asked to stop, not cancelled: cancelling a transaction half-way could leave it
        unclear whether its rows were committed.
        """
        task, self._task = self._task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            self._closing = True
            if self._wake is not None:
                self._wake.set()
            with contextlib.suppress(Exception):
                await task
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - closing must finish; the loss is reported
            _log.exception("ledger: %d events could not be written on close and are lost", len(self._queue))
            self._queue.clear()
        self._wake = self._lock = None
        self._closing = False

    def _ensure_task(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the next flush() or event in a loop writes the queue
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task = loop.create_task(self._run(), name="ledger-writer")

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        if self._on_start is not None:
            try:
                await self._on_start()
            except Exception:  # noqa: BLE001 - the first write reports (and retries) the failure
                _log.debug("ledger writer: preparing failed", exc_info=True)
        while not self._closing:
            if len(self._queue) < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self._interval)
            wake.clear()
            try:
                while self._queue:
                    await self._write_some()
            except Exception:  # noqa: BLE001 - the writer must survive a database hiccup
                _log.exception("ledger write failed; %d events stay queued for a retry", len(self._queue))
                if not self._closing:
                    await asyncio.sleep(self._interval)

    async def _write_some(self) -> None:
        """Write up to ``batch_size`` queued events in one transaction (one writer at a time)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            events = [self._queue[i] for i in range(min(self._batch_size, len(self._queue)))]
            if not events:
                return
            await self._writer(to_batch(events))
            for _ in events:
                self._queue.popleft()
            self.written += len(events)
        if self._on_commit is not None:
            self._on_commit(events)
