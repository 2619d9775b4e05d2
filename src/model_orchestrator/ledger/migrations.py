"""Schema versions: append-only, named migration steps, applied in order when a ledger is opened.

``schema_migrations`` holds one row per applied step (version, name, time). Opening a database written
by an older release applies the missing steps in one transaction (serialised across processes: an
immediate transaction on SQLite, an advisory lock on PostgreSQL); a database written by a newer release
is refused with a clear ``LedgerSchemaError`` instead of being misread. Never edit a released step:
append a new one (each step defines the tables as they were at that version, not ``tables.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.ledger.tables import schema_migrations

# Any constant works: it only has to be the same in every process that migrates this database.
_ADVISORY_LOCK_ID = 0x6D6F_6C65


class LedgerSchemaError(ConfigError):
    """The ledger database has a schema this release cannot use."""


def _m001_attempts_and_requests(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "requests",
        md,
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.Double),
        sa.Column("finished_at", sa.Double),
        sa.Column("day", sa.String(10)),
        sa.Column("requested", sa.String),
        sa.Column("strategy", sa.String),
        sa.Column("category", sa.String),
        sa.Column("tags", sa.String),
        sa.Column("api_key_id", sa.String),
        sa.Column("max_cost", sa.Double),
        sa.Column("ok", sa.Boolean),
        sa.Column("model_used", sa.String),
        sa.Column("cost", sa.Double),
        sa.Column("latency", sa.Double),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("attempts", sa.Integer),
        sa.Column("error_type", sa.String),
        sa.Index("ix_requests_started_at", "started_at"),
        sa.Index("ix_requests_category", "category"),
    )
    sa.Table(
        "attempts",
        md,
        sa.Column("attempt_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("deployment", sa.String, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String),
        sa.Column("status_code", sa.Integer),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cached_input_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("usage_estimated", sa.Boolean, nullable=False),
        sa.Column("cost", sa.Double),
        sa.Column("latency", sa.Double, nullable=False),
        sa.Index("ix_attempts_finished_at", "finished_at"),
        sa.Index("ix_attempts_request_id", "request_id"),
        sa.Index("ix_attempts_day_provider", "day", "provider"),
    )
    md.create_all(conn)


def _m002_budgets(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "budget_counters",
        md,
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("period_key", sa.String(10), primary_key=True),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("spent", sa.Double, nullable=False),
    )
    sa.Table(
        "budget_reservations",
        md,
        sa.Column("reservation_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("period_key", sa.String(10), primary_key=True),
        sa.Column("amount", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Index("ix_budget_reservations_key", "name", "period_key"),
        sa.Index("ix_budget_reservations_expires_at", "expires_at"),
    )
    md.create_all(conn)


def _m003_cache_write_tokens(conn: sa.Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE attempts ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0")


def _m004_virtual_keys(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "virtual_keys",
        md,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("models", sa.String, nullable=False),
        sa.Column("budget_usd", sa.Double),
        sa.Column("budget_period", sa.String(8), nullable=False),
        sa.Column("rpm", sa.Integer),
        sa.Column("expires_at", sa.Double),
        sa.Column("revoked_at", sa.Double),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    md.create_all(conn)


def _m005_outcome_labels(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "outcome_labels",
        md,
        sa.Column("label_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("model", sa.String),
        sa.Column("tier", sa.Integer),
        sa.Column("score", sa.Double, nullable=False),
        sa.Column("api_key_id", sa.String),
        sa.Index("ix_outcome_labels_request_id", "request_id"),
    )
    sa.Table(
        "request_prompts",
        md,
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("stored_at", sa.Double, nullable=False),
        sa.Index("ix_request_prompts_stored_at", "stored_at"),
    )
    md.create_all(conn)


MIGRATIONS: tuple[tuple[str, Callable[[sa.Connection], None]], ...] = (
    ("m001_attempts_and_requests", _m001_attempts_and_requests),
    ("m002_budgets", _m002_budgets),
    ("m003_cache_write_tokens", _m003_cache_write_tokens),
    ("m004_virtual_keys", _m004_virtual_keys),
    ("m005_outcome_labels", _m005_outcome_labels),
)
LATEST = len(MIGRATIONS)


async def migrate(conn: AsyncConnection, *, now: float, target: int = LATEST) -> list[str]:
    """Apply the missing steps up to ``target`` inside the caller's transaction; returns their names."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK_ID)))
    await conn.run_sync(lambda sync: schema_migrations.create(sync, checkfirst=True))
    current = await schema_version(conn)
    if current > LATEST:
        raise LedgerSchemaError(
            f"the ledger database is at schema version {current}, newer than this release understands "
            f"({LATEST}); upgrade model-orchestrator, or point ledger.url at another database"
        )
    applied = []
    for version in range(current + 1, target + 1):
        name, step = MIGRATIONS[version - 1]
        await conn.run_sync(step)
        await conn.execute(schema_migrations.insert().values(version=version, name=name, applied_at=now))
        applied.append(name)
    return applied


async def schema_version(conn: AsyncConnection) -> int:
    """The highest applied step (0 for an empty database)."""
    found = await conn.execute(sa.select(sa.func.max(schema_migrations.c.version)))
    return int(found.scalar() or 0)
