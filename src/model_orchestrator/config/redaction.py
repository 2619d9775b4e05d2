"""What a config error may show of a value: a short excerpt, never anything that looks like a key.

Config errors quote what they got so a typo is easy to find, but a config file is also where people
paste keys by mistake, and a value can be enormous (a YAML alias bomb expands to gigabytes). So every
value shown is first stripped of key-looking tokens, then cut short; never the other way round, or a
key straddling the cut would leak as a prefix. This module owns the heuristic and the excerpt; it does
not know which fields hold secrets (the schema and loader do).
"""

from __future__ import annotations

import itertools
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
_RUN = re.compile(r"[A-Za-z0-9]+")
_LONG_TOKEN = 20
_RANDOM_RUN = 12
_OPAQUE_TOKEN = 32
_URLSAFE_TOKEN = 24
_RANDOM_CHANGES = 0.4


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
    # Random strings have long runs without separators; model ids are short words ("Llama-3.1-405B").
    run = max(_RUN.findall(token), key=len, default="")
    random_run = any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
    if len(run) >= _OPAQUE_TOKEN and random_run:
        return True  # hex digests, salts, long random ids
    mixed_case = any(c.isupper() for c in token) and any(c.islower() for c in token)
    if len(token) >= _LONG_TOKEN and mixed_case and len(run) >= _RANDOM_RUN and random_run:
        return True
    # Random base64: the character class (upper, lower, digit) changes at most characters; in words
    # and model ids it rarely does.
    return len(token) >= _URLSAFE_TOKEN and _class_changes(token) >= _RANDOM_CHANGES * len(token)


def _class_changes(token: str) -> int:
    classes = [c.isdigit() * 2 + c.isupper() for c in token if c.isalnum()]
    return sum(a != b for a, b in itertools.pairwise(classes))


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
