"""Where the ledger lives and how it writes: ``LedgerSettings``, the default SQLite path, URL handling.

Owns turning a user's database URL into the async driver URL and redacting its password for logs and
output. It does not open anything (``store`` does).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_FILE_NAME = "ledger.sqlite3"
DEFAULT_BATCH_SIZE = 2000
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """How the ledger stores and batches.

    ``flush_interval`` (seconds) and ``batch_size`` bound how long a row waits in memory: a crash loses
    at most the rows of the last ``flush_interval`` (plus the batch being written); a request still running
    is written as unfinished within two intervals. ``batch_size`` is also the most rows one transaction
    writes; unset, it is ``DEFAULT_BATCH_SIZE`` (``max_queue`` when that is smaller), large because under
    load a transaction's cost is mostly fixed (docs/decisions.md, "The ledger's writer"). ``max_queue``
    bounds memory in rows: when the database cannot keep up, further rows are dropped and counted (checked
    as a batch fills), never blocking a request. A reservation whose process died is forgotten after
    ``reservation_ttl`` seconds. ``store_prompts`` keeps each request's router input text for retraining
    on feedback (off: no text is ever stored); a stored prompt nobody labelled is deleted after
    ``prompt_retention_days``.
    """

    url: str
    flush_interval: float = 1.0
    batch_size: int | None = None
    max_queue: int = 10_000
    reservation_ttl: float = 3600.0
    store_prompts: bool = False
    prompt_retention_days: float = 30.0

    def __post_init__(self) -> None:
        batch = self.rows_per_batch
        if self.flush_interval <= 0 or batch < 1 or self.max_queue < batch:
            raise ValueError("flush_interval must be > 0, batch_size >= 1 and max_queue >= batch_size")
        if self.prompt_retention_days <= 0:
            raise ValueError("prompt_retention_days must be > 0")

    @property
    def rows_per_batch(self) -> int:
        """``batch_size``, or the default when it is unset."""
        if self.batch_size is not None:
            return self.batch_size
        return min(DEFAULT_BATCH_SIZE, self.max_queue)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if async_url(self.url).startswith("sqlite") else "postgresql"

    @property
    def display_url(self) -> str:
        """The URL without its password (safe to log and print)."""
        return redact_url(self.url)


def default_path(env: Mapping[str, str] | None = None) -> Path:
    """``$ORCHESTRATOR_HOME/ledger.sqlite3``, else the same file in the user data directory.

    ``ORCHESTRATOR_HOME`` is looked up in ``env``, then in the process environment: ``env`` often holds
    only key variables, and the home must never silently fall back to the real user directory.
    """
    home = (env or {}).get("ORCHESTRATOR_HOME") or os.environ.get("ORCHESTRATOR_HOME")
    if home:
        return Path(home).expanduser() / DEFAULT_FILE_NAME
    import platformdirs

    return Path(platformdirs.user_data_dir("model-orchestrator", appauthor=False)) / DEFAULT_FILE_NAME


def sqlite_url(path: Path) -> str:
    """The URL of a SQLite file."""
    return f"sqlite:///{path.expanduser().resolve()}"


def async_url(url: str) -> str:
    """``url`` with the async driver named: ``sqlite+aiosqlite://``, ``postgresql+asyncpg://``.

    A plain path (no ``scheme://``) is taken as a SQLite file.
    """
    if "://" not in url:
        return "sqlite+aiosqlite:///" + str(Path(url).expanduser().resolve())
    scheme, rest = url.split("://", 1)
    base = scheme.split("+", 1)[0]
    if base not in _DRIVERS:
        raise ValueError(f"unsupported ledger database {base!r}: use sqlite:///PATH or postgresql://...")
    return f"{_DRIVERS[base]}://{rest}"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
