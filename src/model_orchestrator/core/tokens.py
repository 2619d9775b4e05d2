"""Token estimates before a call (routing, budgets, context fit); replaced by reported usage after it."""

from __future__ import annotations

from collections.abc import Iterable

from model_orchestrator.core.messages import Message

# About four characters a token for English text across the common BPE tokenizers;
# a per-message overhead covers role markers and separators.
_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4


def estimate_text_tokens(text: str) -> int:
    """Estimated tokens in ``text`` (at least 1 for non-empty text)."""
    return estimate_tokens_for_chars(len(text))


def estimate_tokens_for_chars(chars: int) -> int:
    """Estimated tokens in a text of ``chars`` characters."""
    if chars <= 0:
        return 0
    return max(1, (chars + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN)


def estimate_message_tokens(messages: Iterable[Message]) -> int:
    """Estimated prompt tokens of a message list."""
    return sum(estimate_text_tokens(m.text) + _MESSAGE_OVERHEAD for m in messages)
