"""What a ``FakeUpstream`` should do with the next request (``Reply``, ``Fault``) and what it saw.

Owns the script vocabulary shared by every wire format. It does not render bodies (the format
modules do) or serve HTTP (``server``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from model_orchestrator.core.tools import ToolCall

_CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer.

    ``usage`` is (prompt, completion) tokens; None derives both from the lengths of the prompt and
    ``text``. ``latency`` delays the response (streams: the first frame); ``chunk_delay`` separates
    streamed chunks of ``chunk_size`` characters. ``model`` overrides the model echoed back.
    ``cached_tokens`` (part of the prompt) and ``reasoning_tokens`` (part of the completion) are
    reported where the format has a field for them; so are ``cache_write_tokens`` (prompt tokens written
    to a prompt cache, Anthropic's ``cache_creation_input_tokens``). ``tool_calls`` are calls the model
    makes (beside ``text``, which may be empty); script them with ``finish_reason="tool_calls"``.
    """

    text: str
    _: KW_ONLY
    latency: float = 0.0
    usage: tuple[int, int] | None = None
    finish_reason: str = "stop"
    headers: Mapping[str, str] = field(default_factory=dict)
    chunk_size: int = 8
    chunk_delay: float = 0.0
    model: str | None = None
    logprobs: bool = True
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    tool_calls: tuple[ToolCall, ...] = ()
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")

    def chunks(self) -> list[str]:
        """``text`` cut into streamed pieces of ``chunk_size`` characters (one empty piece for "")."""
        size = self.chunk_size
        return [self.text[i : i + size] for i in range(0, len(self.text), size)] or [""]

    def usage_for(self, prompt_tokens: int) -> tuple[int, int]:
        """(prompt, completion) tokens to report for a prompt of ``prompt_tokens`` estimated tokens."""
        if self.usage is not None:
            return self.usage
        return prompt_tokens, estimate_tokens(self.text)


@dataclass(frozen=True, slots=True)
class Fault:
    """A failure to serve instead of an answer; build one with the class methods.

    ``kind`` is one of: status, rate_limit, server, overloaded, hang, reset, malformed_json,
    truncated_stream, context_length, auth, content_filter.
    """

    kind: str
    code: int = 0
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    seconds: float = 0.0
    after_chunks: int = 0

    @classmethod
    def status(
        cls, code: int, message: str = "scripted failure", headers: Mapping[str, str] | None = None
    ) -> Fault:
        """Any HTTP status with the format's error body (the body kind follows the status)."""
        return cls("status", code, message, dict(headers or {}))

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0, headers: Mapping[str, str] | None = None) -> Fault:
        """429 with ``retry-after`` (omitted when None) plus the format's rate-limit headers."""
        return cls(
            "rate_limit", 429, "Rate limit reached; try again later.", dict(headers or {}), retry_after
        )

    @classmethod
    def server_error(cls, code: int = 500) -> Fault:
        """A 5xx with the format's server-error body."""
        return cls("server", code, "The server had an error while processing your request.")

    @classmethod
    def overloaded(cls) -> Fault:
        """The format's overload answer (status from the format: Anthropic 529, others 503)."""
        return cls("overloaded", 0, "The service is overloaded; try again later.")

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Accept the request, send nothing for ``seconds``, then drop the connection."""
        return cls("hang", 0, "", {}, None, seconds)

    @classmethod
    def reset(cls) -> Fault:
        """Abort the connection without any response."""
        return cls("reset")

    @classmethod
    def malformed_json(cls) -> Fault:
        """A 200 whose body (or first stream frame) is not valid JSON."""
        return cls("malformed_json", 200)

    @classmethod
    def truncated_stream(cls, after_chunks: int = 2) -> Fault:
        """Send the first ``after_chunks`` frames (non-streaming: half the body), then drop the connection."""
        return cls("truncated_stream", 200, "", {}, None, 0.0, after_chunks)

    @classmethod
    def context_length(cls) -> Fault:
        """400 with the format's context-length error."""
        return cls("context_length", 400, "This model's maximum context length was exceeded.")

    @classmethod
    def auth(cls) -> Fault:
        """401 with the format's authentication error."""
        return cls("auth", 401, "Invalid authentication credentials.")

    @classmethod
    def content_filter(cls) -> Fault:
        """400 with the format's safety-block error."""
        return cls("content_filter", 400, "The prompt was blocked by the content filter.")


@dataclass(slots=True)
class RecordedRequest:
    """One request the fake saw; ``finished`` and ``disconnected`` are filled in when it ends.

    ``headers`` keys are lower-case; ``json`` is None when the body was not JSON; times are
    ``time.monotonic()`` seconds.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    started: float
    finished: float | None = None
    disconnected: bool = False


def estimate_tokens(text: str) -> int:
    """About four characters a token; at least one for non-empty text."""
    return 0 if not text else max(1, (len(text) + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN)


ScriptItem = Reply | Fault
