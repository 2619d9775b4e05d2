"""The browser-guard options shared by the two HTTP servers (``serve`` and ``mcp --http``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def browser_guard_options(command: F) -> F:
    """Add ``--allow-host`` and ``--allow-origin`` (both repeatable) to ``command``."""
    command = click.option(
        "--allow-origin",
        "allowed_origins",
        multiple=True,
        metavar="ORIGIN",
        help="Accept browser requests from ORIGIN (e.g. http://localhost:3000); others are refused. "
        "Repeatable.",
    )(command)
    return click.option(
        "--allow-host",
        "allowed_hosts",
        multiple=True,
        metavar="NAME",
        help="Also accept requests whose Host is NAME (a DNS-rebinding guard refuses other names); "
        "repeatable.",
    )(command)
