"""Virtual API keys for the gateway, stored in the ledger database: salted hashes only, never the secret.

Owns ``VirtualKey`` (what a listing shows), the key format and ``VirtualKeyStore`` (create, list, revoke,
verify) over the ledger's async engine. A key reads ``sk-orch-<id>-<secret>``: the id is public (listings,
``api_key_id`` on ledger rows, budgets ``key:<id>``), the secret is 256 random bits shown once at creation.
The table keeps ``HMAC-SHA256(salt, secret)`` with a per-key random salt; a slow password hash is not
needed because the secret is random, not chosen by a person. Verification looks the id up and compares
digests in constant time. Not checking expiry, models or rate (the gateway's ``auth`` does).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.ledger.tables import virtual_keys

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

PREFIX = "sk-orch-"
_ID_BYTES = 6  # 12 hex characters: unique enough for ids, short enough to read in a listing


class KeyNotFoundError(ConfigError):
    """No virtual key has this id."""

    default_status = 404


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """One virtual key, without its secret. Times are UTC epoch seconds; ``models`` empty: any model;
    ``budget_usd`` is per ``budget_period`` (``day`` or ``month``, UTC calendar)."""

    id: str
    name: str | None
    models: tuple[str, ...]
    budget_usd: float | None
    budget_period: str
    rpm: int | None
    expires_at: float | None
    revoked_at: float | None
    created_at: float

    def state(self, now: float) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_dict(self, now: float) -> dict[str, object]:
        """JSON-ready, with ``state`` (never a secret: the store does not have it)."""
        return {
            "id": self.id,
            "name": self.name,
            "models": list(self.models),
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "rpm": self.rpm,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "created_at": self.created_at,
            "state": self.state(now),
        }


def _digest(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


def split_key(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    if not presented.startswith(PREFIX):
        return None
    key_id, sep, secret = presented[len(PREFIX) :].partition("-")
    if not sep or len(key_id) != 2 * _ID_BYTES or not secret:
        return None
    return key_id, secret


class VirtualKeyStore:
    """Virtual keys in the ``virtual_keys`` table of the ledger database (created by its migrations)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()

    async def create(
        self,
        *,
        name: str | None = None,
        models: tuple[str, ...] = (),
        budget_usd: float | None = None,
        budget_period: str = "month",
        rpm: int | None = None,
        expires_at: float | None = None,
    ) -> tuple[VirtualKey, str]:
        """A new key and its full secret form (``sk-orch-...``), which is shown once and never stored."""
        _check_limits(budget_usd, budget_period, rpm)
        key_id, secret, salt = (
            secrets.token_hex(_ID_BYTES),
            secrets.token_urlsafe(32),
            secrets.token_bytes(16),
        )
        key = VirtualKey(
            id=key_id,
            name=name,
            models=tuple(dict.fromkeys(models)),
            budget_usd=budget_usd,
            budget_period=budget_period,
            rpm=rpm,
            expires_at=expires_at,
            revoked_at=None,
            created_at=self._clock.wall(),
        )
        row = {**_row(key), "salt": salt.hex(), "secret_hash": _digest(salt, secret)}
        async with self._engine.begin() as conn:
            await conn.execute(virtual_keys.insert().values(**row))
        return key, f"{PREFIX}{key_id}-{secret}"

    async def list(self) -> list[VirtualKey]:
        """Every key, oldest first (revoked and expired ones included)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(sa.select(virtual_keys).order_by(virtual_keys.c.created_at))
            return [_key(r) for r in rows.mappings()]

    async def get(self, key_id: str) -> VirtualKey | None:
        """The key with this id, or None."""
        async with self._engine.connect() as conn:
            found = await conn.execute(sa.select(virtual_keys).where(virtual_keys.c.id == key_id))
            row = found.mappings().first()
        return None if row is None else _key(row)

    async def revoke(self, key_id: str) -> VirtualKey:
        """Mark the key revoked now (idempotent: a revoked key keeps its first revocation time)."""
        now = self._clock.wall()
        async with self._engine.begin() as conn:
            await conn.execute(
                virtual_keys.update()
                .where(virtual_keys.c.id == key_id, virtual_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        key = await self.get(key_id)
        if key is None:
            raise KeyNotFoundError(
                f"no virtual key has the id {key_id!r} (`orchestrator keys list` lists them)"
            )
        return key

    async def verify(self, presented: str) -> VirtualKey | None:
        """The key whose secret is ``presented`` (in any state), or None; constant-time on the digest."""
        parts = split_key(presented)
        if parts is None:
            return None
        key_id, secret = parts
        async with self._engine.connect() as conn:
            found = await conn.execute(sa.select(virtual_keys).where(virtual_keys.c.id == key_id))
            row = found.mappings().first()
        if row is None:
            return None
        expected = str(row["secret_hash"])
        if not hmac.compare_digest(_digest(bytes.fromhex(str(row["salt"])), secret), expected):
            return None
        return _key(row)


def _check_limits(budget_usd: float | None, budget_period: str, rpm: int | None) -> None:
    if budget_usd is not None and budget_usd < 0:
        raise ConfigError("a key's budget must be >= 0 USD")
    if budget_period not in ("day", "month"):
        raise ConfigError("a key's budget period must be 'day' or 'month'")
    if rpm is not None and rpm < 1:
        raise ConfigError("a key's rpm must be >= 1")


def _row(key: VirtualKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "models": json.dumps(list(key.models)),
        "budget_usd": key.budget_usd,
        "budget_period": key.budget_period,
        "rpm": key.rpm,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "created_at": key.created_at,
    }


def _key(row: sa.RowMapping) -> VirtualKey:
    return VirtualKey(
        id=row["id"],
        name=row["name"],
        models=tuple(json.loads(row["models"] or "[]")),
        budget_usd=row["budget_usd"],
        budget_period=row["budget_period"],
        rpm=row["rpm"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        created_at=row["created_at"],
    )
