"""``LayeredStream``: one streamed attempt that the per-deployment layers attach hooks to.

Owns the order in which a deployment's layers (circuit breaker, cooldown, rate limiter, ``ObservedModel``)
see one streamed attempt, without an async-generator frame per layer per delta. Each layer is a
``StreamLayerModel`` that gives one ``StreamHooks`` per attempt; the layers of one stack share a single
``LayeredStream`` over the stream of the first model below them that is not such a layer, and the hooks
run in the order the layers' nested generators ran them:

- ``begin`` before the inner stream is opened, outermost first (admit, check a cooldown, take a token);
- ``delta`` on every delta as it is read, innermost first (only layers that override it);
- on the way out innermost first: ``end`` when the stream finished, ``error`` when it failed (the inner
  stream's failure, or an earlier layer's ``begin``, ``end`` or ``error`` raising; a hook that raises
  replaces the error for the layers outside it, as a ``raise`` in a nested generator does);
- on ``aclose`` before the end (the consumer left early): the ``closes_first`` layers' ``close``
  outermost first, then the inner stream is closed (once), then the other layers' ``close`` innermost
  first (where a generator's ``except GeneratorExit`` sat outside its ``async with closing(...)``).

A layer with ``hold_until_content`` (the breaker) makes the stream read ahead to the first text or tool
call before passing anything on: a stream that ends empty reaches that layer's ``end`` before the
consumer sees any delta (``empty_fails``: its ``end`` raises, so nothing is passed on), as
``start_stream`` did. It does not decide what a layer does with an outcome (each layer's hooks do), and
it does not retry or time anything (``RetryingModel`` and ``TimeoutModel`` wrap it as streams).

Closing is structural, as for a generator: a stream never read opens nothing, ``aclose`` after the
end does nothing, and one abandoned while open is closed on its loop when it is collected (as asyncio
does for an async generator).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import ClassVar

from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import StreamDelta
from model_orchestrator.core.stream_start import close_stream, has_content
from model_orchestrator.core.wrapper import WrapperModel

_NEW, _OPENING, _STREAMING, _DONE = range(4)


class StreamHooks:
    """What one layer does for one streamed attempt; every hook is optional (the defaults do nothing)."""

    __slots__ = ()

    hold_until_content: ClassVar[bool] = False
    """Read ahead to the first content before passing a delta on (see the module docstring)."""
    empty_fails: bool = False
    """With ``hold_until_content``: ``end`` raises for a stream without content (nothing is passed on)."""
    closes_first: ClassVar[bool] = False
    """``close`` runs before the inner stream is closed (outermost first), not after it."""

    async def begin(self) -> None:
        """Before the inner stream is opened; raising stops the attempt (the layers outside see the error)."""

    def delta(self, delta: StreamDelta) -> None:
        """Each delta as it is read (innermost layer first)."""

    async def end(self, stream: LayeredStream) -> None:
        """The inner stream finished; ``stream.has_content`` tells whether it gave any content."""

    async def error(self, error: BaseException) -> None:
        """The attempt failed with ``error`` (cancellation included); it is raised on after this hook."""

    async def close(self) -> None:
        """The consumer closed the stream before its end."""


class LayeredStream:
    """One streamed attempt through a deployment's layers; see the module docstring."""

    __slots__ = (
        "_content",
        "_held",
        "_hold_at",
        "_layers",
        "_live_from",
        "_loop",
        "_on_delta",
        "_open",
        "_source",
        "_state",
    )

    def __init__(self, open_source: Callable[[], AsyncIterator[StreamDelta]]) -> None:
        self._open = open_source
        self._layers: list[StreamHooks] = []  # innermost first
        self._on_delta: tuple[Callable[[StreamDelta], None], ...] = ()
        self._source: AsyncIterator[StreamDelta] | None = None
        self._state = _NEW
        self._held: deque[StreamDelta] | None = None
        self._hold_at: int | None = None
        self._live_from = 0  # the innermost layer that has not yet seen the end
        self._content = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def has_content(self) -> bool:
        """Whether a delta with text or a tool-call piece was read (tracked only when a layer holds)."""
        return self._content

    def add(self, hooks: StreamHooks) -> None:
        """Attach the hooks of the next layer out (before the stream is read)."""
        if self._state != _NEW:
            raise RuntimeError("a layer joins a stream before it is read")
        if type(hooks).delta is not StreamHooks.delta:
            self._on_delta = (*self._on_delta, hooks.delta)
        if hooks.hold_until_content and self._hold_at is None:
            self._hold_at = len(self._layers)
        self._layers.append(hooks)

    def __aiter__(self) -> LayeredStream:
        return self

    async def __anext__(self) -> StreamDelta:
        if self._state != _STREAMING:
            if self._state == _NEW:
                return await self._first()
            raise StopAsyncIteration
        held = self._held
        if held:
            return held.popleft()
        source = self._source
        if source is None:  # an empty stream's held deltas were all passed on: the holder's end is due
            await self._unwind(None, self._live_from)
            raise StopAsyncIteration
        try:
            delta = await source.__anext__()
        except StopAsyncIteration:
            await self._unwind(None, 0)
            raise
        except BaseException as exc:
            await self._unwind(exc, 0)
            raise  # not reached: ``_unwind`` raises
        for hook in self._on_delta:
            hook(delta)
        return delta

    async def _first(self) -> StreamDelta:
        self._state = _OPENING
        self._loop = asyncio.get_running_loop()
        layers = self._layers
        for index in range(len(layers) - 1, -1, -1):
            try:
                await layers[index].begin()
            except BaseException as exc:  # noqa: BLE001 - handed to the layers outside, then raised
                await self._unwind(exc, index + 1)
        try:
            self._source = self._open()
        except BaseException as exc:  # noqa: BLE001 - handed to every layer, then raised
            await self._unwind(exc, 0)
        self._state = _STREAMING
        if self._hold_at is not None:
            return await self._read_ahead(self._hold_at)
        return await self.__anext__()

    async def _read_ahead(self, hold_at: int) -> StreamDelta:
        """Read to the first content, holding what comes before it (see the module docstring)."""
        source = self._source
        assert source is not None
        held: deque[StreamDelta] = deque()
        while True:
            try:
                delta = await source.__anext__()
            except StopAsyncIteration:
                break
            except BaseException as exc:
                await self._unwind(exc, 0)
                raise  # not reached
            for hook in self._on_delta:
                hook(delta)
            if has_content(delta):
                self._content = True
                if not held:
                    return delta
                held.append(delta)
                self._held = held
                return held.popleft()
            held.append(delta)
        # Ended without content: the layers inside the holder see the end now.
        await self._unwind(None, 0, hold_at)
        if held and not self._layers[hold_at].empty_fails:
            # The held deltas are passed on; the holder and the layers outside it see the end after them.
            self._state, self._source, self._live_from, self._held = _STREAMING, None, hold_at, held
            return held.popleft()
        await self._unwind(None, hold_at)
        raise StopAsyncIteration

    async def _unwind(self, error: BaseException | None, start: int, stop: int | None = None) -> None:
        """Run ``end`` (or ``error``) of ``layers[start:stop]``, innermost first; raise the outcome."""
        self._state = _DONE
        for hooks in self._layers[start:stop]:
            try:
                if error is None:
                    await hooks.end(self)
                else:
                    await hooks.error(error)
            except BaseException as raised:  # noqa: BLE001 - a layer's raise replaces the error outside it
                error = raised
        if error is not None:
            raise error

    async def aclose(self) -> None:
        """Close the attempt (once): the layers see a cancel, the inner stream is closed."""
        state, self._state = self._state, _DONE
        if state != _STREAMING:
            return
        layers = self._layers[self._live_from :]
        source, self._source = self._source, None
        try:
            for hooks in reversed(layers):
                if hooks.closes_first:
                    await hooks.close()
        finally:
            try:
                if source is not None:
                    await close_stream(source)
            finally:
                for hooks in layers:
                    if not hooks.closes_first:
                        await hooks.close()

    def __del__(self) -> None:
        # Abandoned unclosed (a caller's ``async for`` left early without closing): closed on its loop, as
        # asyncio closes an abandoned async generator, so the layers still see the cancel.
        loop = self._loop
        if self._state == _STREAMING and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.create_task, self.aclose())


class StreamLayerModel(WrapperModel):
    """A wrapper whose streams are hooks on the ``LayeredStream`` it shares with the layers inside it."""

    def stream_hooks(self, request: ChatRequest) -> StreamHooks:
        """This layer's hooks for one streamed attempt of ``request``."""
        raise NotImplementedError

    def stream(self, request: ChatRequest) -> LayeredStream:
        inner = self.inner
        if isinstance(inner, StreamLayerModel):
            stream = inner.stream(request)
        else:
            stream = LayeredStream(partial(inner.stream, request))
        stream.add(self.stream_hooks(request))
        return stream
