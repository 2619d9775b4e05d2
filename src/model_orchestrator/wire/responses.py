"""Pydantic v2 models of OpenAI's Responses API request (``POST /v1/responses``), stateless use.

Owns field names and shapes only, as the gateway accepts them (strictly: unknown fields are refused, so
nothing a client sends is silently dropped; that includes ``previous_response_id``, ``reasoning`` and the
rest of what needs server-side state or features the gateway does not offer); no conversion to core types
(``gateway/responses_convert`` does that) and no HTTP. Responses and stream events are rendered as plain
JSON by the gateway. Reference: https://platform.openai.com/docs/api-reference/responses/create and
.../responses-streaming.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from model_orchestrator.wire.messages import PositiveInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputText(_Strict):
    """``{type: input_text, text}``."""

    type: Literal["input_text"]
    text: str


class OutputText(_Strict):
    """``{type: output_text, text}``: an earlier answer sent back as history."""

    type: Literal["output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class InputImage(_Strict):
    """``{type: input_image, image_url, detail}`` (an http(s) or base64 ``data:`` URL; no file ids)."""

    type: Literal["input_image"]
    image_url: str = Field(pattern=r"^(https?://|data:[\w/+.-]+;base64,)")
    detail: Literal["auto", "low", "high"] | None = None


ContentItem = Annotated[InputText | OutputText | InputImage, Field(discriminator="type")]


class MessageItem(_Strict):
    """A message item (``type: message`` may be left out)."""

    type: Literal["message"] | None = None
    id: str | None = None
    status: str | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentItem]


class FunctionCallItem(_Strict):
    """A call the model made, sent back as history: ``{type: function_call, call_id, name, arguments}``."""

    type: Literal["function_call"]
    id: str | None = None
    status: str | None = None
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class FunctionCallOutputItem(_Strict):
    """The result of a call: ``{type: function_call_output, call_id, output}``."""

    type: Literal["function_call_output"]
    id: str | None = None
    status: str | None = None
    call_id: str = Field(min_length=1)
    output: str


def _item_kind(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", None)
    return kind or "message"


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_kind),
]


class FunctionTool(_Strict):
    """A function tool, flat: ``{type: function, name, description, parameters, strict}``. Built-in tools
    (web search, file search, ...) are not offered by this gateway."""

    type: Literal["function"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(_Strict):
    """``tool_choice: {type: function, name}``."""

    type: Literal["function"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")


class TextFormatText(_Strict):
    type: Literal["text"]


class TextFormatJsonObject(_Strict):
    type: Literal["json_object"]


class TextFormatJsonSchema(_Strict):
    """``{type: json_schema, name, schema, strict, description}``."""

    type: Literal["json_schema"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextOptions(_Strict):
    """``text``: the answer's format."""

    format: (
        Annotated[TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")]
        | None
    ) = None


class ResponsesRequest(_Strict):
    """``POST /v1/responses`` (stateless: ``store`` and ``background`` may only be false)."""

    model: str = Field(min_length=1)
    input: str | Annotated[list[InputItem], Field(min_length=1)]
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    max_output_tokens: PositiveInt | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool | None = None
    store: Literal[False] | None = Field(
        default=None, description="only false: this gateway keeps no responses (send the whole conversation)"
    )
    background: Literal[False] | None = Field(default=None, description="only false")
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    user: str | None = Field(default=None, max_length=256)
