"""Ready-made command lines for the coding-agent CLIs that can act as models.

Owns the argument lists and which output form each one prints; not how they are run (see ``adapter``).
Every preset reads its prompt from stdin, so the prompt never appears in argv (visible in ``ps``).
"""

from __future__ import annotations

from typing import Literal

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
