"""Checks of single ``orchestrator.yaml`` fields that say where a model is and how to reach it: variable
names, ``api_base`` URLs, header maps and CLI-agent presets. Each raises ``ValueError`` with the rule, for
pydantic to report under the field's path; none echoes a value that could be a secret.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from model_orchestrator.config.redaction import looks_like_key


def check_variable_name(value: str | None) -> str | None:
    if value is not None and not value.replace("_", "").isalnum():
        raise ValueError(
            "must be the NAME of an environment variable (e.g. MY_PROVIDER_API_KEY), never the key itself"
        )
    return value


def check_api_base(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:8000/v1")
    if parts.username or parts.password:
        raise ValueError(
            "must not hold credentials (user:password@); send them as a header named in headers_env, "
            "e.g. headers_env: {Authorization: MY_PROXY_AUTH}"
        )
    return value


# RFC 9110 field names; values may not hold control characters (CR/LF would inject headers).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "password", "cookie", "session")


def check_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    """Plain ``headers:`` are for values that are not secret; a credential belongs in ``headers_env``."""
    for name, header in (value or {}).items():
        _check_header_name(name)
        if _CONTROL.search(header):
            raise ValueError(f"the value of header {name!r} holds a control character (CR, LF, ...)")
        if any(word in name.lower() for word in _SECRET_HEADER_WORDS) or looks_like_key(header):
            raise ValueError(
                f"header {name!r} looks like a credential; secrets never go in the file: put the value "
                f"in an environment variable and name it under headers_env (headers_env: {{{name}: MY_VAR}})"
            )
    return value


def check_headers_env(value: dict[str, str] | None) -> dict[str, str] | None:
    for name, variable in (value or {}).items():
        _check_header_name(name)
        check_variable_name(variable)
    return value


def _check_header_name(name: str) -> None:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError("a header name may hold only letters, digits and !#$%&'*+-.^_`|~")


def preset_names() -> list[str]:
    from model_orchestrator.providers.cli_agent.presets import PRESETS

    return sorted(PRESETS)


def check_preset(provider: str, preset: str) -> None:
    if provider != "cli":
        raise ValueError("'preset' names a CLI agent and needs provider: cli")
    if preset not in preset_names():
        raise ValueError(f"unknown CLI agent preset {preset!r}; presets: {', '.join(preset_names())}")
