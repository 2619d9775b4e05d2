"""The ``orchestrator`` command group and its error handling (exit 2 for bad input, 1 for failed calls).

Heavy imports (the façade, pydantic, the HTTP client, rich) happen inside commands, never at import.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from model_orchestrator import __version__

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class _Group(click.Group):
    """Maps our error hierarchy to exit codes and one clear line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        from model_orchestrator.core.errors import ConfigError, OrchestratorError

        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
        except OrchestratorError as exc:
            _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _list_models_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from model_orchestrator.cli.models_view import show_models

        show_models(ctx.params.get("config_path"), as_json=False)
        ctx.exit()


def _config_after_command(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    # Runs after the group's callback, so a --config given after the command wins over one before it.
    if value is not None and not ctx.resilient_parsing:
        ctx.ensure_object(dict)["config"] = value


def _accept_config_after(command: click.Command) -> None:
    """Let ``orchestrator COMMAND --config FILE`` mean ``orchestrator --config FILE COMMAND``."""
    if not any("--config" in p.opts for p in command.params):
        command.params.append(
            click.Option(
                ["--config"],
                type=click.Path(dir_okay=False),
                expose_value=False,
                callback=_config_after_command,
                help="Path to orchestrator.yaml (also accepted before the command).",
            )
        )
    for sub in getattr(command, "commands", {}).values():
        _accept_config_after(sub)


@click.group(
    cls=_Group,
    invoke_without_command=True,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="orchestrator")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="ORCHESTRATOR_CONFIG",
    help="Path to orchestrator.yaml (default: $ORCHESTRATOR_CONFIG, then ./orchestrator.yaml).",
)
@click.option("-v", "--verbose", count=True, help="Log more to stderr (-v info, -vv debug).")
@click.option(
    "--log-json",
    is_flag=True,
    envvar="ORCHESTRATOR_LOG_JSON",
    help="Log to stderr as JSON lines (provider switches, breakers, retries; info level unless -vv).",
)
@click.option(
    "--list-models",
    is_flag=True,
    expose_value=False,
    is_eager=False,
    callback=_list_models_flag,
    help="Same as `orchestrator models`.",
)
@click.option(
    "--test",
    "self_test",
    is_flag=True,
    help="Self-check after installing: config, provider probes, and every strategy against the embedded "
    "model and a local fake upstream. Exit 1 on any failure.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, log_json: bool, self_test: bool) -> None:
    """Send each LLM request to the right model: routing, fallbacks, cascades, ensembles, budgets."""
    ctx.obj = {"config": config_path}
    if verbose or log_json:
        import logging

        from model_orchestrator.telemetry.logs import configure_logging

        configure_logging(json_lines=log_json, level=logging.DEBUG if verbose > 1 else logging.INFO)
    else:
        from model_orchestrator.telemetry.setup import show_warnings

        show_warnings()  # a collector that is down says so once, even without -v
    if self_test:
        from model_orchestrator.cli.self_test import run_self_test

        ctx.exit(0 if run_self_test(config_path) else EXIT_FAILED)
    if ctx.invoked_subcommand is None:
        raise click.UsageError("Missing command.")


def _register(command: Callable[..., Any]) -> None:
    assert isinstance(command, click.Command)
    _accept_config_after(command)
    cli.add_command(command)


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def models_command(ctx: click.Context, as_json: bool) -> None:
    """List models: name, provider, tier, context window, prices, whether usable now."""
    from model_orchestrator.cli.models_view import show_models

    show_models(ctx.obj["config"], as_json)


@click.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--no-probe", is_flag=True, help="Report the state gathered so far without probing.")
@click.pass_context
def health_command(ctx: click.Context, as_json: bool, no_probe: bool) -> None:
    """Probe every usable deployment (free model-list requests) and show breaker and cooldown state.

    Exits 1 when any deployment is unhealthy, so scripts and monitors can use it.
    """
    from model_orchestrator.cli.health_view import show_health

    if not show_health(ctx.obj["config"], as_json=as_json, probe=not no_probe):
        sys.exit(EXIT_FAILED)


def _register_all() -> None:
    from model_orchestrator.cli.run import run_command
    from model_orchestrator.cli.validate import validate_command

    _register(models_command)
    _register(run_command)
    _register(validate_command)
    _register(health_command)
    from model_orchestrator.cli.costs import costs_group

    _register(costs_group)
    from model_orchestrator.cli.mcp_command import mcp_command

    _register(mcp_command)
    from model_orchestrator.cli.keys import keys_group
    from model_orchestrator.cli.serve import serve_command

    _register(serve_command)
    _register(keys_group)
    from model_orchestrator.cli.route import route_command
    from model_orchestrator.cli.routers import eval_router_command, train_router_command

    _register(route_command)
    _register(eval_router_command)
    _register(train_router_command)
    from model_orchestrator.cli.feedback import feedback_command

    _register(feedback_command)


_register_all()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="orchestrator")
