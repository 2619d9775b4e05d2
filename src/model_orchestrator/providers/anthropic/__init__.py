"""Anthropic's Messages API: ``AnthropicModel`` (adapter) over pure wire conversions (``convert``)."""

from model_orchestrator.providers.anthropic.adapter import AnthropicModel

__all__ = ["AnthropicModel"]
