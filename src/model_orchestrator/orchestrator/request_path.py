"""``RequestPath``: what happens to one request between the façade and the chosen model.

It owns, in order: the prompt and options become a ``ChatRequest``; the model is chosen (a name, the
default, or a strategy built on the fly); a ``RequestScope`` (spend, attempt budget, cost cap) is set and
a ``RequestLifecycle`` publishes ``RequestStarted``; a plain model whose estimate cannot fit the cap is
refused before any call; the model answers; the answer becomes an ``OrchestrationResult`` and
``RequestFinished`` is published. ``complete`` and ``stream`` are that path whole or in deltas; ``begin``
opens the scope and lifecycle for another kind of request (validation's judge call). The public surface
and its documentation are the façade's (``facade.py``); the parts come from the ``Runtime``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from model_orchestrator.core.errors import BudgetExceededError, ConfigError
from model_orchestrator.core.explanation import Explanation
from model_orchestrator.core.ids import new_id
from model_orchestrator.core.lifecycle import RequestLifecycle
from model_orchestrator.core.messages import Message
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.money import usd
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, request_scope
from model_orchestrator.core.response import StreamDelta
from model_orchestrator.core.result import OrchestrationResult, result_from_completion
from model_orchestrator.core.stream_start import closing
from model_orchestrator.orchestrator.run_options import request_changes
from model_orchestrator.orchestrator.stream_handle import Publish, StreamHandle, StreamTally

if TYPE_CHECKING:
    from model_orchestrator.orchestrator.runtime import Runtime

Prompt = str | ChatRequest | Sequence[Message]


@dataclass(frozen=True, slots=True)
class Selection:
    """What the caller asked to answer with: a model name, or a strategy built over members."""

    model: str | None = None
    strategy: str | None = None
    members: Sequence[str] | None = None
    options: Mapping[str, object] = field(default_factory=dict)  # the strategy's, Nones dropped


class RequestPath:
    """Runs requests through ``runtime``'s models, publishing each request's start and finish."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._names = runtime.names
        self._clock = runtime.clock

    def default_model(self, needs: frozenset[str] = frozenset()) -> str:
        """The configured ``default_model``, else the cheapest usable model with ``needs`` (the embedded
        one first); the rule is ``config.default_models``'s."""
        from model_orchestrator.config.default_models import default_model

        registry = self._runtime.registry
        return default_model(
            registry.infos(), self._runtime.config.default_model, registry.embedded_model, needs
        )

    def request(self, prompt: Prompt, max_cost: float | None, options: Mapping[str, object]) -> ChatRequest:
        """``prompt`` (text, messages or a ready request) with the request ``options`` applied."""
        system = options.get("system")
        changes = request_changes(options, self._clock.monotonic())
        if max_cost is not None:
            changes["max_cost"] = max_cost
        if isinstance(prompt, str):
            # Built with its options in one go: a text prompt has no request id of its own to keep.
            changes.setdefault("request_id", new_id())
            return ChatRequest.from_prompt(prompt, system=system, **changes)  # type: ignore[arg-type]
        if system is not None:
            raise TypeError("system= is for a text prompt; put a system message first in the messages")
        base = prompt if isinstance(prompt, ChatRequest) else ChatRequest(messages=tuple(prompt))
        changes.setdefault("request_id", base.request_id or new_id())
        return base.with_options(**changes)

    def begin(self, request: ChatRequest, requested: str, strategy: str) -> RequestLifecycle:
        """The scope and lifecycle of ``request`` (not started); ``strategy`` labels it in events."""
        config = self._runtime.config
        budgets = config.budgets
        cap = (
            request.max_cost
            if request.max_cost is not None
            else (budgets.per_request_usd if budgets else None)
        )
        scope = RequestScope(
            request_id=request.request_id or "",
            attempt_budget=config.resilience.max_attempts_per_request,
            max_cost=cap,
        )
        ledger = self._runtime.ledger
        prompt = None
        if ledger is not None and ledger.settings.store_prompts:
            from model_orchestrator.routing.policy import prompt_of

            prompt = prompt_of(request)
        record = config.telemetry.record_content
        return RequestLifecycle(
            self._runtime.events, self._clock, request, requested, strategy, scope, record, prompt
        )

    async def complete(self, request: ChatRequest, selection: Selection) -> OrchestrationResult:
        """Answer ``request`` with the selected model, explained."""
        chat_model, requested, label = self._select(selection, request)
        lifecycle = self.begin(request, requested, label)
        scope = lifecycle.scope
        lifecycle.start()
        try:
            with request_scope(scope):
                self._refuse_over_budget(label, requested, request, scope)
                completion = await chat_model.complete(request)
        except BaseException as exc:
            lifecycle.failed(exc)
            raise
        result = result_from_completion(
            completion,
            requested=requested,
            strategy=label,
            latency=lifecycle.elapsed,
            scope=scope,
            request_id=request.request_id,
        )
        _succeeded(lifecycle, result, completion.explanation)
        return result

    def stream(
        self, prompt: Prompt, max_cost: float | None, options: Mapping[str, object], selection: Selection
    ) -> StreamHandle:
        """A handle on the streamed answer; nothing runs (not even building the request) until it is read."""

        def run(publish: Publish) -> AsyncGenerator[StreamDelta, None]:
            return self._streamed(prompt, max_cost, options, selection, publish)

        return StreamHandle(run)

    async def _streamed(
        self,
        prompt: Prompt,
        max_cost: float | None,
        options: Mapping[str, object],
        selection: Selection,
        publish: Publish,
    ) -> AsyncGenerator[StreamDelta, None]:
        request = self.request(prompt, max_cost, options)
        chat_model, requested, label = self._select(selection, request)
        lifecycle = self.begin(request, requested, label)
        scope = lifecycle.scope
        lifecycle.start()
        tally = StreamTally()
        try:
            with request_scope(scope):
                self._refuse_over_budget(label, requested, request, scope)
                async with closing(chat_model.stream(request)) as deltas:
                    async for delta in deltas:
                        tally.add(delta)
                        yield delta
        except BaseException as exc:
            lifecycle.failed(exc)
            raise
        result = tally.result(
            requested=requested,
            strategy=label,
            latency=lifecycle.elapsed,
            scope=scope,
            request_id=request.request_id,
        )
        _succeeded(lifecycle, result, tally.explanation)
        publish(result)

    def _select(self, selection: Selection, request: ChatRequest) -> tuple[ChatModel, str, str]:
        """(the model to call, the name asked for, the strategy label for the result).

        With no model named, the default model is the cheapest usable one that has what the request
        needs (tools, vision, json_schema), so an image never goes to a text-only default.
        """
        model, strategy, members = selection.model, selection.strategy, selection.members
        if strategy in (None, "single"):
            if members or selection.options:
                raise ConfigError(
                    "members (--chain) and strategy options (--threshold, --ensemble-size) need a --strategy "
                    "such as fallback, cascade or ensemble"
                )
            name = self._names.canonical(model or self.default_model(request.required_capabilities))
            return self._names.fitted(name), name, self._names.kind_of(name)
        chosen = list(members) if members else ([model] if model else None)
        built = self._names.inline(strategy, chosen, selection.options)
        return built, built.name, strategy

    def _refuse_over_budget(
        self, label: str, requested: str, request: ChatRequest, scope: RequestScope
    ) -> None:
        """A plain model under a cost cap: refuse before any call when the estimate cannot fit.

        Strategies check their members themselves; a single model has no strategy to do it.
        """
        if label != "single" or scope.max_cost is None:
            return
        estimate = self._names.profile(requested).estimate_cost(request)
        if estimate is None:
            raise BudgetExceededError(
                f"{requested!r} has no known price, so max_cost {usd(scope.max_cost)} cannot be kept; "
                "nothing was sent (give it a price: in orchestrator.yaml, or drop the cap)"
            )
        if estimate > scope.max_cost:
            raise BudgetExceededError(
                f"{requested!r} would cost about {usd(estimate)} for this request (prompt estimate plus "
                f"reserved output), over max_cost {usd(scope.max_cost)}; nothing was sent (raise the cap, "
                "lower --max-tokens, or choose a cheaper model)"
            )


def _succeeded(
    lifecycle: RequestLifecycle, result: OrchestrationResult, explanation: Explanation | None
) -> None:
    """Publish the request's success as its result says it (whole or streamed, the same fields)."""
    lifecycle.succeeded(
        model_used=result.model_used,
        cost=result.cost,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        explanation=explanation,
        response_text=result.response,
    )
