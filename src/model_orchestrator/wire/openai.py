"""Pydantic v2 models of the OpenAI Chat Completions wire format: request, response, stream chunk, error.

Shared by the OpenAI-compatible adapter (which sends requests and parses answers) and the gateway
(which accepts requests and renders answers). Owns field names and shapes only; no conversion to or
from core types (the adapter's ``convert`` and the gateway do that).
Reference: https://platform.openai.com/docs/api-reference/chat/create and .../chat/object,
.../chat/streaming. Response models ignore unknown fields and default the ones that
OpenAI-compatible servers sometimes omit; the request keeps unknown fields so a gateway can pass
extensions through. Vendor extensions of the response live with the adapter, not here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- request -------------------------------------------------------------------------------------


class ContentPart(BaseModel):
    """One part of a multi-part message (only text parts are used by this project)."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message of a request."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None


class ResponseFormatParam(BaseModel):
    """``response_format``: text, a JSON object, or a JSON schema."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"] = "text"


class StreamOptions(BaseModel):
    """``stream_options``; ``include_usage`` adds a final chunk carrying usage."""

    include_usage: bool | None = None


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions`` body."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    response_format: ResponseFormatParam | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    seed: int | None = None
    user: str | None = None


# --- response ------------------------------------------------------------------------------------


class TopLogprob(_Lenient):
    """One alternative token at a position."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(_Lenient):
    """The chosen token at a position, with its alternatives."""

    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(_Lenient):
    """``choices[].logprobs``."""

    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class PromptTokensDetails(_Lenient):
    """``usage.prompt_tokens_details``."""

    cached_tokens: int | None = None


class CompletionTokensDetails(_Lenient):
    """``usage.completion_tokens_details``."""

    reasoning_tokens: int | None = None


class CompletionUsage(_Lenient):
    """``usage``."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class ResponseMessage(_Lenient):
    """``choices[].message``."""

    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None


class Choice(_Lenient):
    """One choice of a whole response."""

    index: int = 0
    message: ResponseMessage = Field(default_factory=ResponseMessage)
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(_Lenient):
    """A whole response (``object: chat.completion``)."""

    id: str | None = None
    object: str = "chat.completion"
    created: int | None = None
    model: str | None = None
    choices: list[Choice] | None = None
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


# --- stream ----------------------------------------------------------------------------------------


class ChunkDelta(_Lenient):
    """``choices[].delta`` of a stream chunk."""

    role: str | None = None
    content: str | None = None
    refusal: str | None = None


class ChunkChoice(_Lenient):
    """One choice of a stream chunk."""

    index: int = 0
    delta: ChunkDelta = Field(default_factory=ChunkDelta)
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ErrorDetail(_Lenient):
    """``error`` of an error body; compatible servers put a number in ``code`` or omit fields."""

    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ChatCompletionChunk(_Lenient):
    """One ``data:`` event of a streamed response (``object: chat.completion.chunk``).

    ``choices`` is empty on the usage-only chunk that ``stream_options.include_usage`` adds; ``error``
    is set when the server reports a failure inside the stream.
    """

    id: str | None = None
    object: str = "chat.completion.chunk"
    created: int | None = None
    model: str | None = None
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: CompletionUsage | None = None
    error: ErrorDetail | None = None


class ErrorBody(_Lenient):
    """An error response body: ``{"error": {...}}``."""

    error: ErrorDetail
