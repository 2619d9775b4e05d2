"""Chat messages: who said what. Owns roles and text parts; not how any provider encodes them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """The speaker of a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class TextPart:
    """One piece of text content."""

    text: str


@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn: a role and its content parts."""

    role: Role
    parts: tuple[TextPart, ...]

    @property
    def text(self) -> str:
        """The message's text, parts joined without separators."""
        if len(self.parts) == 1:
            return self.parts[0].text
        return "".join(p.text for p in self.parts)

    @classmethod
    def of(cls, role: Role | str, text: str) -> Message:
        """A one-part message, e.g. ``Message.of("user", "hi")``."""
        return cls(Role(role), (TextPart(text),))

    @classmethod
    def system(cls, text: str) -> Message:
        """A system message."""
        return cls(Role.SYSTEM, (TextPart(text),))

    @classmethod
    def user(cls, text: str) -> Message:
        """A user message."""
        return cls(Role.USER, (TextPart(text),))

    @classmethod
    def assistant(cls, text: str) -> Message:
        """An assistant message."""
        return cls(Role.ASSISTANT, (TextPart(text),))
