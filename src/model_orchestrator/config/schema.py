"""The pydantic schema of ``orchestrator.yaml``. Owns shape and validation; not finding or building anything.

Keys are named by environment variable (``api_key_env``), never written in the file.
"""

from __future__ import annotations

import math
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model_orchestrator.config.field_checks import (
    check_api_base,
    check_headers,
    check_headers_env,
    check_preset,
    check_variable_name,
    preset_names,
)
from model_orchestrator.config.routing import RoutingConfig
from model_orchestrator.config.state import StateConfig
from model_orchestrator.core.request import ContextOverflow

MAX_NAME_LENGTH = 256

Capability = Literal[
    "text", "vision", "tools", "json", "json_schema", "code", "long_context", "reasoning", "logprobs"
]


class PriceConfig(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    reasoning: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class DeploymentConfig(BaseModel):
    """One more endpoint or key serving the same model; unset fields come from the model."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    api_base: str | None = None
    api_key_env: str | None = None
    api_version: str | None = None
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    connect_timeout: float | None = Field(default=None, gt=0)
    headers: dict[str, str] | None = Field(default=None, repr=False)
    headers_env: dict[str, str] | None = None

    _variable_name = field_validator("api_key_env")(check_variable_name)
    _api_base = field_validator("api_base")(check_api_base)
    _headers = field_validator("headers")(check_headers)
    _headers_env = field_validator("headers_env")(check_headers_env)


class ContextConfig(BaseModel):
    """What a model or strategy does with a prompt larger than its context window (``context:``).

    ``error`` (a model's default) refuses before sending; the truncations cut it; ``summarize`` has the
    older turns summarised by ``summarizer`` (default: the model or strategy itself).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    overflow: ContextOverflow
    summarizer: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)


class ModelConfig(BaseModel):
    """One named model: a provider's model at one endpoint with one key (a deployment)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    provider: str = Field(min_length=1)
    model: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    api_base: str | None = None
    api_key_env: str | None = None
    api_version: str | None = None
    price: PriceConfig | None = None
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    tier: int | None = Field(default=None, ge=0, le=5)
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    capabilities: tuple[Capability, ...] | None = None
    command: tuple[str, ...] | None = None
    preset: str | None = None
    output_format: Literal["text", "json"] | None = None
    timeout: float | None = Field(default=None, gt=0)
    connect_timeout: float | None = Field(default=None, gt=0)
    stall_timeout: float | None = Field(default=None, gt=0)
    headers: dict[str, str] | None = Field(default=None, repr=False)
    headers_env: dict[str, str] | None = None
    retry: RetryConfig | None = None
    breaker: BreakerConfig | None = None
    deployments: tuple[DeploymentConfig, ...] | None = Field(default=None, min_length=1)
    context: ContextConfig | None = None

    _variable_name = field_validator("api_key_env")(check_variable_name)
    _api_base = field_validator("api_base")(check_api_base)
    _headers = field_validator("headers")(check_headers)
    _headers_env = field_validator("headers_env")(check_headers_env)

    @model_validator(mode="after")
    def _provider_needs(self) -> ModelConfig:
        if self.preset is not None:
            check_preset(self.provider, self.preset)
        if self.provider == "cli" and not self.command and not self.preset:
            raise ValueError(
                "provider 'cli' needs 'command', an argument list such as [my-agent, --print], or 'preset' "
                f"(one of {', '.join(preset_names())})"
            )
        if self.provider != "cli" and self.provider != "local" and not self.model:
            raise ValueError(f"provider {self.provider!r} needs 'model', the provider's own model id")
        return self


class _Options(BaseModel):
    """A block of optional settings; unset fields take the policy's documented default."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RetryConfig(_Options):
    """Retries of one deployment's retryable failures."""

    max_attempts: int | None = Field(default=None, ge=1, le=20)
    base_delay: float | None = Field(default=None, ge=0)
    max_delay: float | None = Field(default=None, ge=0)
    multiplier: float | None = Field(default=None, ge=1)
    jitter: Literal["full", "equal", "none"] | None = None
    max_retry_after: float | None = Field(default=None, ge=0)
    retry_on_empty: bool | None = None


class BreakerConfig(_Options):
    """The circuit breaker of one deployment."""

    failure_threshold: int | None = Field(default=None, ge=1)
    failure_rate: float | None = Field(default=None, gt=0, le=1)
    window_seconds: float | None = Field(default=None, gt=0)
    min_calls: int | None = Field(default=None, ge=1)
    reset_timeout: float | None = Field(default=None, gt=0)
    half_open_probes: int | None = Field(default=None, ge=1)


class CooldownConfig(_Options):
    """How long a deployment rests after a 429 or overload without a retry-after."""

    default_seconds: float | None = Field(default=None, ge=0)
    max_seconds: float | None = Field(default=None, gt=0)
    on_overload: bool | None = None


class RateLimitConfig(_Options):
    """What to do when a deployment's own rpm/tpm has no room."""

    on_limit: Literal["wait", "skip"] | None = None
    max_wait: float | None = Field(default=None, ge=0)
    adaptive: bool | None = None


class HealthConfig(_Options):
    """Health probes (free model-list requests by default)."""

    interval: float | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)


class ResilienceConfig(_Options):
    """Defaults for every deployment; a model's own ``retry:``/``breaker:`` blocks override them."""

    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    cooldown: CooldownConfig = CooldownConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    health: HealthConfig = HealthConfig()
    max_attempts_per_request: int = Field(default=6, ge=1, le=50)
    request_timeout: float | None = Field(default=None, gt=0)


class ValidationConfig(_Options):
    """``Orchestrator.validate`` (the MCP ``orchestrator_validate`` tool): which model judges an output.

    No judge: the strongest usable model (highest tier, then price); none usable: validators only.
    """

    judge: str | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)


class StrategyConfig(BaseModel):
    """A named strategy; its type-specific fields are validated by the strategy that owns the type."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    type: str = Field(min_length=1)
    context: ContextConfig | None = None


class PeriodBudgetConfig(BaseModel):
    """USD per UTC day and per UTC month."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    daily_usd: float | None = Field(default=None, ge=0)
    monthly_usd: float | None = Field(default=None, ge=0)


class BudgetsConfig(BaseModel):
    """Spending limits in USD: per request; per UTC day and month overall, per category and per API key
    id (``"*"``: every key, each its own budget). Enforced by the ledger before each call."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    daily_usd: float | None = Field(default=None, ge=0)
    monthly_usd: float | None = Field(default=None, ge=0)
    per_request_usd: float | None = Field(default=None, ge=0)
    categories: dict[str, PeriodBudgetConfig] = Field(default_factory=dict)
    api_keys: dict[str, PeriodBudgetConfig] = Field(default_factory=dict)
    warn_at: float | None = Field(default=0.8, gt=0, le=1)


class QuotasConfig(BaseModel):
    """Calls per provider per UTC day (``"*"``: every provider); warn at ``warn_at``, refuse past the
    quota only with ``hard_stop``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    calls_per_day: dict[str, int] = Field(default_factory=dict)
    warn_at: float | None = Field(default=0.8, gt=0, le=1)
    hard_stop: bool = False

    @field_validator("calls_per_day")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        if any(calls < 1 for calls in value.values()):
            raise ValueError("each quota must be at least 1 call per day")
        return value


class LedgerConfig(_Options):
    """The cost ledger's database and batching (unset fields: ``ledger.settings.LedgerSettings``).

    ``url``: ``sqlite:///PATH`` or ``postgresql://user@host/db`` (default: a SQLite file under
    ``$ORCHESTRATOR_HOME`` or the user data dir). A URL with a password goes in an environment variable
    named by ``url_env``, never in this file. ``store_prompts: true`` keeps each request's router input
    (its last user message) so ``train-router --from-ledger`` can learn from feedback; unlabelled ones
    are deleted after ``prompt_retention_days`` (default 30).
    """

    enabled: bool = True
    url: str | None = None
    url_env: str | None = None
    flush_interval: float | None = Field(default=None, gt=0)
    batch_size: int | None = Field(default=None, ge=1, le=10_000)
    max_queue: int | None = Field(default=None, ge=1)
    reservation_ttl: float | None = Field(default=None, gt=0)
    store_prompts: bool | None = None
    prompt_retention_days: float | None = Field(default=None, gt=0)

    _variable_name = field_validator("url_env")(check_variable_name)

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).password:
            raise ValueError("must not hold a password; put the URL in a variable and name it in url_env")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> LedgerConfig:
        if self.url is not None and self.url_env is not None:
            raise ValueError("give url or url_env, not both")
        return self


class TelemetryConfig(BaseModel):
    """Traces, and what they may contain. Tracing is on when an OTLP endpoint is known: the standard
    ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`` variables, else ``otlp_endpoint``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    tracing: bool = True
    otlp_endpoint: str | None = None
    service_name: str = Field(default="model-orchestrator", min_length=1)
    project_name: str | None = None
    record_content: bool = False

    @field_validator("otlp_endpoint")
    @classmethod
    def _plain_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http(s) URL such as http://127.0.0.1:6006")
            if parts.username or parts.password:
                raise ValueError("must not hold credentials; put headers in OTEL_EXPORTER_OTLP_HEADERS")
        return value


class OrchestratorConfig(BaseModel):
    """The whole ``orchestrator.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    default_model: str | None = None
    # Short names for models (``haiku: my-haiku``): added to, or overriding, providers/aliases.py's table.
    aliases: dict[str, str] = Field(default_factory=dict)
    models: tuple[ModelConfig, ...] = ()
    strategies: tuple[StrategyConfig, ...] = ()
    budgets: BudgetsConfig | None = None
    quotas: QuotasConfig | None = None
    ledger: LedgerConfig = LedgerConfig()
    resilience: ResilienceConfig = ResilienceConfig()
    validation: ValidationConfig = ValidationConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    routing: RoutingConfig = RoutingConfig()
    state: StateConfig = StateConfig()

    @model_validator(mode="after")
    def _names_unique(self) -> OrchestratorConfig:
        seen: set[str] = set()
        for name in [m.name for m in self.models] + [s.name for s in self.strategies]:
            if name in seen:
                raise ValueError(f"the name {name!r} is used twice; model and strategy names must be unique")
            seen.add(name)
        return self

    @model_validator(mode="after")
    def _numbers_finite(self) -> OrchestratorConfig:
        """NaN compares false with every bound, so ``daily_usd: .nan`` would switch a budget off."""
        # Fields declared here refuse them already (allow_inf_nan=False); this covers nested sections
        # declared elsewhere and the free-form options of strategies and budgets.
        for path, number in _floats(self, ()):
            if not math.isfinite(number):
                where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
                raise ValueError(f"{where} must be a finite number, not {number}")
        return self


def _floats(value: object, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], float]]:
    """Every float in a validated config (nested models, extras, lists and mappings) with its path."""
    if isinstance(value, float):
        return [(path, value)]
    children: list[tuple[str | int, object]] = []
    if isinstance(value, BaseModel):
        children = [(name, getattr(value, name)) for name in type(value).model_fields]
        children += list((value.model_extra or {}).items())
    elif isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list | tuple):
        children = list(enumerate(value))
    found = []
    for key, child in children:
        found += _floats(child, (*path, key) if isinstance(key, str | int) else path)
    return found
