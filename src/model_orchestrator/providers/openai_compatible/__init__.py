"""OpenAI-compatible chat endpoints (OpenAI, Azure, Groq, Together, Mistral, DeepSeek, OpenRouter and
local servers): one adapter, with the services as data rows in ``endpoints``."""

from model_orchestrator.providers.openai_compatible.adapter import OpenAICompatibleModel
from model_orchestrator.providers.openai_compatible.endpoints import (
    ENDPOINTS,
    AuthStyle,
    Endpoint,
    TokenField,
    endpoint_for,
)

__all__ = ["ENDPOINTS", "AuthStyle", "Endpoint", "OpenAICompatibleModel", "TokenField", "endpoint_for"]
