"""The console CLI tables are printed on: fitted to a terminal, never cut when piped.

On a terminal rich fits a table to the window, folding long cells. Piped or redirected output has no
width, and rich's default of 80 columns cut model names in half; there every line is printed whole,
as wide as its content (tables never grow past their natural width, so nothing is padded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

# Wider than any line the CLI prints: piped lines keep their natural length.
PIPED_WIDTH = 10_000


def table_console() -> Console:
    """A stdout console: the terminal's width on a terminal, ``PIPED_WIDTH`` when piped or redirected."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console
