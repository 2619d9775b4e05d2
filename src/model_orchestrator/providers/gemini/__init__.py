"""Google's Gemini API: ``GeminiModel`` (adapter) over pure wire conversions (``convert``)."""

from model_orchestrator.providers.gemini.adapter import GeminiModel

__all__ = ["GeminiModel"]
