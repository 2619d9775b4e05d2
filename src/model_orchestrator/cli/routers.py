"""``orchestrator eval-router`` and ``orchestrator train-router``: measure routers, train your own.

These are offline tools over labelled JSON-lines files (``routing/dataset.py`` describes the format):
they read files and write a table, a PNG or a router file, and call no model, so they use ``routing``
directly rather than the façade. numpy (and matplotlib for ``--plot``) come with the ``routing`` extra.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from model_orchestrator.cli.params import FiniteFloat

_DATA_HELP = "A JSON-lines file of labelled prompts (repeat for several benchmarks)."


@click.command("eval-router")
@click.option(
    "--data", "data_files", multiple=True, required=True, type=click.Path(dir_okay=False), help=_DATA_HELP
)
@click.option(
    "--router", "routers", multiple=True, help="Evaluate only these routers (repeat; default: all)."
)
@click.option(
    "--cv",
    "cv_folds",
    type=click.IntRange(min=0),
    default=0,
    help="Also cross-validate the learned router over K folds of the data (learned-cv).",
)
@click.option(
    "--leave-one-out", is_flag=True, help="Also train without each benchmark and test on it (learned-lofo)."
)
@click.option(
    "--learned-router",
    type=click.Path(dir_okay=False, exists=True),
    help="A router file (default: the shipped one).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random routing and the folds.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Write the quality vs strong-call-share curves here (PNG).",
)
@click.option(
    "--learning-curve",
    is_flag=True,
    help="Also train on growing numbers of each benchmark's prompts and print APGR against that number "
    "(with --plot, drawn in FILE-learning.png).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (curves included) instead of tables.")
def eval_router_command(
    data_files: tuple[str, ...],
    routers: tuple[str, ...],
    cv_folds: int,
    leave_one_out: bool,
    learned_router: str | None,
    seed: int,
    plot: str | None,
    learning_curve: bool,
    as_json: bool,
) -> None:
    """RouteLLM's metrics (APGR, CPT(50%), CPT(80%)) per benchmark for every router."""
    from model_orchestrator.routing.dataset import load_examples
    from model_orchestrator.routing.evaluation import EvaluationOptions, evaluate

    examples = [e for path in data_files for e in load_examples(path)]
    options = EvaluationOptions(
        routers=routers,
        learned_path=Path(learned_router) if learned_router else None,
        cv_folds=cv_folds,
        leave_one_out=leave_one_out,
        seed=seed,
    )
    reports = evaluate(examples, options)
    curve = _learning_curve(examples, seed, plot) if learning_curve else None
    if plot:
        from model_orchestrator.routing.plot import plot_reports

        plot_reports(reports, plot)
    if as_json:
        rows = [r.to_dict() for r in reports]
        shown: object = rows if curve is None else {"benchmarks": rows, "learning_curve": curve}
        click.echo(json.dumps(shown, indent=2))
        return
    for report in reports:
        _print_report(report)
    if curve is not None:
        _print_curve(curve)
    if plot:
        click.echo(f"curves written to {plot}" + (f" and {_curve_file(plot)}" if curve is not None else ""))


def _curve_file(plot: str) -> Path:
    path = Path(plot)
    return path.with_name(f"{path.stem}-learning{path.suffix or '.png'}")


def _learning_curve(examples: Any, seed: int, plot: str | None) -> list[dict[str, object]]:
    from model_orchestrator.routing.learning_curve import learning_curve

    points = learning_curve(examples, seed=seed)
    if plot:
        from model_orchestrator.routing.plot import plot_learning_curve

        plot_learning_curve(points, _curve_file(plot))
    return [p.to_dict() for p in points]


def _print_curve(curve: list[dict[str, Any]]) -> None:
    click.echo("\nlearning curve: APGR on held-out prompts, trained on N labelled prompts of the benchmark")
    click.echo(f"  {'benchmark':<12} {'N':>6} {'learned':>8} {'generic':>8}")
    for row in curve:
        click.echo(
            f"  {row['benchmark']:<12} {row['labelled']:>6} {_num(row['learned_apgr']):>8} "
            f"{_num(row['generic_apgr']):>8}"
        )


def _print_report(report: Any) -> None:
    from model_orchestrator.routing.evaluation import YARDSTICK

    click.echo(
        f"\n{report.benchmark}: {report.count} prompts; quality weak {report.weak_quality:.3f}, "
        f"strong {report.strong_quality:.3f}"
    )
    click.echo(f"  {'router':<24} {'APGR':>6} {'CPT(50%)':>9} {'CPT(80%)':>9}")
    for m in report.metrics:
        click.echo(f"  {m.router:<24} {_num(m.apgr):>6} {_pct(m.cpt50):>9} {_pct(m.cpt80):>9}")
    for point in report.fixed:
        click.echo(
            f"  {point.router:<24} {'-':>6} {'-':>9} {'-':>9}   "
            f"quality {point.quality:.3f} at {point.strong_share:.0%} strong calls"
        )
    yardstick = YARDSTICK.get(report.benchmark)
    if yardstick:
        apgr, cpt50, cpt80 = yardstick
        click.echo(f"  {'RouteLLM best (paper)':<24} {_num(apgr):>6} {_pct(cpt50):>9} {_pct(cpt80):>9}")
    for note in report.notes:
        click.echo(f"  note: {note}")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


@click.command("train-router")
@click.option(
    "--data",
    "data_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help=_DATA_HELP + " With --from-ledger: extra training data (a prior), not scored.",
)
@click.option(
    "--from-ledger",
    is_flag=True,
    help="Train on the ledger's outcome labels (feedback, cascade and validation verdicts); write the "
    "router only if it beats the current one by cross-validation.",
)
@click.option(
    "--with-shipped-data",
    is_flag=True,
    help="Also train on the data the packaged router was trained on (RouteLLM-derived MMLU, GSM8K, "
    "MT-Bench); with --from-ledger it is a prior, not scored.",
)
@click.option("--force", is_flag=True, help="With --from-ledger: write the new router even if it loses.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default="learned_router.bin",
    show_default=True,
    help="Where to write the router file.",
)
@click.option("--l2", type=FiniteFloat(min=0.0, min_open=True), help="Ridge penalty (default 3.0).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the calibration folds.")
@click.pass_context
def train_router_command(
    ctx: click.Context,
    data_files: tuple[str, ...],
    from_ledger: bool,
    with_shipped_data: bool,
    force: bool,
    output: str,
    l2: float | None,
    seed: int,
) -> None:
    """Train a learned router on your own labelled prompts; use it with routing.learned_router: PATH."""
    from dataclasses import replace

    if from_ledger:
        from model_orchestrator.cli.retrain import train_from_ledger

        given = ctx.get_parameter_source("output") is not click.core.ParameterSource.DEFAULT
        train_from_ledger(
            ctx.obj["config"],
            data_files,
            Path(output) if given else None,
            seed=seed,
            force=force,
            with_shipped_data=with_shipped_data,
        )
        return
    if not data_files and not with_shipped_data:
        raise click.UsageError("give --data FILE (labelled prompts), --with-shipped-data or --from-ledger")

    from model_orchestrator.routing.dataset import load_examples, shipped_examples
    from model_orchestrator.routing.training import TrainingSettings, train_router

    examples = [e for path in data_files for e in load_examples(path)]
    if with_shipped_data:
        examples += shipped_examples()
    settings = TrainingSettings(seed=seed)
    if l2 is not None:
        settings = replace(settings, l2=l2)
    started = time.perf_counter()
    data, summary = train_router(examples, settings)
    Path(output).write_bytes(data)
    families = ", ".join(f"{name} {count}" for name, count in summary["families"].items())
    click.echo(
        f"trained on {summary['examples']} prompts ({families}) in {time.perf_counter() - started:.1f}s"
    )
    for small, large in summary.get("pooled", {}).items():
        click.echo(f"{small} is too small for weights of its own: pooled with {large}")
    if summary.get("family_recognised") is not None and len(summary["families"]) > 1:
        share = summary["family_recognised"]
        click.echo(f"task family recognised from the prompt in {share:.1%} of held-out prompts")
    if "tree_factors" in summary:
        factors = ", ".join(
            f"{name} {factor:.2f}" if factor else f"{name} off"
            for name, factor in summary["tree_factors"].items()
        )
        click.echo(f"boosted trees on the prompt's counts, weight per family (out of fold): {factors}")
    click.echo(
        f"wrote {output} ({len(data) / 1024:.0f} KiB); use it with `routing: {{learned_router: {output}}}`"
    )
