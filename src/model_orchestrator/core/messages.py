"""Chat messages: who said what. Owns roles, text and image parts, tool calls and tool results; not how
any provider encodes them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from model_orchestrator.core.frozen import quick_init
from model_orchestrator.core.tools import ToolCall


class Role(StrEnum):
    """The speaker of a message. ``tool`` messages carry a tool's result back to the model."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@quick_init
@dataclass(frozen=True, slots=True)
class TextPart:
    """One piece of text content. ``cache_breakpoint`` asks providers with prompt caching to cache the
    prompt up to and including this part (a ``cache_control`` marker on the wire); others ignore it."""

    text: str
    cache_breakpoint: bool = False


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image: an ``http(s)`` URL or a ``data:<media type>;base64,<data>`` URL.

    ``detail`` is the caller's resolution hint (``low``, ``high``, ``auto``) for providers that take one.
    """

    url: str
    detail: str | None = None
    cache_breakpoint: bool = False

    @property
    def is_data(self) -> bool:
        """True for an inline base64 ``data:`` URL."""
        return self.url.startswith("data:")

    def data(self) -> tuple[str, str]:
        """``(media_type, base64_data)`` of a ``data:`` URL; ``ValueError`` for anything else."""
        header, sep, payload = self.url.partition(",")
        if not (self.is_data and sep and header.endswith(";base64")):
            raise ValueError("not a base64 data URL (expected data:<media type>;base64,<data>)")
        return header[len("data:") : -len(";base64")] or "application/octet-stream", payload


ContentPart = TextPart | ImagePart


@quick_init
@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn: a role and its content parts.

    An assistant turn may carry ``tool_calls`` (with or without text); a ``tool`` turn answers the call
    whose id is ``tool_call_id``, its parts holding the result.
    """

    role: Role
    parts: tuple[ContentPart, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The message's text, text parts joined without separators (images are left out)."""
        parts = self.parts
        if len(parts) == 1 and isinstance(parts[0], TextPart):
            return parts[0].text
        return "".join(p.text for p in parts if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        """The message's image parts, in order."""
        return tuple(p for p in self.parts if isinstance(p, ImagePart))

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
    def assistant(cls, text: str, tool_calls: tuple[ToolCall, ...] = ()) -> Message:
        """An assistant message, with the tool calls it made if any."""
        return cls(Role.ASSISTANT, (TextPart(text),) if text else (), tool_calls)

    @classmethod
    def tool_result(cls, tool_call_id: str, text: str) -> Message:
        """The result of the tool call ``tool_call_id``, sent back to the model."""
        return cls(Role.TOOL, (TextPart(text),), tool_call_id=tool_call_id)
