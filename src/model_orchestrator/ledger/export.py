"""Exporting attempts as CSV or JSON, and reading a CSV export back.

One row per attempt, joined with its request (strategy, category, tags, API key id). Made to open in a
spreadsheet: a header row, ISO 8601 UTC times, plain decimal numbers (never ``1e-05``), an empty cell
for an unknown cost. Rows are streamed from the database, so a large ledger does not fill memory.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from model_orchestrator.ledger.query import CostQuery, Totals, iso_time
from model_orchestrator.ledger.reports import filters
from model_orchestrator.ledger.store import LedgerStore
from model_orchestrator.ledger.tables import attempts, requests

FORMATS = ("csv", "json")
COLUMNS = (
    "time",
    "request_id",
    "attempt_id",
    "requested",
    "strategy",
    "category",
    "tags",
    "api_key_id",
    "model",
    "provider",
    "deployment",
    "status",
    "error_type",
    "status_code",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
    "usage_estimated",
    "cost",
    "latency",
)
_PARTITION = 1000


async def export_attempts(store: LedgerStore, query: CostQuery, path: Path | None, fmt: str) -> int:
    """Write every attempt matching ``query`` to ``path`` (None: stdout); returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    statement = (
        sa.select(
            attempts,
            requests.c.requested,
            requests.c.strategy,
            requests.c.category,
            requests.c.tags,
            requests.c.api_key_id,
        )
        .select_from(attempts.outerjoin(requests, attempts.c.request_id == requests.c.request_id))
        .where(*filters(query))
        .order_by(attempts.c.finished_at, attempts.c.attempt_id)
    )
    count = 0
    with _open(path) as out:
        writer = _CsvOut(out) if fmt == "csv" else _JsonOut(out)
        async with store.engine.connect() as conn:
            result = await conn.stream(statement)
            async for partition in result.partitions(_PARTITION):
                for row in partition:
                    writer.write(_record(row._mapping))
                    count += 1
        writer.close()
    return count


def read_csv_totals(path: Path) -> Totals:
    """The totals of a CSV export (what a spreadsheet would sum), to check a round trip."""
    totals = Totals()
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            cost = row["cost"]
            totals = totals + Totals(
                attempts=1,
                failed=int(row["status"] == "failed"),
                cancelled=int(row["status"] == "cancelled"),
                input_tokens=int(row["input_tokens"]),
                output_tokens=int(row["output_tokens"]),
                cached_input_tokens=int(row["cached_input_tokens"]),
                reasoning_tokens=int(row["reasoning_tokens"]),
                cache_write_tokens=int(row["cache_write_tokens"]),
                estimated=int(row["usage_estimated"] == "true"),
                unpriced=int(cost == ""),
                cost=float(cost) if cost else 0.0,
            )
    return totals


def _record(row: Any) -> dict[str, object]:
    record = {name: row[name] for name in COLUMNS if name != "time"}
    record["time"] = iso_time(row["finished_at"])
    record["usage_estimated"] = bool(record["usage_estimated"])
    return record


def plain_number(value: float) -> str:
    """A float as a plain decimal string, exactly as repr rounds it: ``1.5e-05`` -> ``0.000015``."""
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return plain_number(value)
    return str(value)


class _CsvOut:
    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out)
        self._writer.writerow(COLUMNS)

    def write(self, record: dict[str, object]) -> None:
        self._writer.writerow([_cell(record[name]) for name in COLUMNS])

    def close(self) -> None:
        """Nothing to finish: every row is complete."""


class _JsonOut:
    """A JSON array written one object at a time."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._first = True
        out.write("[")

    def write(self, record: dict[str, object]) -> None:
        self._out.write("\n  " if self._first else ",\n  ")
        self._out.write(json.dumps({name: record[name] for name in COLUMNS}))
        self._first = False

    def close(self) -> None:
        self._out.write("\n]\n" if not self._first else "]\n")


@contextlib.contextmanager
def _open(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        yield handle
