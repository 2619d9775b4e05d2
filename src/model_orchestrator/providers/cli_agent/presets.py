"""Ready-made command lines for the coding-agent CLIs that can act as models.

Owns the argument lists and which output form each one prints; not how they are run (see ``adapter``).
Every preset reads its prompt from stdin, so the prompt never appears in argv (visible in ``ps``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from model_orchestrator.core.errors import ConfigError

OutputFormat = Literal["text", "json"]

PRESETS: dict[str, tuple[tuple[str, ...], OutputFormat]] = {
    # Print mode reads the prompt from stdin when no prompt argument is given; JSON prints one result object.
    # https://docs.claude.com/en/docs/claude-code/headless
    "claude": (("claude", "-p", "--output-format", "json"), "json"),
    # Headless mode starts when stdin is not a TTY; ``-o json`` prints {response, stats, error}.
    # https://geminicli.com/docs/cli/headless/
    "gemini": (("gemini", "-o", "json"), "json"),
    # ``-`` reads the instructions from stdin; ``--json`` prints JSONL thread events.
    # https://github.com/openai/codex/blob/main/codex-rs/exec/src/exec_events.rs
    "codex": (("codex", "exec", "--json", "-"), "json"),
}


def agent_command(
    preset: str | None, command: Sequence[str] | None, output_format: OutputFormat | None
) -> tuple[tuple[str, ...] | None, OutputFormat]:
    """The argument list and output form of a CLI agent: the preset's, where config sets neither.

    A ``command`` with a ``preset`` replaces the preset's argument list (another path, extra flags) and
    keeps its output form, so the answer is still read as that agent's JSON.
    """
    if preset is None:
        return (tuple(command) if command else None), output_format or "text"
    if preset not in PRESETS:
        raise ConfigError(f"unknown CLI agent preset {preset!r}; presets: {', '.join(sorted(PRESETS))}")
    preset_command, preset_format = PRESETS[preset]
    return (tuple(command) if command else preset_command), output_format or preset_format
