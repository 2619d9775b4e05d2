"""``GatewaySettings``: where the gateway listens, whether it asks for keys, and its request limits.

The exposure rule (off loopback auth is always on and the master key is set and long enough; ``--no-auth``
on loopback only) is ``orchestrator.access.check_exposure``, shared with the MCP server. Not reading flags
(``cli/serve.py`` does) nor checking keys (``auth.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model_orchestrator.orchestrator.access import MASTER_KEY_ENV, check_exposure, is_loopback

__all__ = ["MASTER_KEY_ENV", "GatewaySettings", "Limits", "check_auth_rule", "is_loopback"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request limits. ``max_body_bytes`` and ``max_messages`` are checked before any model is called;
    ``max_tokens`` is a ceiling on the requested output (requests above it are refused, never clamped);
    ``request_timeout`` is the deadline (seconds) of one whole request, every attempt and fallback included.

    Slow clients: ``header_timeout`` is how long a connection may take to send a request's headers (from
    connecting, or from the previous response); ``body_timeout`` how long the body may take once the
    headers are in (408); ``max_pending_connections`` how many connections may be open at once without
    having presented a valid key (more get 503); ``auth_failures_per_minute`` how many failed key checks
    one client address gets per minute before it is refused with 429.
    """

    max_body_bytes: int = 4 * 1024 * 1024
    max_messages: int = 1024
    max_tokens: int = 32768
    request_timeout: float = 600.0
    header_timeout: float = 15.0
    body_timeout: float = 30.0
    max_pending_connections: int = 256
    auth_failures_per_minute: int = 20


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """How ``orchestrator serve`` runs. ``master_key`` is never printed (``repr`` leaves it out).

    ``key_cache_seconds``: how long a checked virtual key is trusted without reading the key table again
    (a key revoked by ``orchestrator keys revoke`` in another process stops working within this time; one
    revoked through the gateway's admin route stops at once). ``shutdown_timeout``: how long a graceful
    shutdown waits for requests in flight. ``allowed_hosts`` and ``allowed_origins``: Host names beyond the
    bound address and browser origins the gateway accepts (``access.BrowserGuard``; ``*`` allows any).
    ``reuse_port``: bind with ``SO_REUSEPORT``, so several processes serve one port (``workers``).
    """

    host: str = "127.0.0.1"
    port: int = 4000
    auth: bool = True
    master_key: str | None = field(default=None, repr=False)
    limits: Limits = field(default_factory=Limits)
    key_cache_seconds: float = 1.0
    shutdown_timeout: float = 30.0
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    reuse_port: bool = False


def check_auth_rule(settings: GatewaySettings) -> None:
    """Refuse settings that would expose models without a key (or behind a short one)."""
    check_exposure(settings.host, auth=settings.auth, master_key=settings.master_key, server="the gateway")
