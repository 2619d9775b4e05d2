"""``orchestrator --test``: print one pass/fail line per self-check (``orchestrator.self_check``)."""

from __future__ import annotations

import asyncio

import click


def run_self_test(config_path: str | None) -> bool:
    """Run the self-check, printing each line as it comes; True when every check passed."""
    from model_orchestrator.orchestrator.self_check import self_check

    async def _run() -> tuple[int, int]:
        passed = failed = 0
        async for result in self_check(config_path):
            mark = click.style("PASS", fg="green") if result.passed else click.style("FAIL", fg="red")
            click.echo(f"{mark}  {result.name}: {result.detail}")
            passed, failed = passed + result.passed, failed + (not result.passed)
        return passed, failed

    passed, failed = asyncio.run(_run())
    summary = f"{passed} passed, {failed} failed"
    click.echo(summary if not failed else f"{summary}; see the FAIL lines above", err=bool(failed))
    return not failed
