"""``orchestrator run``: answer one prompt and print the answer, or the seed-004 JSON with ``--json``."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from model_orchestrator.cli.params import FiniteFloat
from model_orchestrator.core.money import usd_or_unknown
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
    "hybrid",
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
    help="Combine models on the fly; members come from --chain, else the default chain (the cheapest usable "
    "model of each tier, weakest first).",
)
@click.option(
    "--chain", help="Comma-separated members for --strategy (label=model pairs for specialist and hybrid)."
)
@click.option(
    "--ensemble-size",
    type=click.IntRange(2, 16),
    help="ensemble: N members taken from --chain (or the default chain) in order, cycling; a model asked "
    "more than once is sampled (temperature, distinct seeds).",
)
@click.option(
    "--threshold",
    type=FiniteFloat(0.0, 1.0),
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
    type=FiniteFloat(0.0, 1.0),
    help="cheapest/route: share of prompts the router should send to the strong tier (default 0.3).",
)
@click.option(
    "--router",
    type=click.Choice(["learned", "generic", "complexity", "length", "none"]),
    help="cheapest/route: what judges the task (default learned; generic: the transfer-minded router; "
    "none: price only, cheapest).",
)
@click.option("--max-cost", type=FiniteFloat(min=0.0), help="Most the whole request may spend, in USD.")
@click.option("--system", help="A system prompt.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Cap on generated tokens.")
@click.option(
    "--context-overflow",
    type=click.Choice(CONTEXT_OVERFLOW_MODES),
    help="When the prompt does not fit a model's context window: error (the default), cut it "
    "(truncate-start, truncate-end, truncate-middle, smart) or summarize older turns. Overrides config.",
)
@click.option("--temperature", type=FiniteFloat(0.0, 2.0), help="Sampling temperature.")
@click.option("--timeout", type=FiniteFloat(min=0.001), help="Deadline for the whole request, in seconds.")
@click.option(
    "--category",
    help="Record the request under this category in the cost ledger (costs report --category NAME).",
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
    if output is not None:
        _check_output_dir(output)
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
    saved_elsewhere = _save(output, data) if output else None
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(result.response)
        click.echo(_summary(result), err=True)
    if saved_elsewhere is not None:
        click.echo(saved_elsewhere, err=True)
        sys.exit(1)


def _check_output_dir(output: str) -> None:
    """Refuse, before anything is paid for, an --output whose directory does not exist."""
    folder = Path(output).expanduser().resolve().parent
    if not folder.is_dir():
        raise click.BadParameter(
            f"the directory {str(folder)!r} does not exist; create it or choose another path",
            param_hint="'--output'",
        )


def _save(output: str, data: dict[str, object]) -> str | None:
    """Write the result JSON to ``output``; None when that worked, else what went wrong and where the
    (already paid for) result was written instead: a temporary file, else stderr."""
    text = json.dumps(data, indent=2) + "\n"
    try:
        Path(output).write_text(text, encoding="utf-8")
        return None
    except OSError as exc:
        problem = f"error: could not write the result to {output!r} ({exc.strerror or exc})"
    try:
        with tempfile.NamedTemporaryFile(
            "w", prefix="orchestrator-result-", suffix=".json", delete=False, encoding="utf-8"
        ) as spare:
            spare.write(text)
        return f"{problem}; the result was saved to {spare.name} instead"
    except OSError:
        return f"{problem}; nowhere else could be written either, so here it is:\n{text}"


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


def _summary(result: Any) -> str:
    """The line under an answer: model, strategy, tokens, cost, latency."""
    via = f" via {result.strategy}" if result.strategy != "single" else ""
    return (
        f"[{result.model_used}{via} · {result.input_tokens} in / {result.output_tokens} out tokens · "
        f"cost {usd_or_unknown(result.cost)} · {result.latency:.2f}s]"
    )


async def _stream(orch: Any, text: str, options: dict[str, Any]) -> None:
    try:
        async with orch.stream(text, **options) as stream:
            async for delta in stream:
                if delta.text:
                    click.echo(delta.text, nl=False)
            result = stream.result()
    finally:
        await orch.aclose()
    click.echo("")
    click.echo(_summary(result), err=True)
