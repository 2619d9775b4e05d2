"""``GatewaySettings``: where the gateway listens, whether it asks for keys, and its request limits.

Owns the auth rule (``check_auth_rule``): on a non-loopback address auth is always on and the master key
must be set; ``--no-auth`` is allowed on loopback only. Not reading flags (``cli/serve.py`` does) nor
checking keys (``auth.py``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from model_orchestrator.core.errors import ConfigError

MASTER_KEY_ENV = "ORCHESTRATOR_MASTER_KEY"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request limits. ``max_body_bytes`` and ``max_messages`` are checked before any model is called;
    ``max_tokens`` is a ceiling on the requested output (requests above it are refused, never clamped);
    ``request_timeout`` is the deadline (seconds) of one whole request, every attempt and fallback included.
    """

    max_body_bytes: int = 4 * 1024 * 1024
    max_messages: int = 1024
    max_tokens: int = 32768
    request_timeout: float = 600.0


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """How ``orchestrator serve`` runs. ``master_key`` is never printed (``repr`` leaves it out).

    ``key_cache_seconds``: how long a checked virtual key is trusted without reading the key table again
    (a key revoked by ``orchestrator keys revoke`` in another process stops working within this time; one
    revoked through the gateway's admin route stops at once). ``shutdown_timeout``: how long a graceful
    shutdown waits for requests in flight.
    """

    host: str = "127.0.0.1"
    port: int = 4000
    auth: bool = True
    master_key: str | None = field(default=None, repr=False)
    limits: Limits = field(default_factory=Limits)
    key_cache_seconds: float = 5.0
    shutdown_timeout: float = 30.0


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_auth_rule(settings: GatewaySettings) -> None:
    """Refuse settings that would expose models without a key."""
    if not is_loopback(settings.host):
        if not settings.auth:
            raise ConfigError(
                f"--no-auth is allowed only on a loopback address (127.0.0.1, ::1), not {settings.host}"
            )
        if not settings.master_key:
            raise ConfigError(
                f"serving on {settings.host} needs a master key: set {MASTER_KEY_ENV} "
                "(auth is always on off loopback)"
            )
