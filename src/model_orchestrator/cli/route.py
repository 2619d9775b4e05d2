"""``orchestrator route``: which model a task needs (seed 003's decision), or batch scores of prompts.

``route --prompt TEXT`` prints the decision (``--json``: seed 003's JSON); ``route --scores`` reads JSON
lines with a ``prompt`` field on stdin and writes, in order, one line per prompt with ``strong_score``
(0-1, higher: more need for the strong model) and ``router`` (plus ``id`` when the input has one).
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

import click

from model_orchestrator.core.money import usd, usd_or_unknown

_ROUTERS = ("learned", "generic", "complexity", "length")
_CAPABILITIES = ("vision", "tools", "json", "json_schema", "code", "long_context", "reasoning", "logprobs")


@click.command("route")
@click.option("-p", "--prompt", help="The task; read from stdin when omitted (not with --scores).")
@click.option("--files-count", type=click.IntRange(min=0), help="How many files the task touches.")
@click.option("--requires-tests", is_flag=True, help="Tests have to be written or updated.")
@click.option("--external-api", "external_apis", multiple=True, help="An external API involved (repeat).")
@click.option("--subsystem", "subsystems", multiple=True, help="A subsystem the task spans (repeat).")
@click.option(
    "--capability", "capabilities", multiple=True, type=click.Choice(_CAPABILITIES), help="Needed (repeat)."
)
@click.option(
    "--router", type=click.Choice(_ROUTERS), help="Which router decides (default: config, learned)."
)
@click.option(
    "--scores", is_flag=True, help="Batch: JSON lines with 'prompt' on stdin -> strong_score lines."
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.pass_context
def route_command(
    ctx: click.Context,
    /,
    prompt: str | None,
    router: str | None,
    scores: bool,
    as_json: bool,
    **hints: Any,
) -> None:
    """Recommend a model for a task without calling any: complexity, factors, reason, cost."""
    from model_orchestrator.orchestrator import Orchestrator

    orch = Orchestrator.from_config(ctx.obj["config"])
    if scores:
        if prompt is not None:
            raise click.UsageError("--scores reads prompts from stdin; do not give --prompt")
        write_scores(orch.router(router), sys.stdin, sys.stdout)
        return
    text = _read_task(prompt)
    decision = _decide(orch, text, _context(hints), router)
    if as_json:
        click.echo(json.dumps(decision.to_dict(), indent=2))
    else:
        _show(decision)


def write_scores(router: Any, source: IO[str], sink: IO[str]) -> None:
    """One output line per input line, in order; errors name the line."""
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise click.UsageError(f"stdin line {number}: not valid JSON ({exc})") from exc
        text = item.get("prompt") if isinstance(item, dict) else None
        if not isinstance(text, str):
            raise click.UsageError(f"stdin line {number}: needs a 'prompt' string")
        row: dict[str, object] = {"strong_score": round(router.strong_score(text), 6), "router": router.name}
        if "id" in item:
            row = {"id": item["id"], **row}
        sink.write(json.dumps(row) + "\n")
    sink.flush()


def _decide(orch: Any, text: str, context: dict[str, object], router: str | None) -> Any:
    import asyncio

    async def run() -> Any:
        try:
            return await orch.route(text, context, router)
        finally:
            await orch.aclose()

    return asyncio.run(run())


def _context(hints: dict[str, Any]) -> dict[str, object]:
    context: dict[str, object] = {
        "requires_tests": hints["requires_tests"],
        "external_apis": list(hints["external_apis"]),
        "subsystems": list(hints["subsystems"]),
        "capabilities": list(hints["capabilities"]),
    }
    if hints["files_count"] is not None:
        context["files_count"] = hints["files_count"]
    return context


def _read_task(prompt: str | None) -> str:
    if prompt is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise click.UsageError("give --prompt TEXT or pipe the task on stdin")
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise click.UsageError("the task is empty")
    return prompt


def _show(decision: Any) -> None:
    cost = decision.estimated_cost
    shown = usd_or_unknown(None if cost is None else cost.usd)
    click.echo(
        f"model: {decision.model or '(none qualifies)'}   tier {decision.tier}   router {decision.router}"
    )
    click.echo(f"complexity: {decision.complexity_score:.1f}/10   confidence {decision.confidence:.2f}")
    if decision.strong_score is not None:
        cut = (
            "no score changes the tier"
            if decision.threshold is None
            else f"the tier changes at {decision.threshold:.3f}"
        )
        click.echo(f"strong score: {decision.strong_score:.3f} ({cut})")
    click.echo(f"estimated cost: {shown}")
    for factor in decision.complexity_factors:
        detail = f"  {factor.detail}" if factor.detail else ""
        click.echo(f"  {factor.name:<14} +{factor.contribution:.2f}{detail}")
    for row in decision.tiers:
        price = "price unknown" if row.price_per_1k is None else f"{usd(row.price_per_1k)}/1k tokens"
        value = "" if row.value is None else f"  value {row.value:+.4f}"
        click.echo(f"  {'->' if row.chosen else '  '} tier {row.tier}: {price}{value}")
    click.echo(f"reason: {decision.reason}")
    for excluded in decision.excluded:
        click.echo(f"  excluded {excluded.model}: {excluded.reason}")
