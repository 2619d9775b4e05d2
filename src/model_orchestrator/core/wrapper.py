"""``WrapperModel``: the base of every ``ChatModel`` that wraps another (pydantic-ai's ``WrapperModel``).

Owns forwarding what a wrapper does not change: ``name``, ``aclose``, and ``complete``/``stream`` for a
wrapper that only changes one of them. A subclass overrides what it adds to (a retry loop, a circuit, a
timer) and calls ``self.inner``. It does not decide the order of the layers (``config.deployment_stack``
does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta


class WrapperModel:
    """A ``ChatModel`` around ``inner`` that forwards every call to it unchanged until a subclass
    overrides one."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    @property
    def name(self) -> str:
        """The wrapped model's name: a wrapper is the same model to its callers."""
        return self.inner.name

    async def complete(self, request: ChatRequest) -> Completion:
        return await self.inner.complete(request)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        return self.inner.stream(request)

    async def aclose(self) -> None:
        """Close the wrapped model (connections, processes); a wrapper holds nothing of its own to close."""
        await self.inner.aclose()
