"""Where a model's price comes from: config override, then the ``genai-prices`` data, else unknown.

Unknown stays None (never 0). Local models are free. ``genai-prices`` is imported on first lookup only:
it costs about half a second to import, which ``orchestrator --help`` must not pay.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from model_orchestrator.config.schema import PriceConfig
from model_orchestrator.core.pricing import FREE, Price

_FREE_PROVIDERS = frozenset({"local"})


def price_from_config(config: PriceConfig) -> Price:
    """A ``Price`` from the config's ``price:`` block."""
    return Price(
        config.input, config.output, config.cached_input, config.reasoning, cache_write=config.cache_write
    )


def resolve_price(
    provider: str, prices_provider: str, model_id: str, override: PriceConfig | None
) -> Price | None:
    """The price for a model: the override, free for local models, genai-prices, or None if unknown."""
    if override is not None:
        return price_from_config(override)
    if provider in _FREE_PROVIDERS:
        return FREE
    return lookup_genai_price(prices_provider, model_id)


@functools.lru_cache(maxsize=512)
def lookup_genai_price(provider_id: str, model_id: str) -> Price | None:
    """The published price of ``model_id`` at ``provider_id`` per genai-prices' offline data, or None."""
    import genai_prices
    from genai_prices.data_snapshot import get_snapshot

    # calc_price caches every model reference it is asked about, found or not; callers choose model ids
    # (``provider:anything`` over the gateway), so unknown ids are answered here without reaching it.
    snapshot = get_snapshot()
    try:
        provider = snapshot.find_provider(None, provider_id, None)
    except LookupError:
        return None
    if provider.find_model(model_id, all_providers=snapshot.providers) is None:
        return None
    try:
        calc = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=0, output_tokens=0), model_ref=model_id, provider_id=provider_id
        )
    except LookupError:
        return None
    return _to_price(calc.model_price)


def _to_price(model_price: Any) -> Price | None:
    base_in, tiers_in = _split(model_price.input_mtok)
    base_out, tiers_out = _split(model_price.output_mtok)
    base_cache, tiers_cache = _split(model_price.cache_read_mtok)
    base_write, tiers_write = _split(model_price.cache_write_mtok)
    if base_in is None or base_out is None:
        return None
    tiers = tuple(
        (
            start,
            Price(
                rate_in,
                tiers_out.get(start, base_out),
                tiers_cache.get(start, base_cache),
                cache_write=tiers_write.get(start, base_write),
            ),
        )
        for start, rate_in in sorted(tiers_in.items())
    )
    return Price(base_in, base_out, base_cache, None, tiers, base_write)


def _split(value: Any) -> tuple[float | None, dict[int, float]]:
    """(base rate, {tier start: rate}) from a genai-prices number or TieredPrices."""
    if value is None:
        return None, {}
    if isinstance(value, Decimal | int | float):
        return float(value), {}
    return float(value.base), {int(t.start): float(t.price) for t in value.tiers}
