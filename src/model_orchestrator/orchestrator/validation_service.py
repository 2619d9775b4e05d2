"""``ValidationService``: checking an answer against its task (seed 003's verdict), and the default judge.

The checks and the verdict are ``strategies.validate``'s; this picks the judge, and runs the judge call
as a request like any other (``RequestPath.begin``: scope, budget, ``RequestStarted``/``Finished``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.request_scope import request_scope
from model_orchestrator.orchestrator.request_path import RequestPath

if TYPE_CHECKING:
    from model_orchestrator.config.registry import ModelRegistry
    from model_orchestrator.config.schema import ValidationConfig
    from model_orchestrator.config.strategy_registry import NameResolver
    from model_orchestrator.strategies.validate import ValidationResult


class ValidationService:
    """Validates with ``names``' models through ``path``, with the config's ``validation`` settings."""

    def __init__(
        self, path: RequestPath, names: NameResolver, registry: ModelRegistry, settings: ValidationConfig
    ) -> None:
        self._path = path
        self._names = names
        self._registry = registry
        self._settings = settings

    def default_judge(self) -> str | None:
        """The model ``validate`` asks: config ``validation.judge``, else the strongest usable model (the
        rule is ``config.default_models``'s), else None."""
        from model_orchestrator.config.default_models import strongest

        return self._settings.judge or strongest(self._registry.infos())

    async def validate(
        self,
        task: str,
        output: str,
        *,
        judge: str | None = None,
        validators: Sequence[str] = (),
        max_cost: float | None = None,
    ) -> ValidationResult:
        """Check ``output`` against ``task``: seed 003's verdict (pass, up to 3 issues, confidence, escalate).

        ``validators`` (``python``, ``json``) run first; a failure is final. Then ``judge`` (default:
        ``default_judge()``) reads task and output, unless there is none and validators alone decide.
        The judge call is a request like any other: events, budget (``max_cost``) and cost.
        """
        from model_orchestrator.strategies.validate import builtin_validator, check_output

        checks = [builtin_validator(v) for v in validators]
        name = judge or self.default_judge()
        if name is None and not checks:
            raise ConfigError(
                "no judge model is usable and no validator was given: set validation.judge in "
                "orchestrator.yaml, make a model usable, or ask for validators (python, json)"
            )
        judge_model = self._names.resolve(name) if name else None
        request = self._path.request(task, max_cost, {})
        lifecycle = self._path.begin(request, name or "validators", "validate")
        lifecycle.start()
        try:
            with request_scope(lifecycle.scope):
                verdict, completion = await check_output(
                    task,
                    output,
                    judge=judge_model,
                    validators=checks,
                    threshold=self._settings.threshold or 0.7,
                    base=request,
                )
        except BaseException as exc:
            lifecycle.failed(exc)
            raise
        lifecycle.succeeded(
            model_used=name if completion else None,
            cost=lifecycle.scope.total_cost,
            input_tokens=completion.usage.input_tokens if completion else 0,
            output_tokens=completion.usage.output_tokens if completion else 0,
            explanation=None,
            response_text=None,
        )
        return verdict
