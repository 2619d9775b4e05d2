"""Pydantic v2 models of Anthropic's Messages API request (``POST /v1/messages`` and ``/count_tokens``).

Owns field names and shapes only, as the gateway accepts them (strictly: unknown fields are refused, so
nothing a client sends is silently dropped); no conversion to core types (``gateway/messages_convert``
does that) and no HTTP. Responses and stream events are rendered as plain JSON by the gateway.
Reference: https://docs.anthropic.com/en/api/messages, .../api/messages-streaming,
.../api/messages-count-tokens, .../api/errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

VERSION_HEADERS = ("anthropic-version", "anthropic-beta")
"""Headers the format's clients send with every request; a gateway accepts and ignores them."""
TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


def whole_number(value: object) -> object:
    """JSON Schema counts 2.0 as an integer; strict validation would not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# A count of at least 1 that also takes 2.0; the bound comes first so the JSON schema shows the minimum.
PositiveInt = Annotated[int, Field(ge=1), BeforeValidator(whole_number)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CacheControl(_Strict):
    """``cache_control``: cache the prompt up to this block (``ttl`` ``5m`` or ``1h``)."""

    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class TextBlock(_Strict):
    """``{type: text, text}``."""

    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = None
    citations: list[dict[str, Any]] | None = Field(default=None, max_length=0, description="not supported")


class Base64Source(_Strict):
    """An inline image: ``{type: base64, media_type, data}``."""

    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class UrlSource(_Strict):
    """An image by URL: ``{type: url, url}`` (http or https)."""

    type: Literal["url"]
    url: str = Field(pattern=r"^https?://")


class ImageBlock(_Strict):
    """``{type: image, source}``."""

    type: Literal["image"]
    source: Annotated[Base64Source | UrlSource, Field(discriminator="type")]
    cache_control: CacheControl | None = None


class ToolUseBlock(_Strict):
    """A call the assistant made: ``{type: tool_use, id, name, input}``."""

    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]
    cache_control: CacheControl | None = None


ResultPart = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(_Strict):
    """The result of a call, in a user turn: ``{type: tool_result, tool_use_id, content, is_error}``."""

    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ResultPart] = ""
    is_error: bool | None = None
    cache_control: CacheControl | None = None


ContentBlock = Annotated[TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")]


class MessageParam(_Strict):
    """One turn: ``user`` or ``assistant``, text or blocks."""

    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class ToolParam(_Strict):
    """A client tool: ``{name, description, input_schema}`` (``type: custom`` optional)."""

    type: Literal["custom"] | None = None
    name: str = Field(pattern=TOOL_NAME)
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolChoiceAuto(_Strict):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Strict):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Strict):
    type: Literal["tool"]
    name: str = Field(pattern=TOOL_NAME)
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Strict):
    type: Literal["none"]


ToolChoiceParam = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")
]


class Metadata(_Strict):
    """``metadata``: an opaque id of the end user (kept out of the request sent upstream)."""

    user_id: str | None = Field(default=None, max_length=256)


class CountTokensRequest(_Strict):
    """``POST /v1/messages/count_tokens``: what a message request would send, without generating."""

    model: str = Field(min_length=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None


class MessagesRequest(CountTokensRequest):
    """``POST /v1/messages``."""

    max_tokens: PositiveInt
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    metadata: Metadata | None = None
    stream: bool | None = None
