"""``orchestrator train-router --from-ledger``: retrain the learned router on your own outcome labels.

Reads the labelled requests from the ledger through the façade, turns them into routing examples
(``orchestrator.retraining`` has the rules), compares a router trained on them with the router in use
by cross-validation, and writes the new router only when it routes the user's requests better (or with
``--force``). Writing over the file ``routing.learned_router`` names activates it (the old one is kept
as ``*.previous``); otherwise the output is written where asked and the config line to use it printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from model_orchestrator.ledger.feedback import LabelledRequest
    from model_orchestrator.orchestrator import Orchestrator
    from model_orchestrator.orchestrator.retraining import LedgerExamples
    from model_orchestrator.routing.dataset import RoutingExample

DEFAULT_OUTPUT = "learned_router.bin"


def train_from_ledger(
    config: str | None,
    prior_files: Sequence[str],
    output: Path | None,
    *,
    seed: int,
    force: bool,
    with_shipped_data: bool = False,
    folds: int = 5,
) -> None:
    """The whole ``--from-ledger`` run (see the module docstring); ``output`` None: the configured file."""
    from model_orchestrator.orchestrator import Orchestrator
    from model_orchestrator.orchestrator.retraining import compare, examples_from_labels, strong_tier
    from model_orchestrator.routing.dataset import families, load_examples, shipped_examples

    orch = Orchestrator.from_config(config)
    labelled = asyncio.run(_labelled(orch))
    tiers = [i.tier for i in orch.models() if i.source == "config"]  # usable or not: keys may be unset here
    made = examples_from_labels(labelled, strong_tier(tiers))
    _describe(made, orch.config.ledger.store_prompts)
    prior = [e for path in prior_files for e in load_examples(path)]
    if with_shipped_data:
        prior += shipped_examples()
    if prior:
        sizes = ", ".join(f"{name} {sum(e.family == name for e in prior)}" for name in families(prior))
        click.echo(f"prior: {len(prior)} labelled prompts ({sizes}), trained on in every fold, never scored")
    comparison = compare(made.examples, orch.router(), prior=prior, folds=folds, seed=seed)
    click.echo(
        f"{comparison.folds}-fold cross-validated APGR on your {comparison.examples} labelled requests: "
        f"new router {_num(comparison.candidate_apgr)}, current ({comparison.current}) "
        f"{_num(comparison.current_apgr)}"
    )
    if not comparison.beats and not force:
        click.echo("the new router does not beat the current one: nothing written (--force writes it anyway)")
        return
    _write(orch.config.routing.learned_router, output, made, prior, seed, comparison.beats)
    if orch.config.routing.router != "learned":
        click.echo(
            f"note: routing.router is {orch.config.routing.router}; set it to learned to route with this file"
        )


async def _labelled(orch: Orchestrator) -> list[LabelledRequest]:
    try:
        return await orch.ledger.labelled_requests()
    finally:
        await orch.aclose()


def _describe(made: LedgerExamples, storing: bool | None) -> None:
    click.echo(
        f"{made.labelled} labelled requests in the ledger: {len(made.examples)} usable, "
        f"{made.without_prompt} without a stored prompt, "
        f"{made.uninformative} saying nothing about weaker models"
    )
    if made.without_prompt and not storing:
        click.echo("note: set `ledger: {store_prompts: true}` so labelled requests keep text to learn from")


def _write(
    configured: str | None,
    output: Path | None,
    made: LedgerExamples,
    prior: Sequence[RoutingExample],
    seed: int,
    beats: bool,
) -> None:
    from model_orchestrator.orchestrator.retraining import train_and_write

    target = output or Path(configured or DEFAULT_OUTPUT)
    size = train_and_write(made.examples, prior, target, seed=seed)
    why = "it beats the current router" if beats else "--force"
    click.echo(f"wrote {target} ({size / 1024:.0f} KiB) because {why}")
    if configured is not None and target.resolve() == Path(configured).resolve():
        click.echo("active: routing.learned_router names this file (restart running servers to load it)")
    else:
        click.echo(f"use it with `routing: {{learned_router: {target}}}`")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
