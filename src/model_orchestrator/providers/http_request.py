"""An HTTP/1.1 request on the wire: where it goes (``Origin``) and its bytes (``RequestHeads``).

Owns URL parsing, the Host header, credentials in a URL, refusing header values that would split a
request (CR, LF, NUL), and a cache of the encoded request head per (method, URL, headers), since an
adapter sends the same head on every call. It does not open connections (``providers.http``) or read
responses (``providers.http_connection``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from model_orchestrator.core.errors import ConfigError

_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN_IN_VALUES = ("\r", "\n", "\0")
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Heads are cached per adapter setting; many distinct URLs mean something generates them, so start over.
_MAX_CACHED = 512


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request goes: the pool key, the address to connect to, and a URL safe to print."""

    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    where: str


class RequestHeads:
    """Encodes requests, caching each distinct head (everything before the body's length)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[Origin, bytes]] = {}

    def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[Origin, bytes]:
        """The origin and the whole request's bytes."""
        key = (method, url, tuple(headers.items()))
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            cached = self._cache[key] = _encode_head(method, url, headers)
        origin, head = cached
        if body is None:
            return origin, head + b"\r\n"
        return origin, b"".join((head, b"content-length: %d\r\n\r\n" % len(body), body))


def _encode_head(method: str, url: str, headers: Mapping[str, str]) -> tuple[Origin, bytes]:
    parts = urlsplit(url)
    origin = _origin(parts)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = _DEFAULT_PORTS[parts.scheme]
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    fields = {
        "host": host if origin.port == default_port else f"{host}:{origin.port}",
        "user-agent": "model-orchestrator",
        "accept-encoding": "gzip, deflate",
    }
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        fields["authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    for name, value in headers.items():
        lowered = name.lower()
        if lowered not in ("content-length", "transfer-encoding"):
            fields[lowered] = value
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in fields.items():
        _check_field(name, value, origin.where)
        lines.append(f"{name}: {value}")
    return origin, ("\r\n".join(lines) + "\r\n").encode("latin-1")


def _origin(parts: SplitResult) -> Origin:
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(
            f"cannot send to {parts.scheme}://{parts.hostname or ''}{parts.path}: "
            "an upstream URL must be http:// or https:// with a host"
        )
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    where = f"{parts.scheme}://{parts.hostname}:{port}{parts.path}"
    return Origin((parts.scheme, parts.hostname, port), parts.hostname, port, parts.scheme == "https", where)


def _check_field(name: str, value: str, where: str) -> None:
    if not name or not _TOKEN_CHARS.issuperset(name):
        raise ConfigError(f"header name {name!r} for {where} is not a valid HTTP token; fix it in the config")
    if any(c in value for c in _FORBIDDEN_IN_VALUES) or not value.isascii():
        # The value may be a key: name the header, never print the value.
        raise ConfigError(
            f"header {name!r} for {where} holds a line break, NUL or non-ASCII character; fix the config"
        )
