"""``Ledger``: one ledger database, opened on first use; the recorder, the budget keeper and reports.

Constructing it does no I/O and imports no SQL library, so a façade that never records or reports pays
nothing. It implements ``core.budget.BudgetKeeper`` on top of ``budgets.BudgetBook`` and adds what
the SQL alone cannot: reservations survive cancellation (reserve, settle and release run shielded, and a
reservation made after its caller was cancelled is released), warnings fire once per limit and period
in a process, and database failures become ``LedgerError`` (logged without the URL's password).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from model_orchestrator.core.budget import BudgetLimit, BudgetStatus, BudgetWarnings, Reservation
from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import OrchestratorError
from model_orchestrator.ledger.limits import BudgetRules
from model_orchestrator.ledger.recorder import LedgerRecorder, SinkFactory
from model_orchestrator.ledger.settings import LedgerSettings
from model_orchestrator.ledger.writer import OnCommit

if TYPE_CHECKING:
    from collections.abc import Callable

    from model_orchestrator.ledger.budgets import BudgetBook
    from model_orchestrator.ledger.feedback import FeedbackReceipt, LabelledRequest
    from model_orchestrator.ledger.query import CostQuery, CostReport, CostStats
    from model_orchestrator.ledger.records import Batch
    from model_orchestrator.ledger.store import LedgerStore

_log = logging.getLogger(__name__)
T = TypeVar("T")
_PRUNE_EVERY = 3600.0  # seconds between deletions of stored prompts nobody labelled


class LedgerError(OrchestratorError):
    """The ledger database could not be reached or written (budgets cannot be checked meanwhile)."""

    default_status = 503
    default_retryable = True


class Ledger:
    """The ledger at ``settings.url`` (see the module docstring); close it with ``aclose()``."""

    def __init__(
        self,
        settings: LedgerSettings,
        *,
        rules: BudgetRules | None = None,
        clock: Clock | None = None,
        on_commit: OnCommit | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules or BudgetRules()
        self._clock = clock or SystemClock()
        self._on_commit = on_commit
        self.recorder = LedgerRecorder(
            self._open_sink,
            flush_interval=settings.flush_interval,
            batch_size=settings.rows_per_batch,
            max_queue=settings.max_queue,
            on_commit=self._committed,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: LedgerStore | None = None
        self._book: BudgetBook | None = None
        self._opening: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._warnings = BudgetWarnings()
        self._background: set[asyncio.Task[Any]] = set()
        self._pruned_at: float | None = None

    async def store(self) -> LedgerStore:
        """The open database (opened and migrated on first call)."""
        if self._store is None:
            async with self._open_lock():
                if self._store is None:
                    self._store = await self._guarded(self._open(), "open")
        return self._store

    async def flush(self) -> None:
        """Write every recorded event now (``LedgerError`` if the database refuses them; they stay queued)."""
        try:
            await self.recorder.flush()
        except LedgerError:
            raise
        except Exception as exc:  # whatever the driver raised on the writer thread
            where = self.settings.display_url
            raise LedgerError(
                f"ledger write failed at {where}: {type(exc).__name__}: {_first_line(exc)}"
            ) from exc

    async def aclose(self) -> None:
        """Flush the recorder, wait for settlements in flight, close the connections (reopens on use)."""
        await self.recorder.aclose()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        store, self._store, self._book = self._store, None, None
        if store is not None:
            await store.aclose()

    # --- BudgetKeeper ------------------------------------------------------------------------------

    async def reserve(self, limits: Sequence[BudgetLimit], *, usd: float, calls: int) -> Reservation:
        claims = [(limit, usd if limit.unit == "usd" else float(calls)) for limit in limits]
        claims = [(limit, amount) for limit, amount in claims if amount > 0]
        reservation_id = uuid.uuid4().hex
        if not claims:
            return Reservation(reservation_id, (), (), usd, calls)
        task = self._spawn(self._reserve(reservation_id, claims))
        try:
            keys, statuses = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda done: self._release_if_made(done, reservation_id))
            raise
        limits_held = tuple(limit for limit, _ in claims)
        return Reservation(reservation_id, limits_held, keys, usd, calls, self._warnings.first(statuses))

    async def settle(self, reservation: Reservation, *, usd: float, calls: int) -> None:
        if reservation.limits:
            await self._quietly(self._settle(reservation, usd, calls), "settle")

    async def release(self, reservation: Reservation) -> None:
        if reservation.limits:
            await self._quietly(self._release(reservation.id), "release")

    async def reserved_total(self) -> float:
        """USD plus calls held by live reservations (0 when nothing is in flight)."""
        return await (await self._budget_book()).reserved_total(now=self._clock.wall())

    async def budget_usage(self, limits: Sequence[BudgetLimit] | None = None) -> list[BudgetStatus]:
        """Where each limit (default: every configured one) stands in its current period."""
        chosen = self.rules.configured() if limits is None else list(limits)
        if not chosen:
            return []
        book = await self._budget_book()
        return await book.usage(chosen, now=self._clock.wall())

    # --- reports -----------------------------------------------------------------------------------

    async def report(self, query: CostQuery) -> CostReport:
        """Spend grouped by period and one dimension (``query.by``)."""
        from model_orchestrator.ledger.reports import cost_report

        await self.flush()
        return await cost_report(await self.store(), query)

    async def stats(self, query: CostQuery) -> CostStats:
        """Totals, rates, latency, top models, budget and quota status, ledger health."""
        from model_orchestrator.ledger.reports import cost_stats

        await self.flush()
        usage = await self.budget_usage()
        return await cost_stats(await self.store(), query, usage, self._info())

    async def export(self, query: CostQuery, path: Path | None, fmt: str) -> int:
        """Every attempt matching ``query`` to ``path`` (None: stdout) as CSV or JSON; the row count."""
        from model_orchestrator.ledger.export import export_attempts

        await self.flush()
        return await export_attempts(await self.store(), query, path, fmt)

    # --- outcome labels ------------------------------------------------------------------------------

    async def feedback(
        self,
        request_id: str,
        score: float,
        *,
        caller_key_id: str | None = None,
        tier_of: Callable[[str], int | None] = lambda _model: None,
    ) -> FeedbackReceipt:
        """Label the answer to ``request_id`` (see ``feedback.record_feedback``); events recorded so far
        are written first, so a request answered a moment ago in this process is known."""
        from model_orchestrator.ledger.feedback import checked_request_id, checked_score, record_feedback

        checked_score(score)
        checked_request_id(request_id)
        await self.flush()
        store = await self.store()
        work = record_feedback(
            store,
            request_id=request_id,
            score=score,
            caller_key_id=caller_key_id,
            tier_of=tier_of,
            now=self._clock.wall(),
        )
        return await self._guarded(work, "feedback")

    async def labelled_requests(self) -> list[LabelledRequest]:
        """Every labelled request with its labels and stored prompt (after forgetting expired prompts)."""
        from model_orchestrator.ledger.feedback import labelled_requests

        await self.flush()
        await self._prune_prompts()
        return await self._guarded(labelled_requests(await self.store()), "read labels")

    async def _prune_prompts(self) -> None:
        from model_orchestrator.ledger.feedback import prune_prompts

        now = self._clock.wall()
        self._pruned_at = now
        before = now - self.settings.prompt_retention_days * 86400.0
        await self._guarded(prune_prompts(await self.store(), before=before), "prune prompts")

    # --- internals -----------------------------------------------------------------------------------

    def _info(self) -> dict[str, object]:
        return {
            "url": self.settings.display_url,
            "dialect": self.settings.dialect,
            "queued": self.recorder.pending,
            "written": self.recorder.written,
            "dropped": self.recorder.dropped,
            **({"write_error": self.recorder.failure} if self.recorder.failure else {}),
        }

    async def _open(self) -> LedgerStore:
        # The SQL libraries take a few hundred ms to import; in a thread, that overlaps with the request
        # in flight (the recorder opens the store as soon as a request starts) instead of adding to it.
        store = await asyncio.to_thread(_connect, self.settings.url)
        await store.migrate(now=self._clock.wall())
        _log.info("ledger open at %s", self.settings.display_url)
        return store

    async def _open_sink(self) -> SinkFactory:
        """Open the database (for the recorder's first event); how the writer thread connects to it."""
        await self.store()
        self._loop = asyncio.get_running_loop()
        from model_orchestrator.ledger.writer_sql import sink_for

        url = self.settings.url
        return lambda: sink_for(url)

    def _committed(self, batch: Batch) -> None:
        """On the writer thread, after each committed batch: the caller's hook, and expired prompts
        deleted on the loop once an hour while prompts are being stored."""
        if self._on_commit is not None:
            self._on_commit(batch)
        if batch.prompts and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the next process prunes
                self._loop.call_soon_threadsafe(self._prune_if_due)

    def _prune_if_due(self) -> None:
        now = self._clock.wall()
        if self._pruned_at is None or now - self._pruned_at > _PRUNE_EVERY:
            self._pruned_at = now
            self._spawn(self._prune_quietly())

    async def _prune_quietly(self) -> None:
        try:
            await self._prune_prompts()
        except LedgerError as exc:
            _log.error("ledger: deleting expired prompts failed (retried in an hour): %s", exc)

    async def _budget_book(self) -> BudgetBook:
        if self._book is None:
            from model_orchestrator.ledger.budgets import BudgetBook

            self._book = BudgetBook(await self.store(), ttl=self.settings.reservation_ttl)
        return self._book

    async def _reserve(
        self, reservation_id: str, claims: list[tuple[BudgetLimit, float]]
    ) -> tuple[tuple[str, ...], tuple[BudgetStatus, ...]]:
        book = await self._budget_book()
        return await self._guarded(book.reserve(reservation_id, claims, now=self._clock.wall()), "reserve")

    async def _settle(self, reservation: Reservation, usd: float, calls: int) -> None:
        book = await self._budget_book()
        await self._guarded(book.settle(reservation, usd=usd, calls=calls, now=self._clock.wall()), "settle")

    async def _release(self, reservation_id: str) -> None:
        book = await self._budget_book()
        await self._guarded(book.release(reservation_id, now=self._clock.wall()), "release")

    def _release_if_made(self, done: asyncio.Task[Any], reservation_id: str) -> None:
        if not done.cancelled() and done.exception() is None:
            self._spawn(self._quietly(self._release(reservation_id), "release"))

    async def _quietly(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``work`` to the end even if the caller is cancelled; log (never raise) a failure, since
        the call it accounts for already happened (an unsettled reservation expires after the TTL)."""
        task = self._spawn(work)
        try:
            await asyncio.shield(task)
        except LedgerError as exc:
            _log.error("ledger %s failed: %s", what, exc)

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(_forget)
        task.add_done_callback(self._background.discard)
        return task

    def _open_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._opening is None or self._opening[0] is not loop:
            self._opening = (loop, asyncio.Lock())
        return self._opening[1]

    async def _guarded(self, work: Coroutine[Any, Any, T], what: str) -> T:
        """``work``'s result, with database failures translated into ``LedgerError``."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return await work
        except (SQLAlchemyError, OSError) as exc:
            where = self.settings.display_url
            raise LedgerError(
                f"ledger {what} failed at {where}: {type(exc).__name__}: {_first_line(exc)}"
            ) from exc


def _connect(url: str) -> LedgerStore:
    from model_orchestrator.ledger.store import LedgerStore

    return LedgerStore.connect(url)


def _forget(task: asyncio.Task[Any]) -> None:
    """Mark a background task's outcome as seen: its caller may have been cancelled, and the failure
    was already logged or raised where it mattered."""
    if not task.cancelled():
        task.exception()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
