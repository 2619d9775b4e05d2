"""The one seam: ``ChatModel``. Adapters, resilience wrappers and strategies all implement it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers chat requests.

    ``complete`` returns one ``Completion`` or raises an ``OrchestratorError``; ``stream`` yields
    ``StreamDelta`` pieces whose concatenated text equals what ``complete`` would return, the last
    carrying the finish reason and usage. ``aclose`` releases connections and processes.
    """

    @property
    def name(self) -> str:
        """The name users know this model by (config name, catalogue name or strategy name)."""
        ...

    async def complete(self, request: ChatRequest) -> Completion: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]: ...

    async def aclose(self) -> None: ...
