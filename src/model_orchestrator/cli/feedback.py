"""``orchestrator feedback REQUEST_ID SCORE``: label how good an answer was (an outcome label in the ledger).

The request id is the ``request_id`` in ``orchestrator run --json``'s metadata (or the gateway's
``x-orchestrator-request-id`` header). An unknown id or a score outside 0-1 exits 2 with what to do.
``orchestrator train-router --from-ledger`` learns from these labels.
"""

from __future__ import annotations

import json

import click

from model_orchestrator.cli.params import FiniteFloat


@click.command("feedback")
@click.argument("request_id")
@click.argument("score", type=FiniteFloat())
@click.option("--json", "as_json", is_flag=True, help="Print the recorded label as JSON.")
@click.pass_context
def feedback_command(ctx: click.Context, request_id: str, score: float, as_json: bool) -> None:
    """Record how good the answer to REQUEST_ID was: SCORE from 0 (wrong or useless) to 1 (right)."""
    from model_orchestrator.orchestrator import Orchestrator

    receipt = Orchestrator.from_config(ctx.obj["config"]).feedback_sync(request_id, score)
    if as_json:
        click.echo(json.dumps(receipt.to_dict()))
        return
    click.echo(f"recorded score {receipt.score:g} for {receipt.request_id} (answered by {receipt.model})")
