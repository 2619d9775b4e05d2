"""``ContextFitModel``: a model or strategy whose requests are checked against its context window first.

Owns the overflow setting (``context: {overflow: ...}`` in config, ``ChatRequest.context_overflow`` per
request, which wins): ``error`` refuses before anything is sent, naming the estimate, the window and the
settings that would fix it; ``truncate-start|end|middle`` and ``smart`` cut the conversation
(``context_window.fit_conversation``); ``summarize`` has older turns summarised first. What was cut goes
into the answer's explanation as the ``context`` fact. How messages are chosen lives in
``context_window``; this module only decides when, and explains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial

from model_orchestrator.core.errors import ConfigError, ContextWindowExceededError
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import CONTEXT_OVERFLOW_MODES, ChatRequest, ContextOverflow
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import DeferredStream, closing
from model_orchestrator.core.tokens import estimate_message_tokens
from model_orchestrator.core.wrapper import WrapperModel
from model_orchestrator.strategies.context_window import (
    ContextFit,
    TruncationMode,
    fit_conversation,
    summarize_conversation,
)

DEFAULT_OVERFLOW: ContextOverflow = "error"
"""A model's setting when config names none: refusing is the safe default (nothing is silently lost)."""
REFIT_SHARE = 0.7
"""The share of the window a cut aims at after the provider refused a prompt the estimate let through:
the estimate is under a real tokenizer's count by more than 30 % for about 4 % of prompts (see
docs/decisions.md)."""

_TRUNCATIONS: dict[str, TruncationMode] = {
    "truncate-start": "start",
    "truncate-end": "end",
    "truncate-middle": "middle",
    "smart": "smart",
}
_FIX = (
    "shorten the prompt, lower max_tokens, choose a model with a larger context window, or let it be cut: "
    "context: {overflow: truncate-start} (or truncate-end, truncate-middle, smart, summarize) in "
    "orchestrator.yaml, --context-overflow on the CLI, orchestrator.context_overflow in a gateway request"
)
Facts = dict[str, object]


class ContextFitModel(WrapperModel):
    """Wraps ``inner``: each request is fitted to ``profile.context_window`` before ``inner`` sees it.

    ``overflow`` is the configured setting; None (strategies without a ``context:`` block) leaves requests
    alone unless the request itself names a setting. An unknown window is never checked. ``summarizer``
    returns the model that writes summaries (default: ``inner``).
    """

    def __init__(
        self,
        inner: ChatModel,
        profile: ModelProfile,
        *,
        overflow: ContextOverflow | None,
        summarizer: Callable[[], ChatModel] | None = None,
    ) -> None:
        super().__init__(inner)
        self._profile = profile
        self._overflow = _checked(overflow)
        self._summarizer = summarizer

    async def complete(self, request: ChatRequest) -> Completion:
        fitted, facts = await self._fit(request)
        try:
            completion = await self.inner.complete(fitted)
        except ContextWindowExceededError:
            retry = await self._refit(request)
            if retry is None:
                raise
            fitted, facts = retry
            completion = await self.inner.complete(fitted)
        if facts is None:
            return completion
        explanation = _with_facts(completion.explanation, self.name, completion, facts)
        return replace(completion, explanation=explanation)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        # Fitted at the first read; the fitted stream is then handed on as it is (no frame of ours per
        # delta) unless a refusal may be refitted.
        return DeferredStream(partial(self._open, request))

    async def _open(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        fitted, facts = await self._fit(request)
        deltas = self._deltas(fitted, facts)
        if (_checked(request.context_overflow) or self._overflow) not in _TRUNCATIONS:
            return deltas  # a provider's refusal is not refitted under this setting (``_refit``)
        return self._refitting(request, deltas)

    async def _refitting(
        self, request: ChatRequest, deltas: AsyncIterator[StreamDelta]
    ) -> AsyncIterator[StreamDelta]:
        """``deltas``; when the provider refuses the prompt before any delta, the refitted prompt's."""
        started = False
        try:
            # Closed now, not at garbage collection, when a consumer stops early.
            async with closing(deltas):
                async for delta in deltas:
                    started = True
                    yield delta
        except ContextWindowExceededError:
            retry = None if started else await self._refit(request)
            if retry is None:
                raise
            async with closing(self._deltas(*retry)) as deltas:
                async for delta in deltas:
                    yield delta

    def _deltas(self, fitted: ChatRequest, facts: Facts | None) -> AsyncIterator[StreamDelta]:
        """The inner stream of ``fitted``; with ``facts`` (the prompt was cut), its closing delta explains
        the cut. A prompt that fitted adds no frame per delta."""
        deltas = self.inner.stream(fitted)
        return deltas if facts is None else self._explained(deltas, facts)

    async def _explained(
        self, deltas: AsyncIterator[StreamDelta], facts: Facts
    ) -> AsyncIterator[StreamDelta]:
        async with closing(deltas):
            async for delta in deltas:
                if delta.finish_reason is not None:
                    delta = replace(delta, explanation=_with_facts(delta.explanation, self.name, None, facts))
                yield delta

    async def _refit(self, request: ChatRequest) -> tuple[ChatRequest, Facts] | None:
        """After the provider refused a prompt our estimate let through: a cut to ``REFIT_SHARE`` of the
        window, when the setting cuts (never for error or summarize) and that changes the prompt."""
        mode = _checked(request.context_overflow) or self._overflow
        if mode not in _TRUNCATIONS:
            return None
        fitted, facts = await self._fit(request, share=REFIT_SHARE)
        if facts is None:
            return None
        return fitted, {**facts, "refit_after_refusal": True}

    async def _fit(self, request: ChatRequest, *, share: float = 1.0) -> tuple[ChatRequest, Facts | None]:
        mode = _checked(request.context_overflow) or self._overflow
        full = self._profile.context_window
        if mode is None or full is None:
            return request, None
        window = int(full * share)
        prompt = estimate_message_tokens(request.messages)
        reserved = self._profile.reserved_output(request)
        if prompt + reserved <= window:
            return request, None
        if mode == "error":
            raise ContextWindowExceededError(
                f"the prompt needs about {prompt} tokens plus {reserved} reserved for the answer, more than "
                f"the context window of {window} tokens of {self.name!r}; nothing was sent "
                f"(context overflow setting: error). To fix: {_FIX}",
                deployment=self.name,
            )
        if mode == "summarize":
            summarizer = self._summarizer() if self._summarizer is not None else self.inner
            fit = await summarize_conversation(
                request.messages,
                summarizer,
                context_window=window,
                reserved_output=reserved,
                request_id=request.request_id,
            )
        else:
            fit = fit_conversation(
                request.messages,
                context_window=window,
                reserved_output=reserved,
                mode=_TRUNCATIONS[mode],
                cut_text=True,
            )
        return request.with_options(messages=fit.messages), _facts(mode, window, reserved, prompt, fit)


def _checked(mode: str | None) -> ContextOverflow | None:
    if mode is not None and mode not in CONTEXT_OVERFLOW_MODES:
        raise ConfigError(
            f"unknown context overflow setting {mode!r}; expected one of: {', '.join(CONTEXT_OVERFLOW_MODES)}"
        )
    return mode  # type: ignore[return-value]


def _facts(mode: str, window: int, reserved: int, before: int, fit: ContextFit) -> Facts:
    """The explanation's ``context`` fact: what the setting removed, in messages, characters and tokens."""
    after = estimate_message_tokens(fit.messages)
    parts = []
    if fit.summarized_messages:
        parts.append(f"{fit.summarized_messages} earlier message(s) summarised")
    if fit.dropped_messages:
        parts.append(f"{fit.dropped_messages} message(s) dropped")
    if fit.cut_characters:
        parts.append(f"{fit.cut_characters} characters cut from the last message")
    return {
        "overflow": mode,
        "context_window": window,
        "reserved_output": reserved,
        "estimated_prompt_tokens": before,
        "estimated_prompt_tokens_sent": after,
        "dropped_messages": fit.dropped_messages,
        "cut_characters": fit.cut_characters,
        "summarized_messages": fit.summarized_messages,
        "summary": (
            f"the prompt (about {before} tokens) did not fit {window} tokens minus {reserved} for the "
            f"answer; {', '.join(parts) or 'nothing removed'} ({mode}), about {after} tokens sent"
        ),
    }


def _with_facts(
    explanation: Explanation | None, name: str, completion: Completion | None, facts: Facts
) -> Explanation:
    """``explanation`` with the ``context`` fact; a plain model's answer gets a one-step explanation."""
    if explanation is None:
        steps = () if completion is None else (_answered(name, completion),)
        explanation = Explanation(strategy="single", steps=steps, chosen=name)
    return replace(explanation, facts=(*explanation.facts, ("context", facts)))


def _answered(name: str, completion: Completion) -> StepRecord:
    return StepRecord(
        model=name,
        outcome="ok",
        cost=completion.cost,
        input_tokens=completion.usage.input_tokens,
        output_tokens=completion.usage.output_tokens,
        latency=completion.latency,
    )
