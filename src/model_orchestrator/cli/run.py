"""``orchestrator run``: answer one prompt and print the answer, or the seed-004 JSON with ``--json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from model_orchestrator.core.request import CONTEXT_OVERFLOW_MODES

_STRATEGIES = (
    "single",
    "cheapest",
    "route",
    "fallback",
    "cascade",
    "ensemble",
    "race",
    "hedge",
    "pipeline",
    "specialist",
    "cross-validate",
)


@click.command("run")
@click.option("-p", "--prompt", help="The prompt; read from stdin when omitted.")
@click.option(
    "-m",
    "--model",
    help="Model or strategy name (a configured one, or inline like fallback:a,b). "
    "Default: the config's default_model, else the embedded model.",
)
@click.option(
    "-s",
    "--strategy",
    type=click.Choice(_STRATEGIES),
    default="single",
    show_default=True,
    help="Combine models on the fly; members come from --chain, else usable models by tier and price.",
)
@click.option("--chain", help="Comma-separated members for --strategy (label=model pairs for specialist).")
@click.option(
    "--ensemble-size", type=click.IntRange(2, 16), help="Members (or samples of one model) for ensemble."
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    help="Confidence below which fallback/cascade move on (cascade default 0.7); for cheapest/route, the "
    "router's strong-score threshold.",
)
@click.option(
    "--extractor", help="How ensemble votes read answers: choice, number, text, json:FIELD or regex:PATTERN."
)
@click.option(
    "--scorer",
    type=click.Choice(
        [
            "logprob",
            "logprob-min",
            "self-reported",
            "agreement",
            "answer-check",
            "answer-check+learned",
            "answer-format",
            "hedging",
        ]
    ),
    help="How fallback/cascade judge confidence (default self-reported; answer-* read the cheap answer).",
)
@click.option(
    "--strong-share",
    type=click.FloatRange(0.0, 1.0),
    help="cheapest/route: share of prompts the router should send to the strong tier (default 0.3).",
)
@click.option(
    "--router",
    type=click.Choice(["learned", "complexity", "length", "none"]),
    help="cheapest/route: what judges the task (default learned; none: price only, cheapest).",
)
@click.option("--max-cost", type=click.FloatRange(min=0.0), help="Most the whole request may spend, in USD.")
@click.option("--system", help="A system prompt.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Cap on generated tokens.")
@click.option(
    "--context-overflow",
    type=click.Choice(CONTEXT_OVERFLOW_MODES),
    help="When the prompt does not fit a model's context window: error (the default), cut it "
    "(truncate-start, truncate-end, truncate-middle, smart) or summarize older turns. Overrides config.",
)
@click.option("--temperature", type=click.FloatRange(0.0, 2.0), help="Sampling temperature.")
@click.option(
    "--timeout", type=click.FloatRange(min=0.001), help="Deadline for the whole request, in seconds."
)
@click.option("--logprobs", is_flag=True, help="Ask for token log-probabilities (gives a confidence).")
@click.option("--stream", "stream_output", is_flag=True, help="Print the answer as it is generated.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON (response, model_used, cost, ...)."
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Also write the result JSON here."
)
@click.option("--quiet", is_flag=True, help="No progress display on a terminal.")
@click.pass_context
def run_command(
    ctx: click.Context,
    /,
    prompt: str | None,
    chain: str | None,
    as_json: bool,
    output: str | None,
    stream_output: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Answer a prompt and report model, tokens, cost, latency and how the answer was reached."""
    text = _read_prompt(prompt)
    if stream_output and (as_json or output):
        raise click.UsageError(
            "--stream prints text as it comes; it cannot be combined with --json or --output"
        )
    if chain is not None:
        options["members"] = [m.strip() for m in chain.split(",") if m.strip()]
    from model_orchestrator.orchestrator import Orchestrator

    orch = Orchestrator.from_config(ctx.obj["config"])
    from model_orchestrator.cli.costs_view import BudgetWarningPrinter

    orch.events.subscribe(BudgetWarningPrinter())
    if stream_output:
        import asyncio

        asyncio.run(_stream(orch, text, options))
        return
    result = _complete_with_progress(
        orch, text, options, show=not quiet and not as_json and sys.stderr.isatty()
    )
    data = result.to_dict()
    if output:
        Path(output).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(result.response)
    cost = "unknown" if result.cost is None else f"${result.cost:.6f}"
    via = f" via {result.strategy}" if result.strategy != "single" else ""
    click.echo(
        f"[{result.model_used}{via} · {result.input_tokens} in / {result.output_tokens} out tokens · "
        f"cost {cost} · {result.latency:.2f}s]",
        err=True,
    )


def _complete_with_progress(orch: Any, text: str, options: dict[str, Any], *, show: bool) -> Any:
    if not show:
        return orch.complete_sync(text, **options)
    from model_orchestrator.cli.progress import ProgressView

    with ProgressView(orch.events):
        return orch.complete_sync(text, **options)


def _read_prompt(prompt: str | None) -> str:
    if prompt is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise click.UsageError("give --prompt TEXT or pipe the prompt on stdin")
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise click.UsageError("the prompt is empty")
    return prompt


async def _stream(orch: Any, text: str, options: dict[str, Any]) -> None:
    usage = None
    try:
        async for delta in orch.stream(text, **options):
            if delta.text:
                click.echo(delta.text, nl=False)
            usage = delta.usage or usage
    finally:
        await orch.aclose()
    click.echo("")
    if usage is not None:
        click.echo(f"[{usage.input_tokens} in / {usage.output_tokens} out tokens]", err=True)
