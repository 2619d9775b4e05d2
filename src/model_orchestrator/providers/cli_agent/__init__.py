"""Coding-agent CLIs (claude -p, gemini, codex exec, or any command) as chat models.

Owns running those tools and reading their answers; the presets name their usual command lines.
"""

from model_orchestrator.providers.cli_agent.adapter import CliAgentModel
from model_orchestrator.providers.cli_agent.presets import PRESETS

__all__ = ["PRESETS", "CliAgentModel"]
