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

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- request -------------------------------------------------------------------------------------


class ImageURL(BaseModel):
    """``image_url`` of an image part: an http(s) URL or a ``data:`` URL, and a resolution hint."""

    model_config = ConfigDict(extra="allow")

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(BaseModel):
    """One part of a multi-part message: ``{type: text, text}`` or ``{type: image_url, image_url}``."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    image_url: ImageURL | None = None


class FunctionCall(_Lenient):
    """``function`` of a tool call: the tool's name and its arguments as JSON text."""

    name: str = ""
    arguments: str = ""


class MessageToolCall(_Lenient):
    """One tool call of an assistant message (request history and responses alike)."""

    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall = Field(default_factory=FunctionCall)


class ChatMessage(BaseModel):
    """One message of a request; an assistant turn may carry ``tool_calls``, a ``tool`` turn answers one
    by ``tool_call_id``."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(BaseModel):
    """``function`` of a tool definition: name, description, JSON schema of the arguments, strictness."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolParam(BaseModel):
    """One entry of ``tools`` (only function tools exist in Chat Completions)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(BaseModel):
    """``function`` of a named tool choice."""

    name: str


class NamedToolChoice(BaseModel):
    """``tool_choice: {type: function, function: {name}}``: call this tool."""

    type: Literal["function"]
    function: FunctionName


ToolChoiceParam = Literal["auto", "none", "required"] | NamedToolChoice


class JsonSchemaParam(BaseModel):
    """``response_format.json_schema``: a named schema the answer must match (``schema`` on the wire)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatParam(BaseModel):
    """``response_format``: text, a JSON object, or a JSON schema."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaParam | None = None


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
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    parallel_tool_calls: bool | None = None
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
    tool_calls: list[MessageToolCall] | None = None


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


class ChunkFunction(_Lenient):
    """``function`` of a streamed tool-call piece: the name (first piece) and more argument text."""

    name: str | None = None
    arguments: str | None = None


class ChunkToolCall(_Lenient):
    """A piece of a streamed tool call; ``index`` says which call, the first piece carries ``id``."""

    index: int = 0
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChunkFunction | None = None


class ChunkDelta(_Lenient):
    """``choices[].delta`` of a stream chunk."""

    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


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
