"""``orchestrator validate``: does an output accomplish a task? Seed 003's verdict (pass, issues, confidence,
escalate), the same as the MCP tool ``orchestrator_validate``.

Exits 0 when the output passes and 1 when it does not, so scripts can gate on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from model_orchestrator.cli.params import FiniteFloat


@click.command("validate")
@click.option("-t", "--task", required=True, help="What the output was supposed to accomplish.")
@click.option("--output", "output_text", help="The output to check; read from stdin when omitted.")
@click.option(
    "--output-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the output to check from this file.",
)
@click.option(
    "--validator",
    "validators",
    type=click.Choice(["python", "json"]),
    multiple=True,
    help="A deterministic check run first (python: the code parses; json: it holds JSON); repeatable.",
)
@click.option("--judge", help="The model that judges (default: validation.judge, else the strongest usable).")
@click.option("--max-cost", type=FiniteFloat(min=0.0), help="Most the judge call may spend, in USD.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.pass_context
def validate_command(
    ctx: click.Context,
    /,
    task: str,
    output_text: str | None,
    output_file: Path | None,
    validators: tuple[str, ...],
    judge: str | None,
    max_cost: float | None,
    as_json: bool,
) -> None:
    """Check an output against its task: validators first, then a judge model. Exit 1 when it fails."""
    output = _read_output(output_text, output_file)
    from model_orchestrator.orchestrator import Orchestrator

    orch = Orchestrator.from_config(ctx.obj["config"])
    verdict = _run(orch, task, output, judge=judge, validators=validators, max_cost=max_cost)
    data = verdict.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        state = "PASS" if verdict.passed else "FAIL"
        checked = ", ".join(verdict.checked_by)
        click.echo(f"{state} (confidence {verdict.confidence:.2f}; checked by {checked})")
        for issue in verdict.issues:
            click.echo(f"- {issue}")
        if verdict.escalate:
            click.echo("escalate: a person or a stronger model should look at this")
    if not verdict.passed:
        sys.exit(1)


def _run(orch: Any, task: str, output: str, **options: Any) -> Any:
    import asyncio

    async def _validate() -> Any:
        async with orch:
            return await orch.validate(task, output, **options)

    return asyncio.run(_validate())


def _read_output(text: str | None, path: Path | None) -> str:
    if text is not None and path is not None:
        raise click.UsageError("give --output TEXT or --output-file FILE, not both")
    if path is not None:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            message = f"cannot read {str(path)!r}: {exc}"
            raise click.BadParameter(message, param_hint="'--output-file'") from exc
    if text is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise click.UsageError("give --output TEXT, --output-file FILE, or pipe the output on stdin")
        text = sys.stdin.read()
    if not text.strip():
        raise click.UsageError("the output to check is empty")
    return text
