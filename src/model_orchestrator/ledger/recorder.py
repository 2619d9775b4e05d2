"""``LedgerRecorder``: the event sink that turns attempts and requests into ledger rows, off the call path.

``handle()`` turns an event into a plain tuple (``records``) and appends it to a queue: no I/O, no lock,
no dict or dataclass per row, and no wake-up of anything unless a batch is full. The ledger's writer
thread (``writer.LedgerWriter``) writes the queue every ``flush_interval`` seconds, or at once when
``batch_size`` rows are waiting, ``batch_size`` rows per transaction. ``flush()`` writes everything now;
``aclose()`` writes everything and stops the thread.

The promise: a crash loses at most the last ``flush_interval`` of rows (plus a batch being written); the
start of a request still running when the process dies is written within two intervals, so it shows as
unfinished. Everything committed before stays (SQLite's WAL, PostgreSQL's commit).

When the queue is full (the database is down or far slower than the request rate), new events are
dropped and counted (``dropped``) with a warning, rather than blocking requests or growing without
bound. A failed write keeps its rows, is logged once and retried at the next interval; a database that
cannot be opened is logged once and tried again with later events (at most once an interval), and
``flush()`` and ``aclose()`` make one attempt of their own rather than wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from model_orchestrator.core.events import (
    AnswerJudged,
    AttemptFailed,
    AttemptSucceeded,
    Event,
    RequestFinished,
    RequestStarted,
)
from model_orchestrator.ledger.records import (
    Row,
    attempt_row,
    label_row,
    prompt_row,
    request_finish,
    request_start,
)
from model_orchestrator.ledger.writer import BatchSink, LedgerWriter, OnCommit, RowQueue

_log = logging.getLogger(__name__)

SinkFactory = Callable[[], BatchSink]
OpenSink = Callable[[], Awaitable[SinkFactory]]


class LedgerRecorder:
    """Queues recorded events as rows for the writer thread (see the module docstring).

    ``open_sink`` is awaited on the event loop at the first event (so the database is opened while that
    request is in flight); it returns the function the writer thread calls to connect. ``on_commit`` is
    called on the writer thread with each batch after its transaction committed (monitoring, and how
    the crash test learns what is durable).
    """

    def __init__(
        self,
        open_sink: OpenSink,
        *,
        flush_interval: float = 1.0,
        batch_size: int = 200,
        max_queue: int = 10_000,
        on_commit: OnCommit | None = None,
    ) -> None:
        self._open_sink = open_sink
        self._interval = flush_interval
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._on_commit = on_commit
        self._queue = RowQueue()
        self._writer: LedgerWriter | None = None
        self._starting: asyncio.Task[None] | None = None
        self._failed_at: float | None = None  # loop time of the last failed open
        self._open_failing = False
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            AttemptSucceeded: self._attempt,
            AttemptFailed: self._attempt,
            RequestStarted: self._request_started,
            RequestFinished: self._request_finished,
            AnswerJudged: self._answer_judged,
        }
        self.dropped = 0
        self._written_before = 0  # by writers closed since

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        return len(self._queue) + (self._writer.held if self._writer is not None else 0)

    @property
    def written(self) -> int:
        """Rows this recorder committed."""
        return self._written_before + (self._writer.written if self._writer is not None else 0)

    @property
    def failure(self) -> str | None:
        """The last write error while writes fail (None when they work)."""
        return self._writer.failure if self._writer is not None else None

    def handle(self, event: Event) -> None:
        """Queue ``event``'s row if the ledger records its type; never blocks (see the module docstring)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        handler(event)
        if self._writer is None:
            self._start_soon()

    def _attempt(self, event: AttemptSucceeded | AttemptFailed) -> None:
        rows = self._queue.attempts
        rows.append(attempt_row(event))
        if len(rows) >= self._batch_size:
            self._backlog(rows)

    def _request_started(self, event: RequestStarted) -> None:
        rows = self._queue.starts
        rows.append(request_start(event))
        if len(rows) >= self._batch_size:
            self._backlog(rows)
        if event.prompt is not None and event.request_id:
            self._queue.prompts.append(prompt_row(event))
            if len(self._queue.prompts) >= self._batch_size:
                self._backlog(self._queue.prompts)

    def _request_finished(self, event: RequestFinished) -> None:
        rows = self._queue.finishes
        rows.append(request_finish(event))
        if len(rows) >= self._batch_size:
            self._backlog(rows)

    def _answer_judged(self, event: AnswerJudged) -> None:
        if event.request_id:
            rows = self._queue.labels
            rows.append(label_row(event))
            if len(rows) >= self._batch_size:
                self._backlog(rows)

    def _backlog(self, rows: deque[Row]) -> None:
        """A kind of row filled a batch: wake the writer, or past ``max_queue`` rows waiting (the
        database is down or slow), drop the row just queued. Checked here, not per event: most events
        find their queue short."""
        if self.pending > self._max_queue:
            rows.pop()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                _log.warning("ledger queue full (%d rows): %d events dropped", self._max_queue, self.dropped)
            return
        writer, wake = self._writer, self._queue.wake
        # While failing, retries wait for the interval. Set once: every row queued while the writer is
        # busy lands here, and the writer looks at the whole queue after clearing the flag.
        if writer is not None and writer.failure is None and not wake.is_set():
            wake.set()

    async def flush(self) -> None:
        """Write every queued row now (raises if the database refuses them; they stay queued)."""
        if self._writer is None and not self._queue:
            return
        writer = await self._started()
        await writer.flush()

    async def aclose(self) -> None:
        """Write everything and stop the writer thread (rows that cannot be written are logged as lost).

        The thread is asked to stop, not abandoned: a transaction cut half-way could leave it unclear
        whether its rows were committed. A later event starts a new writer.
        """
        writer = self._writer
        if writer is None and self._queue:
            try:
                writer = await self._started()
            except Exception as exc:  # noqa: BLE001 - closing must finish; the loss is reported
                _log.error(
                    "ledger: %d rows could not be written on close and are lost: %s", len(self._queue), exc
                )
        elif writer is None and self._starting is not None:
            self._starting.cancel()
        self._writer = self._starting = None
        if writer is not None:
            await writer.aclose()
            self._written_before += writer.written

    def _start_soon(self) -> None:
        """Open the database in the background for the first event (again, at most once an interval,
        while opening fails)."""
        if self._starting is not None and not self._starting.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the next flush() or event in a loop starts it
        if self._failed_at is not None and loop.time() - self._failed_at < self._interval:
            return
        self._starting = loop.create_task(self._start_quietly(), name="ledger-writer-start")

    async def _start_quietly(self) -> None:
        try:
            await self._start()
        except Exception as exc:  # noqa: BLE001 - the rows stay queued; flush() and aclose() report it
            self._failed_at = asyncio.get_running_loop().time()
            if not self._open_failing:
                self._open_failing = True
                _log.error("ledger: opening the database failed; retried with later events: %s", exc)

    async def _started(self) -> LedgerWriter:
        """The writer, started now if need be (raises when the database cannot be opened)."""
        starting = self._starting
        if starting is not None and not starting.done() and starting.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(starting)  # one attempt in progress: its outcome will do
        if self._writer is None:
            await self._start()
        assert self._writer is not None
        return self._writer

    async def _start(self) -> None:
        """Open the database, then the writer thread."""
        factory = await self._open_sink()
        self._failed_at, self._open_failing = None, False
        if self._writer is None:
            self._writer = LedgerWriter(
                self._queue,
                factory,
                flush_interval=self._interval,
                batch_size=self._batch_size,
                on_commit=self._on_commit,
            )
