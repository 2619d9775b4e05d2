"""The llama.cpp side of the local model: loading, the chat template, and the token-by-token loop.

Owns the process-wide cache of loaded ``Llama`` instances, the per-instance lock that serializes calls,
prompt formatting with the GGUF's own chat template, stop strings, usage counts and logprobs. Everything
here blocks and must run in a worker thread. Does not know about asyncio, requests or ``Completion``
(see ``adapter``). ``llama_cpp`` is imported on first load, never at module import.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.response import FinishReason, TokenLogprob

INSTALL_HINT = "pip install 'model-orchestrator[local]'"

# Seed used whenever the caller gives none and sampling is greedy (temperature 0), so runs repeat exactly.
GREEDY_SEED = 0


@dataclass(frozen=True, slots=True)
class EngineKey:
    """What makes two loaded models interchangeable: the file and the settings it was loaded with."""

    path: str
    n_ctx: int
    n_threads: int
    logits_all: bool


@dataclass(frozen=True, slots=True)
class GenerationJob:
    """One generation, already reduced to plain values."""

    messages: tuple[tuple[str, str], ...]  # (role, text)
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    top_logprobs: int | None  # None: no logprobs; 0: the chosen token's only
    seed: int
    json_only: bool = False  # constrain the output to JSON with llama.cpp's JSON grammar
    json_schema: str | None = None  # constrain it to this JSON schema (a grammar built from it)


@dataclass(frozen=True, slots=True)
class Piece:
    """Text released to the caller, with the logprobs of the tokens generated since the last piece."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a generation ended; token counts are llama.cpp's own."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


class UnsupportedSchemaError(Exception):
    """llama.cpp cannot build a grammar from the JSON schema (a keyword its converter does not know)."""


class ContextOverflowError(Exception):
    """The prompt plus ``max_tokens`` does not fit the loaded context window."""

    def __init__(self, prompt_tokens: int, max_tokens: int, n_ctx: int) -> None:
        super().__init__(f"prompt of {prompt_tokens} tokens + max_tokens {max_tokens} exceeds n_ctx {n_ctx}")
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


# The one piece of module-level state, on purpose: loaded weights are large and slow to load, so every
# LocalModel (and every event loop or thread) in the process shares one instance per file and settings.
_ENGINES: dict[EngineKey, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(key: EngineKey) -> Engine:
    """The loaded engine for ``key``, loading it on first use. Blocks; call from a worker thread."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            if not _ENGINES:
                atexit.register(_free_engines)
            engine = Engine(_load(key))
            _ENGINES[key] = engine
        return engine


def _free_engines() -> None:
    """Free the weights before the interpreter tears modules down: left to ``Llama.__del__`` at that point,
    llama-cpp's own globals are already gone and every loaded model prints a ``TypeError`` traceback."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.free()


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError(f"the local model needs llama-cpp-python: {INSTALL_HINT}") from exc
    return llama_cpp


def _load(key: EngineKey) -> Any:
    llama_cpp = _import_llama_cpp()
    try:
        with _without_extra_buffer_types(llama_cpp):
            return llama_cpp.Llama(
                model_path=key.path,
                n_ctx=key.n_ctx,
                n_threads=key.n_threads,
                # llama-cpp's default batch threads is every core; with OpenMP spin barriers that is many
                # times slower as soon as another process wants a core, so prompts use the same count.
                n_threads_batch=key.n_threads,
                logits_all=key.logits_all,
                seed=GREEDY_SEED,
                verbose=False,
            )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ConfigError(f"could not load the local model file {key.path}: {exc}") from exc


@contextlib.contextmanager
def _without_extra_buffer_types(llama_cpp: Any) -> Iterator[None]:
    """Load with ``use_extra_bufts = False``: weights stay in the plain CPU layout.

    The extra buffer types repack quantized weights for AMX/AVX-512 kernels. On CPUs that advertise AMX
    inside a VM (seen here: Firecracker), ggml's AMX matmul dies with a general-protection fault that
    kills the whole process; the plain layout is slower but never crashes. ``Llama()`` offers no
    parameter for it, so the default-params factory it calls is wrapped for the duration of the load
    (loads are serialized by ``_ENGINES_LOCK``). Field documented in llama.h:
    https://github.com/ggml-org/llama.cpp/blob/master/include/llama.h (llama_model_params.use_extra_bufts)
    """
    low_level = llama_cpp.llama_cpp
    original = low_level.llama_model_default_params

    def plain_params() -> Any:
        params = original()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    low_level.llama_model_default_params = plain_params
    try:
        yield
    finally:
        low_level.llama_model_default_params = original


class Engine:
    """One loaded model. ``run`` holds its lock for the whole generation, so calls never interleave."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self._lock = threading.Lock()
        self._llama_cpp = _import_llama_cpp()
        self._format = _chat_formatter(llama, self._llama_cpp)

    def free(self) -> None:
        """Release the weights (waits for a generation in progress to finish)."""
        with self._lock:
            self._llama.close()

    def run(self, job: GenerationJob, emit: Callable[[Piece], None], cancelled: threading.Event) -> Outcome:
        """Generate for ``job``, passing pieces to ``emit``; stops between tokens once ``cancelled`` is set.

        Raises ``ContextOverflowError`` before generating when the prompt and ``max_tokens`` do not fit.
        """
        with self._lock:
            prompt = self._prompt_tokens(job.messages)
            n_ctx = int(self._llama.n_ctx())
            if len(prompt) + job.max_tokens > n_ctx:
                raise ContextOverflowError(len(prompt), job.max_tokens, n_ctx)
            return self._generate(prompt, job, emit, cancelled)

    def _prompt_tokens(self, messages: Sequence[tuple[str, str]]) -> list[int]:
        formatted = self._format(messages=[{"role": role, "content": text} for role, text in messages])
        # Mirrors llama-cpp's own chat handler: the template already wrote any BOS it wants.
        tokens: list[int] = self._llama.tokenize(
            formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
        )
        return tokens

    def _generate(
        self, prompt: list[int], job: GenerationJob, emit: Callable[[Piece], None], cancelled: threading.Event
    ) -> Outcome:
        llama = self._llama
        llama.set_seed(job.seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = _StopMatcher(job.stop)
        vocab = self._llama_cpp.llama_model_get_vocab(llama.model)
        count = 0
        finish = FinishReason.LENGTH
        # repeat_penalty 1.0 keeps temperature 0 plain greedy decoding, so answers repeat exactly.
        tokens = llama.generate(
            prompt, temp=job.temperature, top_p=job.top_p, repeat_penalty=1.0, grammar=self._grammar(job)
        )
        for token in tokens:
            if cancelled.is_set():
                break
            if self._llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = FinishReason.STOP
                break
            count += 1
            logprobs = self._logprobs(token, job.top_logprobs) if job.top_logprobs is not None else ()
            text, hit = stops.feed(decoder.decode(llama.detokenize([token])))
            if text or logprobs:
                emit(Piece(text, logprobs))
            if hit:
                finish = FinishReason.STOP
                break
            if count >= job.max_tokens:
                break
        tokens.close()
        if not stops.hit:
            rest = stops.flush(decoder.decode(b"", final=True))
            if rest:
                emit(Piece(rest))
        return Outcome(finish, len(prompt), count)

    def _grammar(self, job: GenerationJob) -> Any:
        # https://github.com/abetlen/llama-cpp-python#json-and-json-schema-mode
        grammars = self._llama_cpp.LlamaGrammar
        if job.json_schema is not None:
            try:
                return grammars.from_json_schema(job.json_schema, verbose=False)
            # The converter refuses with ValueError and with assertions (e.g. a remote $ref).
            except (ValueError, KeyError, TypeError, AssertionError, NotImplementedError) as exc:
                raise UnsupportedSchemaError(str(exc) or type(exc).__name__) from exc
        if not job.json_only:
            return None
        return grammars.from_string(self._llama_cpp.llama_grammar.JSON_GBNF, verbose=False)

    def _logprobs(self, token: int, top: int) -> tuple[TokenLogprob, ...]:
        llama = self._llama
        # The token was sampled from the logits of the last evaluated position (it is not evaluated yet).
        logprobs = self._llama_cpp.Llama.logits_to_logprobs(llama.scores[llama.n_tokens - 1])
        alternatives: tuple[tuple[str, float], ...] = ()
        if top > 0:
            best = logprobs.argsort()[::-1][:top]
            alternatives = tuple((self._token_text(int(i)), float(logprobs[i])) for i in best)
        return (TokenLogprob(self._token_text(token), float(logprobs[token]), alternatives),)

    def _token_text(self, token: int) -> str:
        text: bytes = self._llama.detokenize([token])
        return text.decode("utf-8", errors="replace")


def _chat_formatter(llama: Any, llama_cpp: Any) -> Any:
    """The GGUF's own chat template (``tokenizer.chat_template``), as llama-cpp renders it."""
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ConfigError("the local model file has no chat template (tokenizer.chat_template)")

    def token_text(token: int) -> str:
        return "" if token < 0 else llama.detokenize([token], special=True).decode("utf-8", errors="replace")

    return llama_cpp.llama_chat_format.Jinja2ChatFormatter(
        template=template, eos_token=token_text(llama.token_eos()), bos_token=token_text(llama.token_bos())
    )


class _StopMatcher:
    """Finds stop strings across token boundaries, holding back text that may start one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.hit = False

    def feed(self, text: str) -> tuple[str, bool]:
        """The text safe to release now, and whether a stop string was reached (its text is dropped)."""
        buffer = self._held + text
        positions = [i for i in (buffer.find(s) for s in self._stops) if i >= 0]
        if positions:
            self._held = ""
            self.hit = True
            return buffer[: min(positions)], True
        keep = max((_overlap(buffer, s) for s in self._stops), default=0)
        self._held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep], False

    def flush(self, text: str) -> str:
        """Whatever is still held back, once generation ended without a stop string."""
        rest, self._held = self._held + text, ""
        return rest


def _overlap(text: str, stop: str) -> int:
    """The length of the longest end of ``text`` that is a beginning of ``stop``."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0
