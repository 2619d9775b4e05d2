"""The ``state:`` section of ``orchestrator.yaml``: where rate limits, cooldowns, breakers, health and
key limits live when several processes or hosts serve one configuration (Redis or Valkey).

Owns the shape and validation; ``config.build.build_state_store`` turns it into a store.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SCHEMES = ("redis", "rediss", "unix")  # Valkey speaks the same protocol and URLs


class StateConfig(BaseModel):
    """Shared state. Without ``url``/``url_env`` state stays in the process (right for one process).

    ``url``: ``redis://host:port/db`` (a URL with a password goes in the variable named by ``url_env``).
    ``on_unavailable``: ``local`` (default) keeps serving on per-process state, rate limits divided by
    ``replicas``, while the store is unreachable; ``fail`` refuses calls (503) until it is back.
    ``timeout``: the longest wait for one store call, seconds; ``retry_interval``: how often an unreachable
    store is tried again; ``prefix``: the key prefix (several deployments may share one Redis);
    ``cache_ttl``: how long a process answers from what it last saw of a cooldown, breaker or health
    result instead of asking Redis (so how late it may see another process's change; 0: always ask).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    url: str | None = None
    url_env: str | None = None
    on_unavailable: Literal["local", "fail"] = "local"
    replicas: int = Field(default=1, ge=1, le=10_000)
    timeout: float = Field(default=0.25, gt=0, le=1.0)
    retry_interval: float = Field(default=1.0, gt=0, le=300)
    prefix: str = Field(default="orchestrator:state:", min_length=1, max_length=200)
    cache_ttl: float = Field(default=0.25, ge=0, le=1.0)

    @field_validator("url_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("_", "").isalnum():
            raise ValueError("must be the NAME of an environment variable holding the URL, not the URL")
        return value

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_state_url(value)
            if urlsplit(value).password:
                raise ValueError("must not hold a password; put the URL in a variable and name it in url_env")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> StateConfig:
        if self.url is not None and self.url_env is not None:
            raise ValueError("give url or url_env, not both")
        return self

    @property
    def shared(self) -> bool:
        """Whether a shared store is configured."""
        return self.url is not None or self.url_env is not None


def check_state_url(url: str) -> None:
    """``ValueError`` unless ``url`` is a Redis URL (the message never repeats the URL: it may hold a
    password)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or (parts.scheme != "unix" and not parts.hostname):
        raise ValueError("must be a Redis URL such as redis://127.0.0.1:6379/0")
