"""What a config error may show of a value: a short excerpt, never anything that looks like a key.

Config errors quote what they got so a typo is easy to find, but a config file is also where people
paste keys by mistake, and a value can be enormous (a YAML alias bomb expands to gigabytes). So every
value shown is first stripped of key-looking tokens, then cut short; never the other way round, or a
key straddling the cut would leak as a prefix. This module owns the heuristic and the excerpt; it does
not know which fields hold secrets (the schema and loader do).
"""

from __future__ import annotations

import re
import reprlib

REDACTED = "[REDACTED]"
EXCERPT_CHARS = 80

# Runs of characters keys are made of; "/" and ":" split URLs into parts, each judged on its own.
_TOKEN = re.compile(r"[A-Za-z0-9_\-+=.~]{12,}")
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/?#@\s]+@")
# Prefixes vendors give keys and tokens so that scanners can find them; short tokens with one are keys.
_KEY_PREFIXES = ("sk-", "sk_", "pk_", "rk_", "xox", "ghp_", "gho_", "ghs_", "github_pat_", "glpat-", "hf_")
_KEY_PREFIXES_CASED = ("AIza", "AKIA", "ASIA", "eyJ")
_LONG_TOKEN = 20
_OPAQUE_TOKEN = 32


def looks_like_key(text: str) -> bool:
    """True when ``text`` holds a token that looks like a key, a token or a password hash."""
    if _URL_CREDENTIALS.search(text):
        return True
    return any(_is_key(match.group()) for match in _TOKEN.finditer(text))


def redact_keys(text: str) -> str:
    """``text`` with URL credentials (``user:pass@``) and key-looking tokens replaced by ``[REDACTED]``."""
    text = _URL_CREDENTIALS.sub(REDACTED + "@", text)
    return _TOKEN.sub(lambda m: REDACTED if _is_key(m.group()) else m.group(), text)


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A short, redacted ``repr`` of ``value``; bounded work and size whatever the value holds."""
    return _shorten(_EXCERPT.repr(value), limit)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_key(token: str) -> bool:
    lowered = token.lower()
    if lowered.startswith(_KEY_PREFIXES) or token.startswith(_KEY_PREFIXES_CASED):
        return True
    has_digit = any(c.isdigit() for c in token)
    if len(token) >= _LONG_TOKEN and has_digit and any(c.isupper() for c in token):
        return any(c.islower() for c in token)  # mixed case and digits: random, not a word or an id
    # Hex digests, salts and long random lowercase ids.
    return len(token) >= _OPAQUE_TOKEN and has_digit and token.isalnum()


class _RedactingRepr(reprlib.Repr):
    """``reprlib`` bounds depth and length; strings are redacted before they are cut."""

    def repr_str(self, x: str, level: int) -> str:
        return repr(_shorten(redact_keys(x), self.maxstring))


def _excerpt_repr() -> _RedactingRepr:
    limits = _RedactingRepr()  # keyword arguments to Repr() need Python 3.12
    limits.maxlevel = 2
    limits.maxdict = limits.maxlist = limits.maxtuple = limits.maxset = 4
    limits.maxstring = limits.maxother = 60
    return limits


_EXCERPT = _excerpt_repr()
