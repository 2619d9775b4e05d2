"""Scrubbing secrets out of a CLI's stderr before it goes into an error message.

Owns which environment variables count as secret and which text looks like a key; not where the text
comes from or how errors are built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

REDACTED = "[REDACTED]"

# OpenAI/Anthropic style (sk-..., sk-ant-...) and Google API keys (AIza...).
_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}")
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET")
# Shorter values are too likely to be ordinary words or numbers to blank out everywhere.
_MIN_SECRET_LENGTH = 6


def is_secret_name(name: str) -> bool:
    """True for variable names that hold credentials (FOO_KEY, FOO_TOKEN, FOO_SECRET, *API_KEY*)."""
    upper = name.upper()
    return upper.endswith(_SECRET_SUFFIXES) or "API_KEY" in upper


def secret_values(environments: Iterable[Mapping[str, str]]) -> tuple[str, ...]:
    """The values of every secret-named variable, longest first so overlapping values redact fully."""
    values = {
        value
        for env in environments
        for name, value in env.items()
        if is_secret_name(name) and len(value) >= _MIN_SECRET_LENGTH
    }
    return tuple(sorted(values, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value and every key-shaped token replaced by ``[REDACTED]``."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return _KEY_PATTERN.sub(REDACTED, text)


def tail(text: str, *, max_lines: int = 20, max_chars: int = 2000) -> str:
    """The last ``max_lines`` lines of ``text``, at most ``max_chars`` characters."""
    lines = text.rstrip().splitlines()[-max_lines:]
    return "\n".join(lines)[-max_chars:]
