"""wire layer: the Chat Completions wire DTOs, re-exported under a vendor-neutral import path.

Front doors (the gateway) import them from here so that vendor names stay inside ``providers/`` and ``wire/``.
"""

from model_orchestrator.wire.openai import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    ChunkDelta,
    CompletionTokensDetails,
    CompletionUsage,
    ContentPart,
    ErrorBody,
    ErrorDetail,
    PromptTokensDetails,
    ResponseFormatParam,
    ResponseMessage,
    StreamOptions,
    TokenLogprob,
    TopLogprob,
)

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "Choice",
    "ChoiceLogprobs",
    "ChunkChoice",
    "ChunkDelta",
    "CompletionTokensDetails",
    "CompletionUsage",
    "ContentPart",
    "ErrorBody",
    "ErrorDetail",
    "PromptTokensDetails",
    "ResponseFormatParam",
    "ResponseMessage",
    "StreamOptions",
    "TokenLogprob",
    "TopLogprob",
]
