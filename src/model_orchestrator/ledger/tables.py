"""The ledger's tables as they are now (SQLAlchemy Core), for queries and writes.

The schema is created and upgraded only by ``migrations`` (append-only steps); a test checks that the
migrations produce exactly these tables. Times are UTC epoch seconds; ``day`` is the UTC date
(``YYYY-MM-DD``) so daily grouping is plain SQL on SQLite and PostgreSQL alike. No prompt text, answer
text, error message or key is ever stored: error classes and API key ids only. The one exception is
opt-in: with ``ledger.store_prompts`` the router's input text goes to ``request_prompts`` (for
retraining on ``outcome_labels``; see ``feedback``).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.Double, nullable=True),
    sa.Column("finished_at", sa.Double, nullable=True),
    sa.Column("day", sa.String(10), nullable=True),
    sa.Column("requested", sa.String, nullable=True),
    sa.Column("strategy", sa.String, nullable=True),
    sa.Column("category", sa.String, nullable=True),
    sa.Column("tags", sa.String, nullable=True),
    sa.Column("api_key_id", sa.String, nullable=True),
    sa.Column("max_cost", sa.Double, nullable=True),
    sa.Column("ok", sa.Boolean, nullable=True),
    sa.Column("model_used", sa.String, nullable=True),
    sa.Column("cost", sa.Double, nullable=True),
    sa.Column("latency", sa.Double, nullable=True),
    sa.Column("input_tokens", sa.Integer, nullable=True),
    sa.Column("output_tokens", sa.Integer, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=True),
    sa.Column("error_type", sa.String, nullable=True),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("attempt_id", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("finished_at", sa.Double, nullable=False),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("provider", sa.String, nullable=False),
    sa.Column("deployment", sa.String, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_type", sa.String, nullable=True),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("input_tokens", sa.Integer, nullable=False),
    sa.Column("output_tokens", sa.Integer, nullable=False),
    sa.Column("cached_input_tokens", sa.Integer, nullable=False),
    sa.Column("reasoning_tokens", sa.Integer, nullable=False),
    sa.Column("usage_estimated", sa.Boolean, nullable=False),
    sa.Column("cost", sa.Double, nullable=True),
    sa.Column("latency", sa.Double, nullable=False),
    sa.Column("cache_write_tokens", sa.Integer, nullable=False, server_default="0"),
)

budget_counters = sa.Table(
    "budget_counters",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("period_key", sa.String(10), primary_key=True),
    sa.Column("unit", sa.String(8), nullable=False),
    sa.Column("spent", sa.Double, nullable=False),
)

budget_reservations = sa.Table(
    "budget_reservations",
    metadata,
    sa.Column("reservation_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("period_key", sa.String(10), primary_key=True),
    sa.Column("amount", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
)

virtual_keys = sa.Table(
    "virtual_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String, nullable=True),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("secret_hash", sa.String(128), nullable=False),
    sa.Column("models", sa.String, nullable=False),
    sa.Column("budget_usd", sa.Double, nullable=True),
    sa.Column("budget_period", sa.String(8), nullable=False),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("expires_at", sa.Double, nullable=True),
    sa.Column("revoked_at", sa.Double, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

outcome_labels = sa.Table(
    "outcome_labels",
    metadata,
    sa.Column("label_id", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("model", sa.String, nullable=True),
    sa.Column("tier", sa.Integer, nullable=True),
    sa.Column("score", sa.Double, nullable=False),
    sa.Column("api_key_id", sa.String, nullable=True),
)

request_prompts = sa.Table(
    "request_prompts",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("stored_at", sa.Double, nullable=False),
)

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("applied_at", sa.Double, nullable=False),
)
