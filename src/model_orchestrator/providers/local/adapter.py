"""``LocalModel``: the embedded SmolLM2-135M-Instruct (or any chat GGUF) run on the CPU by llama.cpp.

Owns turning a ``ChatRequest`` into a generation job, streaming its pieces from the worker thread,
assembling the ``Completion`` (usage, finish reason, logprobs, latency) and translating failures into
the core error hierarchy. Does not load or run the model itself (``_engine``) nor own the thread
(``_worker``). Cost is not its concern: a local model is priced as free by the wrapper that observes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import random
import threading
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import (
    CapabilityNotSupportedError,
    ConfigError,
    ContextWindowExceededError,
    OrchestratorError,
    ServerError,
)
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta, TokenLogprob
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.local._engine import (
    GREEDY_SEED,
    INSTALL_HINT,
    ContextOverflowError,
    EngineKey,
    GenerationJob,
    Outcome,
    Piece,
    UnsupportedSchemaError,
    get_engine,
)
from model_orchestrator.providers.local._weights import find_embedded_model
from model_orchestrator.providers.local._worker import GenerationRun
from model_orchestrator.providers.refusals import refuse_unsupported

DEFAULT_MAX_TOKENS = 256
# Used when a request brings no system message. SmolLM2's template otherwise injects its own
# ("You are a helpful AI assistant named SmolLM, ..."), with which the Q4_1 build rambles in French on
# "What is the capital of France?" but answers "The capital of France is Paris." with this one.
DEFAULT_SYSTEM = "You are a helpful assistant."
# A JSON schema is enforced by a llama.cpp grammar built from it, so the answer always parses and matches.
# Tools are not offered: a small model constrained to a call's shape would still choose tools and
# arguments badly, and calling that a tool-capable model would mislead routing. It reads no images.
SUPPORTED = frozenset({"json_schema"})


class LocalModel:
    """A GGUF chat model on the CPU; the embedded SmolLM2-135M-Instruct unless ``model_path`` is given.

    Nothing is imported or loaded until the first call. Temperature 0 (the default) is greedy decoding,
    so the same request gives the same answer. ``seed`` fixes sampling at higher temperatures; without it
    each sampled call draws a fresh seed. Asking for logprobs loads a second instance that keeps the
    logits of every position (about ``n_ctx`` x 49k floats, ~400 MB at n_ctx 2048), only when first asked.
    ``default_system`` is added when a request has no system message (None: the model template's own).
    """

    def __init__(
        self,
        *,
        name: str = "local/smollm2-135m",
        model_path: str | Path | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        deployment: str | None = None,
        provider: str = "local",
        seed: int | None = None,
        default_system: str | None = DEFAULT_SYSTEM,
        clock: Clock | None = None,
    ) -> None:
        self._name = name
        self._model_path = Path(model_path) if model_path is not None else None
        self._n_ctx = n_ctx
        self._n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self._deployment = deployment or "local:smollm2-135m"
        self._provider = provider
        self._seed = seed
        self._default_system = default_system
        self._clock = clock or SystemClock()

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"LocalModel(name={self._name!r}, model_path={self._model_path!r}, n_ctx={self._n_ctx})"

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        texts: list[str] = []
        logprobs: list[TokenLogprob] = []
        last = StreamDelta()
        async with contextlib.aclosing(self.stream(request)) as deltas:
            async for delta in deltas:
                texts.append(delta.text)
                logprobs.extend(delta.logprobs)
                last = delta
        return Completion(
            text="".join(texts),
            model=self._name,
            provider=self._provider,
            deployment=self._deployment,
            usage=last.usage or Usage(),
            latency=self._clock.monotonic() - started,
            finish_reason=last.finish_reason or FinishReason.UNKNOWN,
            logprobs=tuple(logprobs) if request.logprobs else None,
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamDelta, None]:
        refuse_unsupported(
            request,
            supported=SUPPORTED,
            model=self._name,
            provider=self._provider,
            deployment=self._deployment,
            reason="the embedded model reads text and answers text or JSON",
        )
        run = GenerationRun(functools.partial(self._generate, self._job(request), request.logprobs))
        try:
            while (piece := await run.next_piece()) is not None:
                yield StreamDelta(text=piece.text, logprobs=piece.logprobs, model=self._name)
            outcome = self._outcome(run)
        finally:
            # Shielded: a second cancellation must not return before the thread lets go of the model.
            await asyncio.shield(run.stop())
        usage = Usage(input_tokens=outcome.prompt_tokens, output_tokens=outcome.completion_tokens)
        yield StreamDelta(finish_reason=outcome.finish_reason, usage=usage, model=self._name)

    async def probe(self) -> None:
        """The weights file exists and llama.cpp is installed; nothing is loaded or generated.

        Raises ``ConfigError`` naming what is missing and the extra to install.
        """
        path = self._model_path or find_embedded_model()
        if not path.is_file():
            raise ConfigError(
                f"model file {path} does not exist; fix model_path for {self._name}",
                provider=self._provider,
                deployment=self._deployment,
            )
        # find_spec looks the package up without importing it: importing llama_cpp takes about a second.
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(
                f"the local model needs llama-cpp-python: {INSTALL_HINT}",
                provider=self._provider,
                deployment=self._deployment,
            )

    async def aclose(self) -> None:
        """Nothing to release per instance: loaded weights are shared by the process (see ``_engine``)."""

    def _generate(
        self, job: GenerationJob, logprobs: bool, emit: Callable[[Piece], None], cancelled: threading.Event
    ) -> Outcome:
        # Runs on the worker thread: the first call loads the weights, which takes a while.
        path = self._model_path or find_embedded_model()
        key = EngineKey(str(path), self._n_ctx, self._n_threads, logits_all=logprobs)
        return get_engine(key).run(job, emit, cancelled)

    def _job(self, request: ChatRequest) -> GenerationJob:
        temperature = request.temperature if request.temperature is not None else 0.0
        if self._seed is not None:
            seed = self._seed
        elif temperature == 0:
            seed = GREEDY_SEED
        else:
            seed = random.SystemRandom().randrange(2**32)
        return GenerationJob(
            messages=self._messages(request),
            max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=temperature,
            top_p=request.top_p if request.top_p is not None else 1.0,
            stop=request.stop,
            top_logprobs=(request.top_logprobs or 0) if request.logprobs else None,
            seed=seed,
            json_only=request.response_format is ResponseFormat.JSON,
            json_schema=json.dumps(dict(request.json_schema.schema)) if request.json_schema else None,
        )

    def _messages(self, request: ChatRequest) -> tuple[tuple[str, str], ...]:
        messages = tuple((m.role.value, m.text) for m in request.messages)
        if self._default_system is None or request.system_text is not None:
            return messages
        return (("system", self._default_system), *messages)

    def _outcome(self, run: GenerationRun) -> Outcome:
        try:
            return run.outcome()
        except OrchestratorError as exc:
            exc.provider, exc.deployment = self._provider, self._deployment
            raise
        except UnsupportedSchemaError as exc:
            raise CapabilityNotSupportedError(
                f"llama.cpp cannot turn this JSON schema into a grammar ({exc}); simplify the schema or "
                f"choose another model than {self._name}",
                capability="json_schema",
                provider=self._provider,
                deployment=self._deployment,
            ) from exc
        except ContextOverflowError as exc:
            raise ContextWindowExceededError(
                f"{exc} for {self._name}",
                provider=self._provider,
                deployment=self._deployment,
            ) from exc
        except Exception as exc:  # llama.cpp and its template engine raise many kinds
            raise ServerError(
                f"local model {self._name} failed: {exc}",
                retryable=False,
                provider=self._provider,
                deployment=self._deployment,
            ) from exc
