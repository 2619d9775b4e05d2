"""``BudgetRules``: which budget and quota limits apply to a request at a provider (pure, no I/O).

Budgets are USD per UTC day and month: global, per request category, per API key id (``*`` = every key,
each on its own). Quotas are calls per provider per UTC day (``*`` = every provider). The composition
root builds the rules from config; ``BudgetGuardModel`` asks them before each call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from model_orchestrator.core.budget import BudgetLimit, Period
from model_orchestrator.core.request import ChatRequest

ANY = "*"


@dataclass(frozen=True, slots=True)
class PeriodLimits:
    """USD per day and per month (None: no limit for that period)."""

    daily: float | None = None
    monthly: float | None = None

    def limits(self, name: str, warn_at: float | None) -> list[BudgetLimit]:
        """The day and month limits that are set, for the budget called ``name``."""
        periods: list[tuple[Period, float | None]] = [("day", self.daily), ("month", self.monthly)]
        return [
            BudgetLimit(name, "usd", period, value, True, warn_at)
            for period, value in periods
            if value is not None
        ]


@dataclass(frozen=True, slots=True)
class BudgetRules:
    """Every configured budget and quota."""

    overall: PeriodLimits = PeriodLimits()
    categories: Mapping[str, PeriodLimits] = field(default_factory=dict)
    api_keys: Mapping[str, PeriodLimits] = field(default_factory=dict)
    calls_per_day: Mapping[str, int] = field(default_factory=dict)
    warn_at: float | None = 0.8
    quota_warn_at: float | None = 0.8
    hard_stop: bool = False

    @property
    def active(self) -> bool:
        """True when any budget or quota is configured."""
        return self._any_usd() or bool(self.calls_per_day)

    def guards(self, provider: str) -> bool:
        """Whether calls at ``provider`` count against any limit (so need a guard at all)."""
        return self._any_usd() or self._quota(provider) is not None

    def limits_for(self, request: ChatRequest, provider: str) -> tuple[BudgetLimit, ...]:
        """The limits one call of ``request`` at ``provider`` counts against."""
        found = self.overall.limits("global", self.warn_at)
        if request.category is not None:
            category = _pick(self.categories, request.category)
            found += category.limits(f"category:{request.category}", self.warn_at)
        if request.api_key_id is not None:
            key = _pick(self.api_keys, request.api_key_id)
            found += key.limits(f"key:{request.api_key_id}", self.warn_at)
        quota = self._quota(provider)
        if quota is not None:
            found.append(quota)
        return tuple(found)

    def configured(self) -> list[BudgetLimit]:
        """Every named limit (for status reports; ``*`` entries have no single counter to show)."""
        found = self.overall.limits("global", self.warn_at)
        for name, limits in self.categories.items():
            if name != ANY:
                found += limits.limits(f"category:{name}", self.warn_at)
        for name, limits in self.api_keys.items():
            if name != ANY:
                found += limits.limits(f"key:{name}", self.warn_at)
        for provider in self.calls_per_day:
            if provider != ANY:
                quota = self._quota(provider)
                if quota is not None:
                    found.append(quota)
        return found

    def _any_usd(self) -> bool:
        overall = self.overall.daily is not None or self.overall.monthly is not None
        return overall or bool(self.categories) or bool(self.api_keys)

    def _quota(self, provider: str) -> BudgetLimit | None:
        calls = self.calls_per_day.get(provider, self.calls_per_day.get(ANY))
        if calls is None:
            return None
        return BudgetLimit(
            f"provider:{provider}", "calls", "day", float(calls), self.hard_stop, self.quota_warn_at
        )


def _pick(table: Mapping[str, PeriodLimits], name: str) -> PeriodLimits:
    return table.get(name) or table.get(ANY) or PeriodLimits()
