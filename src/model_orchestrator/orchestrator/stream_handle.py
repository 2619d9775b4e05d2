"""``StreamHandle``: one streamed request, iterated for its deltas and closed structurally.

It owns the shape of a stream for its caller (httpx's ``client.stream()``, pydantic-ai's
``StreamedResponse.get()``): ``async with orch.stream(...) as s`` yields the handle, ``async for delta in s``
reads the answer, leaving the block closes the stream (and with it the upstream connection), and
``s.result()`` gives the ``OrchestrationResult`` once the stream ended. It does not pick models or
publish events: the façade's request path does, and hands the result over through ``publish``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from types import TracebackType

from model_orchestrator.core.errors import StreamNotFinishedError
from model_orchestrator.core.explanation import Explanation
from model_orchestrator.core.request_scope import RequestScope
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta, TokenLogprob
from model_orchestrator.core.result import OrchestrationResult, result_from_completion
from model_orchestrator.core.tools import ToolCallDelta, assemble_tool_calls
from model_orchestrator.core.usage import Usage

Publish = Callable[[OrchestrationResult], None]


class StreamHandle:
    """A streamed answer: an async iterator of ``StreamDelta`` and an async context manager yielding itself.

    ``async for`` on the handle reads the deltas (the stream closes when they end); ``aclose()`` or
    leaving ``async with`` closes it early, and the request is then recorded as cancelled with the
    usage spent so far. ``result()`` is the explained answer, available once every delta was read.
    """

    __slots__ = ("_deltas", "_result")

    def __init__(self, run: Callable[[Publish], AsyncGenerator[StreamDelta, None]]) -> None:
        self._result: OrchestrationResult | None = None
        self._deltas = run(self._publish)

    def _publish(self, result: OrchestrationResult) -> None:
        self._result = result

    def __aiter__(self) -> AsyncGenerator[StreamDelta, None]:
        # The producer itself, so a delta crosses no extra frame.
        return self._deltas

    async def __anext__(self) -> StreamDelta:
        return await self._deltas.__anext__()

    async def aclose(self) -> None:
        """Close the stream (and the upstream connection) now; a second call does nothing."""
        await self._deltas.aclose()

    async def __aenter__(self) -> StreamHandle:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def finished(self) -> bool:
        """True once the stream ended with its last delta read (``result()`` is then available)."""
        return self._result is not None

    def result(self) -> OrchestrationResult:
        """The ``OrchestrationResult`` of the streamed request: response text, model, cost (every attempt
        included, as ``complete`` reports it), usage, attempts and the strategy's explanation.

        Raises ``StreamNotFinishedError`` while deltas remain, or when the stream was closed early or failed.
        """
        if self._result is None:
            raise StreamNotFinishedError(
                "the stream has not ended, so it has no result yet: read every delta first "
                "(async for delta in stream), then call result()"
            )
        return self._result


@dataclass(slots=True)
class StreamTally:
    """What a stream's result needs, gathered delta by delta: the text, tool calls, the last usage,
    model, finish reason and explanation."""

    texts: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    usage: Usage | None = None
    model: str | None = None
    finish_reason: FinishReason | None = None
    explanation: Explanation | None = None

    def add(self, delta: StreamDelta) -> None:
        """Count ``delta`` in."""
        self.texts.append(delta.text)
        if delta.tool_calls:
            self.tool_calls.extend(delta.tool_calls)
        if delta.logprobs:
            self.logprobs.extend(delta.logprobs)
        if delta.usage is not None:
            self.usage = delta.usage
        if delta.model is not None and (self.model is None or delta.usage is not None):
            self.model = delta.model
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
        if delta.explanation is not None:
            self.explanation = delta.explanation

    @property
    def text(self) -> str:
        """The answer's text so far."""
        return "".join(self.texts)

    def result(
        self, *, requested: str, strategy: str, latency: float, scope: RequestScope, request_id: str | None
    ) -> OrchestrationResult:
        """The streamed answer explained as ``complete`` would explain it (``core.result``)."""
        completion = Completion(
            text=self.text,
            model=self.model or requested,
            provider=scope.answered_by[0],
            deployment=scope.answered_by[1],
            usage=self.usage or Usage(),
            cost=scope.total_cost,
            finish_reason=self.finish_reason or FinishReason.STOP,
            logprobs=tuple(self.logprobs) or None,
            explanation=self.explanation,
            tool_calls=assemble_tool_calls(self.tool_calls),
        )
        return result_from_completion(
            completion,
            requested=requested,
            strategy=strategy,
            latency=latency,
            scope=scope,
            request_id=request_id,
        )
