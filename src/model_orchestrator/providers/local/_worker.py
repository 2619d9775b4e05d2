"""Running one generation on a dedicated thread and handing its pieces to the event loop.

Owns the thread, the queue between thread and loop, and stopping early (a flag the engine checks between
tokens). Does not know about requests or errors (see ``adapter``) nor about llama.cpp (see ``_engine``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from model_orchestrator.providers.local._engine import Outcome, Piece


@dataclass(frozen=True, slots=True)
class _Ended:
    outcome: Outcome | None
    error: BaseException | None


Generation = Callable[[Callable[[Piece], None], threading.Event], Outcome]


class GenerationRun:
    """``generation(emit, cancelled)`` running on its own thread, read with ``next_piece``/``outcome``.

    A dedicated thread rather than the loop's default executor: calls queue on the engine's lock, and
    waiting threads must not starve the executor that everything else uses.
    """

    def __init__(self, generation: Generation) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Piece | _Ended] = asyncio.Queue()
        self._cancelled = threading.Event()
        self._ended: _Ended | None = None
        self._generation = generation
        threading.Thread(target=self._work, name="local-model-generation", daemon=True).start()

    async def next_piece(self) -> Piece | None:
        """The next piece, or None once generation has ended (then read ``outcome``)."""
        if self._ended is not None:
            return None
        item = await self._queue.get()
        if isinstance(item, _Ended):
            self._ended = item
            return None
        return item

    def outcome(self) -> Outcome:
        """How generation ended; re-raises what the generation raised."""
        assert self._ended is not None, "outcome() before next_piece() returned None"
        if self._ended.error is not None:
            raise self._ended.error
        assert self._ended.outcome is not None
        return self._ended.outcome

    async def stop(self) -> None:
        """Ask the thread to stop between tokens and wait until it has (the engine lock is then free)."""
        self._cancelled.set()
        while await self.next_piece() is not None:
            pass

    def _work(self) -> None:
        try:
            ended = _Ended(self._generation(self._emit, self._cancelled), None)
        except Exception as exc:  # noqa: BLE001 - handed to the loop, which re-raises it in the caller
            ended = _Ended(None, exc)
        self._emit(ended)

    def _emit(self, item: Piece | _Ended) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            # The loop is closed: nobody is listening, so stop generating.
            self._cancelled.set()
