"""Short model names the seeds use (``haiku``, ``sonnet``, ``opus``, ``gpt-4``, ``gemini-flash``), as data:
each alias names a catalogue model. ``aliases:`` in orchestrator.yaml adds to or overrides this table.

A name that is a model or strategy in its own right is never treated as an alias.
"""

from __future__ import annotations

from types import MappingProxyType

ALIASES = MappingProxyType(
    {
        "haiku": "claude-haiku-4-5",
        "sonnet": "claude-sonnet-4-5",
        "opus": "claude-opus-4-5",
        "gpt-4": "gpt-4.1",
        "gemini-flash": "gemini-2.5-flash",
        "gemini-pro": "gemini-2.5-pro",
    }
)
