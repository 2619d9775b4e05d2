"""A helper the resilience wrappers share: closing an inner stream however their own stream ends.

``ChatModel.stream`` is typed as an ``AsyncIterator``; the implementations are async generators whose
``aclose`` closes the upstream connection, so a wrapper that stops early must call it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from model_orchestrator.core.response import StreamDelta


@asynccontextmanager
async def closing_stream(deltas: AsyncIterator[StreamDelta]) -> AsyncIterator[AsyncIterator[StreamDelta]]:
    """Yield ``deltas``; on leaving (finished, failed, cancelled, abandoned) close it if it can be."""
    try:
        yield deltas
    finally:
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()
