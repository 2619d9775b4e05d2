"""Server-sent events: turning a body's lines into events, per the WHATWG rules.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
Owns field parsing, multi-line ``data``, comments and blank-line dispatch. It does not decode the event
payloads (each wire format's adapter does) and does not split bytes into lines (``http.HttpStream``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its type (None when the stream gave none), data and last event id."""

    event: str | None
    data: str
    id: str | None = None


class _Pending:
    """The event being assembled between blank lines."""

    __slots__ = ("data", "event", "last_id")

    def __init__(self) -> None:
        self.event: str | None = None
        self.data: list[str] = []
        self.last_id: str | None = None

    def apply(self, name: str, value: str) -> None:
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value or None
        elif name == "id" and "\0" not in value:
            self.last_id = value
        # "retry" and unknown fields are ignored: reconnection is not ours to do.

    def dispatch(self) -> SseEvent | None:
        """The event to deliver at a blank line (None when no data arrived), resetting type and data."""
        event = SseEvent(self.event, "\n".join(self.data), self.last_id) if self.data else None
        self.event = None
        self.data = []
        return event


async def iter_sse(lines: AsyncIterator[bytes]) -> AsyncIterator[SseEvent]:
    """The events of a stream of lines (without line endings).

    An event still open when the lines end is discarded, as the spec says: a stream cut off
    mid-event must not look like a complete one.
    """
    pending = _Pending()
    first = True
    async for raw in lines:
        line = raw.decode("utf-8", errors="replace")
        if first:
            line = line.removeprefix(_BOM)
            first = False
        if not line:
            event = pending.dispatch()
            if event is not None:
                yield event
        elif not line.startswith(":"):
            name, sep, value = line.partition(":")
            pending.apply(name, value.removeprefix(" ") if sep else "")
