"""Server-sent events: turning a body's lines into events, per the WHATWG rules.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
Owns field parsing, multi-line ``data``, comments and blank-line dispatch. It does not decode the event
payloads (each wire format's adapter does) and does not split bytes into lines (``http.HttpStream``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from model_orchestrator.core.frozen import quick_init

_BOM = b"\xef\xbb\xbf"  # U+FEFF, the byte order mark, in UTF-8: dropped from the first line only


@quick_init
@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its type (None when the stream gave none), data and last event id."""

    event: str | None
    data: str
    id: str | None = None


async def iter_sse(lines: AsyncIterator[bytes]) -> AsyncIterator[SseEvent]:
    """The events of a stream of lines (without line endings).

    An event still open when the lines end is discarded, as the spec says: a stream cut off
    mid-event must not look like a complete one. ``data`` lines, nearly every line of a model's
    stream, are matched first, and on the bytes: the field name and the colon are ASCII, so decoding
    only the value gives what decoding the line and cutting it would, for less work per line.
    """
    event: str | None = None
    data: list[str] = []
    last_id: str | None = None
    first = True
    async for line in lines:
        if first:
            line = line.removeprefix(_BOM)
            first = False
        if line.startswith(b"data:"):
            data.append(
                (line[6:] if line.startswith(b" ", 5) else line[5:]).decode("utf-8", errors="replace")
            )
        elif not line:
            if data:
                yield SseEvent(event, data[0] if len(data) == 1 else "\n".join(data), last_id)
                data = []
            event = None
        elif not line.startswith(b":"):
            name, sep, value = line.decode("utf-8", errors="replace").partition(":")
            value = value.removeprefix(" ") if sep else ""
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value or None
            elif name == "id" and "\0" not in value:
                last_id = value
            # "retry" and unknown fields are ignored: reconnection is not ours to do.
