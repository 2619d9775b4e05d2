"""Who may reach the network front doors: the rules the gateway and the MCP server over HTTP share.

Owns the exposure rule (off loopback, auth is on and a master key of ``MIN_MASTER_KEY_LENGTH`` characters
is set), reading a presented key (``Authorization: Bearer`` or ``x-api-key``), the browser defences
(``BrowserGuard``: Host against DNS rebinding, Origin and Content-Type against cross-site requests),
``Principal`` (who is calling and which models they may use) and ``FailedAuthThrottle``. Pure rules: no
HTTP framework, no I/O; each front door turns a refusal into its own response. The gateway and the MCP
server are sibling layers and may not import each other, so what both need lives here.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import urlsplit

from model_orchestrator.config.strategy_options import OPTIONS
from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.resilience import sliding_window

if TYPE_CHECKING:
    from model_orchestrator.ledger.keys import VirtualKey

MASTER_KEY_ENV = "ORCHESTRATOR_MASTER_KEY"
MIN_MASTER_KEY_LENGTH = 32
# Longer than any key we issue or a provider uses: a bigger "key" is noise, refused before hashing.
MAX_PRESENTED_KEY_LENGTH = 512
_STRATEGY_KINDS = frozenset(OPTIONS)
# URLs, IPv4/IPv6 addresses and host:port pairs: what an upstream error says about where it came from.
_WHERE = re.compile(
    r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+"  # any URL
    r"|\[[0-9a-fA-F:.]+\](?::\d+)?"  # [::1]:8000
    r"|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"  # 10.0.0.5:8000
    r"|\b[a-zA-Z][a-zA-Z0-9-]*(?:\.[a-zA-Z0-9-]+)*:\d{2,5}\b"  # gpu-box.internal:8000, localhost:11434
)
HIDDEN_HOST = "[internal]"


def normalize_host(host: str) -> str:
    """The address to bind: ``[::1]`` (URL form) becomes ``::1``; surrounding blanks go."""
    bare = host.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    if not bare or any(c in bare for c in "[]/ "):
        raise ConfigError(
            f"--host {host!r} is not an address to listen on: give an IP address or a host name, "
            "e.g. 127.0.0.1, ::1 or 0.0.0.0"
        )
    return bare


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def master_key_from(value: str | None) -> str | None:
    """The master key as configured (blanks around it stripped, like a presented key); None when unset."""
    stripped = (value or "").strip()
    return stripped or None


def check_exposure(host: str, *, auth: bool, master_key: str | None, server: str) -> None:
    """Refuse settings that would serve models off loopback without a key, or behind a guessable one.

    ``server`` names the front door in the message (``the gateway``, ``the MCP server``)."""
    if is_loopback(host):
        return
    if not auth:
        raise ConfigError(f"--no-auth is allowed only on a loopback address (127.0.0.1, ::1), not {host}")
    if not master_key:
        raise ConfigError(
            f"{server} on {host} needs a master key: set {MASTER_KEY_ENV} (auth is always on off loopback)"
        )
    if len(master_key) < MIN_MASTER_KEY_LENGTH:
        raise ConfigError(
            f"{MASTER_KEY_ENV} is {len(master_key)} characters; off loopback it needs at least "
            f"{MIN_MASTER_KEY_LENGTH} (e.g. the output of `openssl rand -hex 32`)"
        )


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a caller sent as ``Authorization: Bearer <key>`` or ``x-api-key: <key>``, stripped; None
    when neither carries one."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return (x_api_key or "").strip() or None


def is_well_formed(key: str) -> bool:
    """Keys are printable ASCII of a sane length; anything else (a non-UTF-8 header) matches no key."""
    return 0 < len(key) <= MAX_PRESENTED_KEY_LENGTH and key.isascii() and key.isprintable()


def without_hosts(text: str) -> str:
    """``text`` with every URL, address and ``host:port`` replaced by ``[internal]``: what a key holder
    may read of an upstream failure (the operator reads the rest in the logs)."""
    return _WHERE.sub(HIDDEN_HOST, text)


def without_hosts_in(value: object) -> object:
    """``value`` (JSON-like: dicts, lists, strings) with ``without_hosts`` applied to every string."""
    if isinstance(value, str):
        return without_hosts(value)
    if isinstance(value, dict):
        return {key: without_hosts_in(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_hosts_in(item) for item in value]
    return value


def is_master(key: str, master_key: str | None) -> bool:
    """Constant-time comparison with the master key (``key`` must be well formed)."""
    return master_key is not None and hmac.compare_digest(key.encode(), master_key.encode())


CLI_AGENT_REFUSAL = (
    "cli: references start a coding agent on the server's host, so the network front doors never serve "
    "them; to offer an agent, configure it as a model (provider: cli) in orchestrator.yaml and use its name"
)


def starts_host_agent(model: str) -> bool:
    """True when ``model``, or a member of an inline strategy such as ``fallback:a,cli:NAME``, is a
    ``cli:NAME`` reference: it would run a coding agent on this host with the operator's account. Agents
    the operator configured by name are not references and stay usable."""
    kind, sep, rest = model.partition(":")
    names = rest.split(",") if sep and kind in _STRATEGY_KINDS else [model]
    return any(name.strip().startswith("cli:") for name in names)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller. ``key_id`` is None for the master key and when auth is off; ``models`` empty: any."""

    key_id: str | None
    master: bool
    models: frozenset[str] = frozenset()
    rpm: int | None = None
    budget_usd: float | None = None
    budget_period: str = "month"

    def may_use(self, model: str) -> bool:
        """Whether this caller may ask for ``model``: listed by name, or an inline strategy
        (``fallback:a,b``) of a known kind whose members are all listed. ``provider:NAME`` is not a
        strategy and ``auto`` is not a listed name, so a restricted key may use neither. No caller, the
        master key included, may name a ``cli:`` agent (see ``starts_host_agent``)."""
        if starts_host_agent(model):
            return False
        if self.master or not self.models or model in self.models:
            return True
        kind, sep, members = model.partition(":")
        return bool(sep) and kind in _STRATEGY_KINDS and self.may_use_all(members.split(","))

    def may_use_all(self, names: list[str]) -> bool:
        """Whether every one of ``names`` is listed (an empty list means "the defaults": not for a
        restricted key)."""
        if any(starts_host_agent(name) for name in names):
            return False
        if self.master or not self.models:
            return True
        return bool(names) and all(name in self.models for name in names)


OPEN = Principal(key_id=None, master=True)


class KeyVerifier(Protocol):
    """What the front doors need of the virtual-key store (``ledger.keys.VirtualKeyStore``)."""

    async def verify(self, presented: str) -> VirtualKey | None:
        """The key whose secret is ``presented`` (revoked and expired ones included), or None."""
        ...


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a presented key was not accepted: ``code`` for programs (``missing_api_key``,
    ``invalid_api_key``, ``api_key_revoked``, ``api_key_expired``), ``message`` for people. A front door
    answers it with 401; the message never contains the presented key."""

    code: str
    message: str


async def identify(
    presented: str | None, *, master_key: str | None, keys: KeyVerifier | None, now: float
) -> Principal | AuthFailure:
    """Who presented ``presented`` (the master key, a live virtual key), or why nobody valid did.

    ``now``: wall-clock seconds, for expiry."""
    if presented is None:
        return AuthFailure(
            "missing_api_key",
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key'.",
        )
    if not is_well_formed(presented):
        return AuthFailure("invalid_api_key", "Incorrect API key provided.")
    if is_master(presented, master_key):
        return OPEN
    key = await keys.verify(presented) if keys is not None else None
    if key is None:
        return AuthFailure("invalid_api_key", "Incorrect API key provided.")
    if key.revoked_at is not None:
        return AuthFailure("api_key_revoked", f"API key {key.id} has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        return AuthFailure("api_key_expired", f"API key {key.id} has expired.")
    return Principal(
        key_id=key.id,
        master=False,
        models=frozenset(key.models),
        rpm=key.rpm,
        budget_usd=key.budget_usd,
        budget_period=key.budget_period,
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: ``check`` is what failed (``host``, ``origin``, ``content_type``);
    ``message`` says it to the caller (and what the operator may configure)."""

    check: Literal["host", "origin", "content_type"]
    message: str


@dataclass(frozen=True, slots=True)
class BrowserGuard:
    """What a web page in the operator's browser could make it send, refused before any key is read.

    DNS rebinding: a page on ``evil.example`` whose name then resolves to 127.0.0.1 reaches a loopback
    server with ``Host: evil.example``; so on loopback (where auth may be off) the Host must be a loopback
    name or be listed in ``allowed_hosts``. Off loopback every request needs a key anyway, and any Host
    is accepted (proxies and load balancers send theirs). Cross-site requests: browsers send ``Origin``;
    callers that are programs do not, so any Origin not in ``allowed_origins`` is refused, and a POST body
    must be ``application/json`` (a form or ``text/plain`` body is what a page can send without asking
    first)."""

    bound_host: str
    allowed_hosts: frozenset[str] = frozenset()
    allowed_origins: frozenset[str] = frozenset()

    def refusal(
        self, *, method: str, host: str | None, origin: str | None, content_type: str | None
    ) -> Refusal | None:
        """Why the request is refused, or None when it may go on."""
        return (
            self._host_refusal(host)
            or self._origin_refusal(origin)
            or (self._content_type_refusal(content_type) if method.upper() == "POST" else None)
        )

    def _host_refusal(self, host: str | None) -> Refusal | None:
        name = _host_name(host)
        if name is None:
            return Refusal("host", "The Host header is missing or malformed.")
        if "*" in self.allowed_hosts or name in self.allowed_hosts:
            return None
        if not is_loopback(self.bound_host) or is_loopback(name):
            return None  # off loopback every request needs a key, so a rebound page gains nothing
        return Refusal(
            "host",
            f"Host {name!r} does not name this server's address (a DNS-rebinding guard); "
            "the operator may allow it with --allow-host.",
        )

    def _origin_refusal(self, origin: str | None) -> Refusal | None:
        if origin is None:
            return None
        normalized = origin.strip().lower().rstrip("/")
        if "*" in self.allowed_origins or normalized in self.allowed_origins:
            return None
        return Refusal(
            "origin",
            "Requests from web pages are refused (Origin header present and not allowed); "
            "the operator may allow an origin with --allow-origin.",
        )

    @staticmethod
    def _content_type_refusal(content_type: str | None) -> Refusal | None:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media == "application/json":
            return None
        return Refusal("content_type", "POST bodies must be sent as Content-Type: application/json.")


def browser_guard(
    bound_host: str, allowed_hosts: tuple[str, ...] = (), allowed_origins: tuple[str, ...] = ()
) -> BrowserGuard:
    """A ``BrowserGuard`` with the configured names normalised as the checks compare them."""
    return BrowserGuard(
        bound_host=bound_host.strip("[]").lower(),
        allowed_hosts=frozenset(h.strip().strip("[]").lower().rstrip(".") for h in allowed_hosts),
        allowed_origins=frozenset(o.strip().lower().rstrip("/") for o in allowed_origins),
    )


def _host_name(host: str | None) -> str | None:
    if not host:
        return None
    try:
        name = urlsplit(f"//{host.strip()}").hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


class FailedAuthThrottle:
    """Failed key checks per client address: after ``limit`` in 60 seconds an address is refused (429)
    without its key being checked, until the window has room again. At most ``max_addresses`` are
    remembered (the least recently failing are forgotten first), so a flood of addresses cannot grow
    memory without bound."""

    def __init__(self, clock: Clock, *, limit: int = 20, max_addresses: int = 10_000) -> None:
        self._clock = clock
        self._limit = limit
        self._max = max_addresses
        self._logs: OrderedDict[str, sliding_window.WindowLog] = OrderedDict()

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None when it may try now."""
        log = self._logs.get(address)
        if log is None:
            return None
        now = self._clock.monotonic()
        ready = sliding_window.ready_at(log, now, self._limit, 1)
        return None if ready is None or ready <= now else ready - now

    def failed(self, address: str) -> None:
        """Count one failed attempt from ``address``."""
        now = self._clock.monotonic()
        log, _slot = sliding_window.take(
            self._logs.pop(address, sliding_window.WindowLog()), now, self._limit, 1
        )
        self._logs[address] = log
        while len(self._logs) > self._max:
            self._logs.popitem(last=False)
