"""The MCP tools: seed 003's ``orchestrator_route``, ``orchestrator_execute``, ``orchestrator_validate`` and
``orchestrator_costs``, plus ``orchestrator_models`` and ``orchestrator_feedback``; each one a thin call into
the façade.

Owns what a model reads to choose and call a tool (names, descriptions, argument schemas), turning our
errors into MCP tool errors with clear text, and applying the caller's key over HTTP (``http_access`` puts
the ``Principal`` in the request): a virtual key may use only the models it lists, sees only those, reads
no costs and labels only its own requests; its error texts name no internal host. Over stdio the caller is
the operator. It does not route, call models or keep costs itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ConfigDict, Field

from model_orchestrator.core.errors import OrchestratorError
from model_orchestrator.mcp.http_access import PRINCIPAL_SCOPE_KEY
from model_orchestrator.orchestrator.access import (
    CLI_AGENT_REFUSAL,
    OPEN,
    Principal,
    starts_host_agent,
    without_hosts,
)

if TYPE_CHECKING:
    from model_orchestrator.orchestrator import Orchestrator

# Strategies built on the fly from a list of members; strategies named in config are used through ``model``.
Strategy = Literal[
    "single", "route", "cheapest", "fallback", "cascade", "ensemble", "race", "hedge", "cross-validate"
]
ValidatorName = Literal["python", "json"]
Capability = Literal[
    "text", "vision", "tools", "json", "json_schema", "code", "long_context", "reasoning", "logprobs"
]
RouterName = Literal["learned", "generic", "complexity", "length"]
Period = Literal["daily", "weekly", "monthly"]
Dimension = Literal["model", "provider", "deployment", "strategy", "category", "key"]


class TaskContext(BaseModel):
    """What the router should know about a task beyond its text (seed 003's context hints)."""

    model_config = ConfigDict(extra="forbid")

    files_count: int | None = Field(
        default=None, ge=0, description="How many files the task touches: 1 is simple, 5 or more is complex."
    )
    requires_tests: bool = Field(default=False, description="Whether tests have to be written or updated.")
    external_apis: list[str] = Field(
        default_factory=list, description="External APIs or services involved, e.g. ['OAuth2', 'Stripe']."
    )
    subsystems: list[str] = Field(
        default_factory=list, description="Subsystems the task spans, e.g. ['api', 'auth', 'database']."
    )
    capabilities: list[Capability] = Field(
        default_factory=list, description="What the model must support, e.g. ['vision'] or ['tools']."
    )


@contextmanager
def tool_errors(caller: Principal = OPEN) -> Iterator[None]:
    """Our errors become MCP tool errors (``isError``) carrying the error's class and its message, which
    says what went wrong and what to do (unknown models come with suggestions); a key holder's copy names
    no internal host."""
    try:
        yield
    except OrchestratorError as exc:
        text = f"{type(exc).__name__}: {exc}"
        raise ToolError(text if caller.master else without_hosts(text)) from exc


def caller_of(ctx: Context[Any, Any] | None) -> Principal:
    """Who called: the key ``http_access`` checked (HTTP), the operator (stdio: no HTTP request)."""
    request = ctx.request_context.request if ctx is not None else None
    if request is None:
        return OPEN
    principal = getattr(request, "scope", {}).get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal):  # fail closed: an HTTP request nobody checked
        raise ToolError("This request was not authenticated.")
    return principal


def _require(allowed: bool, caller: Principal, what: str) -> None:
    if not allowed:
        raise ToolError(f"API key {caller.key_id} is not allowed to use {what}.")


def _refuse_host_agents(*names: str | None) -> None:
    if any(name is not None and starts_host_agent(name) for name in names):
        raise ToolError(CLI_AGENT_REFUSAL + ".")


class OrchestratorTools:
    """The tools, bound to one ``Orchestrator``; each public coroutine is registered as one MCP tool."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orch = orchestrator

    async def orchestrator_route(
        self,
        task: Annotated[str, Field(min_length=1, description="The task to route, in plain words.")],
        context: Annotated[
            TaskContext | None, Field(description="Optional hints; they make the score more accurate.")
        ] = None,
        router: Annotated[
            RouterName | None,
            Field(
                description="learned (trained on which prompts a weak model gets right), generic "
                "(task-family neutral features, for prompts unlike the training data), complexity "
                "(the 0-10 factor score alone) or length. Default: the configured router."
            ),
        ] = None,
        ctx: Context[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """Recommend the cheapest configured model able to do a task, without running anything.

        Scores the task's complexity from 0 to 10 (length, keywords, files, tests, external APIs,
        subsystems) and maps it to a model tier, leaving out models that lack a capability, the context
        window or are down. Returns model (null when none qualifies), complexity_score, complexity_factors,
        reason, confidence, estimated_cost (USD) and the models excluded with why. Call it before
        orchestrator_execute to pick the model.
        """
        hints = context.model_dump(exclude_none=True) if context else None
        with tool_errors(caller_of(ctx)):
            decision = await self._orch.routing.route(task, hints, router)
        return decision.to_dict()

    async def orchestrator_execute(
        self,
        prompt: Annotated[str, Field(min_length=1, description="The prompt to answer.")],
        model: Annotated[
            str | None,
            Field(
                description="A model or configured strategy name (see orchestrator_models); with `strategy`, "
                "the single member. Default: the configured default model."
            ),
        ] = None,
        strategy: Annotated[
            Strategy | None,
            Field(
                description="Combine models: route (the cheapest model the task needs), fallback (next on "
                "error), cascade (escalate on low confidence), ensemble (vote), race (first answer), hedge, "
                "cross-validate, cheapest. Default: single."
            ),
        ] = None,
        members: Annotated[
            list[str] | None,
            Field(
                description="The models a strategy uses, in order. Default: the cheapest usable model "
                "of each tier, weakest first."
            ),
        ] = None,
        max_tokens: Annotated[int | None, Field(ge=1, description="Cap on generated tokens.")] = None,
        max_cost: Annotated[
            float | None,
            Field(ge=0, description="Most the whole request may spend, in USD, retries included."),
        ] = None,
        system: Annotated[str | None, Field(description="An optional system prompt.")] = None,
        ctx: Context[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """Answer a prompt with a model, or with a strategy over several models, and report what it cost.

        Returns response, model_used, cost (USD, null when a price is unknown), latency (s), confidence,
        input_tokens, output_tokens, strategy, fallback_chain (models tried, in order), ensemble_models,
        metadata (explanation of every step), timestamp, and seed 003's success (true; a failure is a
        tool error) and tokens (input plus output).
        """
        caller = caller_of(ctx)
        _refuse_host_agents(model, *(members or ()))
        if strategy is not None:
            names = list(members or ([model] if model else []))
            _require(
                caller.may_use_all(names), caller, f"a {strategy} strategy over {names or 'the defaults'}"
            )
        else:
            name = model or self._default_model() or ""
            _require(caller.may_use(name), caller, f"model {name!r}")
        with tool_errors(caller):
            result = await self._orch.complete(
                prompt,
                model=model,
                strategy=strategy,
                members=members,
                max_cost=max_cost,
                max_tokens=max_tokens,
                system=system,
            )
        tokens = result.input_tokens + result.output_tokens
        return {**result.to_dict(), "success": True, "tokens": tokens}

    async def orchestrator_validate(
        self,
        task: Annotated[str, Field(min_length=1, description="What the output was supposed to accomplish.")],
        output: Annotated[str, Field(description="The output to check (code, text, JSON).")],
        validators: Annotated[
            list[ValidatorName] | None,
            Field(
                description="Deterministic checks run first: python (the code parses), json (the output "
                "holds JSON). A failure is final and the judge is not asked."
            ),
        ] = None,
        judge: Annotated[
            str | None,
            Field(description="The model that judges. Default: config validation.judge, else the strongest."),
        ] = None,
        max_cost: Annotated[
            float | None, Field(ge=0, description="Most the judge call may spend, in USD.")
        ] = None,
        ctx: Context[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """Check whether an output accomplishes a task: validators first, then a judge model.

        Returns pass (bool), issues (at most 3, most important first), confidence (0-1), escalate (true when
        a person or a stronger model should look) and checked_by. Use it after complex or risky work.
        """
        caller = caller_of(ctx)
        chosen = judge or self._orch.validation.default_judge() or ""
        _require(caller.may_use(chosen), caller, f"judge {chosen!r} (name a judge the key lists)")
        with tool_errors(caller):
            verdict = await self._orch.validation.validate(
                task, output, judge=judge, validators=validators or (), max_cost=max_cost
            )
        return verdict.to_dict()

    async def orchestrator_costs(
        self,
        period: Annotated[Period, Field(description="Group spend per day, ISO week or month.")] = "daily",
        by: Annotated[
            Dimension,
            Field(description="Split spend by model, provider, deployment, strategy, category or key id."),
        ] = "model",
        category: Annotated[str | None, Field(description="Only requests of this category.")] = None,
        since: Annotated[
            str | None, Field(description="Start, an ISO date or datetime in UTC, e.g. 2026-11-01.")
        ] = None,
        until: Annotated[str | None, Field(description="End, an ISO date (inclusive) or datetime.")] = None,
        ctx: Context[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """Report what has been spent, from the cost ledger (every attempt, failed and retried included).

        Returns period, by, rows (one per period and group: attempts, failed, requests, input_tokens,
        output_tokens, cost in USD, unpriced_attempts, ...) and total. Use it to watch a budget.
        """
        caller = caller_of(ctx)
        _require(caller.master, caller, "the cost report (it needs the master key)")
        with tool_errors(caller):
            report = await self._orch.costs.report(
                period=period, by=by, category=category, since=since, until=until
            )
        return report.to_dict()

    async def orchestrator_feedback(
        self,
        request_id: Annotated[
            str,
            Field(
                min_length=1,
                max_length=64,
                description="The request_id from orchestrator_execute's result (in metadata).",
            ),
        ],
        score: Annotated[
            float,
            Field(description="How good the answer was: 0 (wrong or useless) to 1 (right), or in between."),
        ],
        ctx: Context[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """Record how good an answer from orchestrator_execute turned out to be (after checking it).

        The label is kept in the cost ledger; `orchestrator train-router --from-ledger` retrains routing on
        such labels. Returns id, request_id, score, model (whose answer was labelled) and created_at.
        """
        caller = caller_of(ctx)
        with tool_errors(caller):
            receipt = await self._orch.routing.feedback(
                request_id, score, api_key_id=None if caller.master else caller.key_id
            )
        return receipt.to_dict()

    async def orchestrator_models(
        self,
        include_unusable: Annotated[
            bool, Field(description="Also list models that cannot be used now, with the reason.")
        ] = False,
        ctx: Context[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """List the models and strategies orchestrator_execute accepts: names, providers, tiers, context
        windows and prices (USD per million tokens), plus the default model and judge."""
        caller = caller_of(ctx)
        infos = [i for i in self._orch.models() if caller.may_use(i.name)]
        return {
            "default_model": self._default_model(),
            "default_judge": self._orch.validation.default_judge(),
            "models": [
                i.to_dict() for i in infos if i.provider != "strategy" and (i.usable or include_unusable)
            ],
            "strategies": [{"name": i.name, "type": i.model_id} for i in infos if i.provider == "strategy"],
            "inline_strategies": list(get_args(Strategy)),
        }

    def _default_model(self) -> str | None:
        try:
            return self._orch.default_model
        except OrchestratorError:
            return None
