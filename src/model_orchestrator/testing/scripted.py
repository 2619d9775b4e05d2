"""In-process ``ChatModel`` fakes for strategy, resilience and front-door tests: no HTTP, no provider.

``ScriptedModel`` answers from a list (texts, completions, or errors to raise); ``FunctionModel``
answers with a function of the request. Both record the requests they saw and stream by cutting
the answer into pieces (a ``Completion`` answer's tool calls too, each in pieces). They do not emit
events or price anything (``core.observed`` does).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import replace

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.tokens import estimate_message_tokens, estimate_text_tokens
from model_orchestrator.core.tools import ToolCallDelta
from model_orchestrator.core.usage import Usage

Answer = str | Completion
AnswerFunction = Callable[[ChatRequest], Answer | Awaitable[Answer]]
ScriptEntry = str | Completion | BaseException


class FunctionModel:
    """A ``ChatModel`` whose answer is ``function(request)`` (sync or async).

    A text answer becomes a ``Completion`` with usage counted from the prompt and the text.
    ``delay`` seconds are slept on ``clock`` before answering (pass a ``FakeClock`` to keep tests fast).
    """

    def __init__(
        self,
        function: AnswerFunction,
        *,
        name: str = "function",
        provider: str = "function",
        delay: float = 0.0,
        clock: Clock | None = None,
        chunk_size: int = 4,
    ) -> None:
        self._function = function
        self._name = name
        self._provider = provider
        self._delay = delay
        self._clock = clock or SystemClock()
        self._chunk_size = max(1, chunk_size)
        self.requests: list[ChatRequest] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        if self._delay > 0:
            await self._clock.sleep(self._delay)
        answer = self._function(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return self._completion(request, answer)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        completion = await self.complete(request)
        text = completion.text
        pieces = [text[i : i + self._chunk_size] for i in range(0, len(text), self._chunk_size)]
        for piece in pieces[:-1]:
            yield StreamDelta(text=piece, model=completion.model)
        for delta in _tool_call_deltas(completion):
            yield delta
        yield StreamDelta(
            text=pieces[-1] if pieces else "",
            finish_reason=completion.finish_reason,
            usage=completion.usage,
            model=completion.model,
        )

    async def aclose(self) -> None:
        self.closed = True

    def _completion(self, request: ChatRequest, answer: Answer) -> Completion:
        if isinstance(answer, Completion):
            return answer
        usage = Usage(
            input_tokens=estimate_message_tokens(request.messages),
            output_tokens=estimate_text_tokens(answer),
        )
        completion = Completion(
            text=answer, model=self._name, provider=self._provider, deployment=self._name, usage=usage
        )
        return replace(completion, latency=self._delay)


def _tool_call_deltas(completion: Completion) -> list[StreamDelta]:
    """The answer's tool calls as a provider streams them: the id and name first, the arguments in two
    pieces, so that consumers must join them (``core.tools.assemble_tool_calls``)."""
    deltas = []
    for index, call in enumerate(completion.tool_calls):
        half = len(call.arguments) // 2
        first = ToolCallDelta(index, call.id, call.name, call.arguments[:half])
        rest = ToolCallDelta(index, arguments=call.arguments[half:])
        deltas += [StreamDelta(tool_calls=(piece,), model=completion.model) for piece in (first, rest)]
    return deltas


class ScriptedModel(FunctionModel):
    """A ``ChatModel`` that answers each call with the next script entry; an exception entry is raised.

    Running out of entries raises ``RuntimeError`` unless ``default`` is given.
    """

    def __init__(
        self,
        script: Iterable[ScriptEntry],
        *,
        name: str = "scripted",
        provider: str = "scripted",
        default: Answer | None = None,
        delay: float = 0.0,
        clock: Clock | None = None,
        chunk_size: int = 4,
    ) -> None:
        super().__init__(
            self._next, name=name, provider=provider, delay=delay, clock=clock, chunk_size=chunk_size
        )
        self._script: deque[ScriptEntry] = deque(script)
        self._default = default

    @property
    def remaining(self) -> int:
        """Entries not yet used."""
        return len(self._script)

    def push(self, *entries: ScriptEntry) -> None:
        """Append entries to the script."""
        self._script.extend(entries)

    def _next(self, request: ChatRequest) -> Answer:
        if not self._script:
            if self._default is None:
                raise RuntimeError(f"ScriptedModel {self.name!r} has no answer left for this call")
            return self._default
        entry = self._script.popleft()
        if isinstance(entry, BaseException):
            raise entry
        return entry
