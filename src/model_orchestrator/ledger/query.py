"""What a cost report asks (``CostQuery``) and what it answers (``CostReport``, ``CostStats``).

Plain values, no SQL: the façade, the CLI and (later) the gateway build queries and print answers with
these. Times are UTC; ``--since``/``--until`` accept ISO dates or datetimes (a date as ``until`` means
through the end of that day).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from model_orchestrator.core.errors import ConfigError

Period = Literal["daily", "weekly", "monthly"]
Dimension = Literal["model", "provider", "deployment", "strategy", "category", "key"]
PERIODS: tuple[Period, ...] = ("daily", "weekly", "monthly")
DIMENSIONS: tuple[Dimension, ...] = ("model", "provider", "deployment", "strategy", "category", "key")


@dataclass(frozen=True, slots=True)
class CostQuery:
    """Which attempts to count and how to group them. ``since``/``until`` are epoch seconds (UTC)."""

    period: Period = "daily"
    by: Dimension = "model"
    category: str | None = None
    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {self.period!r}")
        if self.by not in DIMENSIONS:
            raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}, not {self.by!r}")

    def window_of(self, period: Period | None, now: float) -> CostQuery:
        """This query limited to the current UTC day, ISO week or month (``None``: unchanged)."""
        if period is None:
            return self
        today = dt.datetime.fromtimestamp(now, dt.UTC).date()
        start = {
            "daily": today,
            "weekly": today - dt.timedelta(days=today.weekday()),
            "monthly": today.replace(day=1),
        }[period]
        return replace(self, since=_epoch(start), period=period)


@dataclass(frozen=True, slots=True)
class Totals:
    """Counts and sums over some attempts. ``cost`` sums the priced ones; ``unpriced`` counts the rest."""

    attempts: int = 0
    failed: int = 0
    cancelled: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: int = 0
    unpriced: int = 0
    cost: float = 0.0

    def __add__(self, other: Totals) -> Totals:
        return Totals(**{k: v + getattr(other, k) for k, v in asdict(self).items()})

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, with ``unpriced_attempts`` and ``estimated_usage_attempts`` spelled out."""
        data: dict[str, object] = asdict(self)
        data["unpriced_attempts"] = data.pop("unpriced")
        data["estimated_usage_attempts"] = data.pop("estimated")
        data["cost"] = round(self.cost, 10)
        return data


@dataclass(frozen=True, slots=True)
class ReportRow:
    """Spend of one group (a model, provider, ...) in one period."""

    period: str
    group: str
    totals: Totals


@dataclass(frozen=True, slots=True)
class CostReport:
    """Rows by period then cost (highest first), and the total."""

    query: CostQuery
    rows: tuple[ReportRow, ...]
    total: Totals

    def to_dict(self) -> dict[str, object]:
        """The ``--json`` shape: the query, one object per row (the group under its dimension's name)."""
        return {
            "period": self.query.period,
            "by": self.query.by,
            "category": self.query.category,
            "since": iso_time(self.query.since),
            "until": iso_time(self.query.until),
            "rows": [{"period": r.period, self.query.by: r.group, **r.totals.to_dict()} for r in self.rows],
            "total": self.total.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class LimitUse:
    """A budget or quota in its current period."""

    name: str
    unit: str
    period: str
    period_key: str
    used: float
    reserved: float
    limit: float
    hard: bool


@dataclass(frozen=True, slots=True)
class RequestOutcomes:
    """How the requests started in a window ended; the four counts add up to ``total``.

    ``failed`` includes requests refused before any call (a budget, no usable model), which have no
    attempt rows; ``cancelled`` is a caller giving up (an abandoned stream, a dropped connection);
    ``unfinished`` has no end recorded: still running, or its process died first.
    """

    ok: int = 0
    failed: int = 0
    cancelled: int = 0
    unfinished: int = 0

    @property
    def total(self) -> int:
        """Every request started in the window."""
        return self.ok + self.failed + self.cancelled + self.unfinished


@dataclass(frozen=True, slots=True)
class CostStats:
    """The ``costs stats`` answer. Attempt figures (``totals``) count attempts that finished in the
    window; request figures (``requests``) count requests that started in it, from the request rows."""

    query: CostQuery
    totals: Totals
    requests: RequestOutcomes
    latency_avg: float | None
    latency_p95: float | None
    top_models: tuple[tuple[str, float], ...]
    limits: tuple[LimitUse, ...] = ()
    ledger: dict[str, object] = field(default_factory=dict)

    @property
    def cost_per_request(self) -> float | None:
        """Average priced spend per request started in the window (None with no requests)."""
        total = self.requests.total
        return self.totals.cost / total if total else None

    def to_dict(self) -> dict[str, object]:
        """The ``--json`` shape: ``requests`` = ok + failed + cancelled + unfinished."""
        return {
            "since": iso_time(self.query.since),
            "until": iso_time(self.query.until),
            "category": self.query.category,
            **self.totals.to_dict(),
            "requests": self.requests.total,
            "requests_ok": self.requests.ok,
            "requests_failed": self.requests.failed,
            "requests_cancelled": self.requests.cancelled,
            "requests_unfinished": self.requests.unfinished,
            "cost_per_request": self.cost_per_request,
            "latency_avg": self.latency_avg,
            "latency_p95": self.latency_p95,
            "top_models": [{"model": m, "cost": round(c, 10)} for m, c in self.top_models],
            "limits": [asdict(limit) for limit in self.limits],
            "ledger": self.ledger,
        }


def parse_time(text: str, *, end: bool = False) -> float:
    """Epoch seconds of an ISO date or datetime (naive = UTC); a date with ``end`` = the next midnight."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return _epoch(day + dt.timedelta(days=1) if end else day)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date (2026-11-22) or datetime (2026-11-22T13:05)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def iso_time(timestamp: float | None) -> str | None:
    """ISO 8601 in UTC with milliseconds, e.g. ``2026-11-22T13:05:00.123+00:00``."""
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


def period_label(day: str, period: Period) -> str:
    """The label of the period a UTC day (``YYYY-MM-DD``) falls in: the day, ``YYYY-Www`` or ``YYYY-MM``."""
    if period == "daily":
        return day
    if period == "monthly":
        return day[:7]
    year, week, _ = dt.date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def _epoch(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def cost_query(
    period: str | None = "daily",
    by: str = "model",
    category: str | None = None,
    since: str | float | None = None,
    until: str | float | None = None,
) -> CostQuery:
    """A ``CostQuery`` from user input (ISO strings or epoch seconds); ``ConfigError`` when invalid."""
    try:
        return CostQuery(
            period=period or "daily",  # type: ignore[arg-type]
            by=by,  # type: ignore[arg-type]
            category=category,
            since=parse_time(since) if isinstance(since, str) else since,
            until=parse_time(until, end=True) if isinstance(until, str) else until,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
