"""``TierPlan``: which of N configured tiers a prompt needs, for a wanted mix or a wanted average cost.

Two ways to say how much to spend, both calibrated on the router's score distribution (its training
prompts' score quantiles), so the realised mix matches what was asked:
- ``shares`` (``routing.tier_shares``): the share of prompts each tier should get. Lower scores go to
  lower tiers; a tier with a share but no member passes its share to the next tier up that has one.
- ``target_cost_per_1k`` (``routing.target_cost_per_1k``): the average price, in USD per 1,000 tokens
  (input and output price averaged), of the tiers prompts go to. Each tier is worth ``score x position``
  (its place on the ladder, 0 for the cheapest tier, 1 for the top: the share of the weak-to-strong gain
  it is expected to recover) minus ``lambda x price``; the prompt goes to the tier of highest value
  (quality gain per dollar), and ``lambda`` is found by bisection so that the average price over the
  score distribution equals the target.
Pure: no calls, no clock. It does not pick models within a tier (``selection.select_model`` does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.money import usd
from model_orchestrator.core.pricing import Price

_BISECTION_STEPS = 60


def price_per_1k(price: Price | None) -> float | None:
    """USD per 1,000 tokens with input and output priced alike (their mean); None when unknown."""
    return None if price is None else (price.input + price.output) / 2 / 1000


@dataclass(frozen=True, slots=True)
class TierRow:
    """One tier in an explanation: its price, its value for this prompt, and whether it was chosen."""

    tier: int
    price_per_1k: float | None
    value: float | None
    chosen: bool

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "tier": self.tier,
            "price_per_1k": self.price_per_1k,
            "value": None if self.value is None else round(self.value, 6),
            "chosen": self.chosen,
        }


@dataclass(frozen=True, slots=True)
class TierChoice:
    """The tier chosen for a score, why, every tier considered, and ``boundary``: the nearest score at
    which the choice would change (None when no score would change it), which says how close a call it was."""

    tier: int
    reason: str
    rows: tuple[TierRow, ...]
    boundary: float | None = None


class TierPlan:
    """Maps a router score to a tier among those present (see the module docstring)."""

    def __init__(
        self,
        quantiles: Sequence[float],
        *,
        shares: Mapping[int, float] | None = None,
        target_cost_per_1k: float | None = None,
    ) -> None:
        if (shares is None) == (target_cost_per_1k is None):
            raise ConfigError("a tier plan needs exactly one of tier_shares or target_cost_per_1k")
        if shares is not None and (any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0):
            raise ConfigError("tier_shares must be non-negative with a positive sum, e.g. {0: 0.6, 3: 0.4}")
        self._quantiles = sorted(quantiles)
        self._shares = dict(shares) if shares is not None else None
        self.target_cost_per_1k = target_cost_per_1k
        self._lambdas: dict[tuple[tuple[int, float], ...], float] = {}

    def choose(self, score: float, prices: Mapping[int, float | None]) -> TierChoice:
        """The tier for ``score`` among ``prices``' tiers (tier -> USD per 1k tokens, None: unknown)."""
        tiers = sorted(prices) or [0]
        if self._shares is not None:
            return self._by_share(score, tiers, prices)
        return self._by_cost(score, tiers, prices)

    def _by_share(self, score: float, tiers: Sequence[int], prices: Mapping[int, float | None]) -> TierChoice:
        assert self._shares is not None
        shares = _shares_on(tiers, self._shares)
        cuts, above = [], 0.0
        for tier in reversed(tiers[1:]):
            above += shares[tier]
            cuts.append((tier, self._score_at_share(above)))
        chosen = tiers[0]
        for tier, cut in cuts:
            if score >= cut:
                chosen = tier
                break
        mix = ", ".join(f"tier {t} {shares[t]:.0%}" for t in tiers)
        rows = tuple(TierRow(t, prices.get(t), None, t == chosen) for t in tiers)
        boundary = min((cut for _tier, cut in cuts), key=lambda cut: abs(cut - score), default=None)
        reason = f"score {score:.3f} -> tier {chosen} (planned mix: {mix})"
        return TierChoice(chosen, reason, rows, boundary)

    def _by_cost(self, score: float, tiers: Sequence[int], prices: Mapping[int, float | None]) -> TierChoice:
        target = self.target_cost_per_1k
        assert target is not None
        priced = [(t, p) for t in tiers if (p := prices.get(t)) is not None]
        if not priced:
            rows = tuple(TierRow(t, None, None, t == tiers[0]) for t in tiers)
            return TierChoice(tiers[0], "no tier has a known price, so the cost target cannot apply", rows)
        key = tuple(priced)
        if key not in self._lambdas:
            self._lambdas[key] = self._calibrate(priced, target)
        price_of_quality = self._lambdas[key]
        values = {t: _value(score, i, len(priced), p, price_of_quality) for i, (t, p) in enumerate(priced)}
        chosen = max(values, key=lambda t: (values[t], -t))
        rows = tuple(TierRow(t, prices.get(t), values.get(t), t == chosen) for t in tiers)
        boundary = _nearest_flip(score, chosen, priced, price_of_quality)
        reason = (
            f"score {score:.3f} -> tier {chosen}, the best quality gain per dollar for an average of "
            f"{usd(target)} per 1k tokens"
        )
        return TierChoice(chosen, reason, rows, boundary)

    def expected_cost_per_1k(self, prices: Mapping[int, float]) -> float:
        """The average price the plan's mix pays over the score distribution (what calibration matches)."""
        choices = [self.choose(q, dict(prices)).tier for q in self._quantiles]
        return sum(prices[t] for t in choices) / len(choices)

    def _calibrate(self, priced: Sequence[tuple[int, float]], target: float) -> float:
        """The price of quality (lambda) whose mix over the quantiles costs ``target`` on average."""

        def mean_cost(price_of_quality: float) -> float:
            total = 0.0
            for q in self._quantiles:
                values = [_value(q, i, len(priced), p, price_of_quality) for i, (_t, p) in enumerate(priced)]
                total += priced[max(range(len(priced)), key=lambda i: (values[i], -i))][1]
            return total / len(self._quantiles)

        low, high = 0.0, 1.0
        while mean_cost(high) > target and high < 1e12:
            high *= 10
        for _ in range(_BISECTION_STEPS):
            middle = (low + high) / 2
            low, high = (middle, high) if mean_cost(middle) > target else (low, middle)
        return high

    def _score_at_share(self, share: float) -> float:
        """The score above which about ``share`` of the distribution lies."""
        quantiles = self._quantiles
        position = (1.0 - min(1.0, max(0.0, share))) * (len(quantiles) - 1)
        low = int(position)
        high = min(low + 1, len(quantiles) - 1)
        return quantiles[low] + (quantiles[high] - quantiles[low]) * (position - low)


def _nearest_flip(
    score: float, chosen: int, priced: Sequence[tuple[int, float]], price_of_quality: float
) -> float | None:
    """The score in [0, 1] nearest to ``score`` where the best tier changes, from the chosen one's
    crossings with every other tier (kept only where the winner really differs on either side)."""
    positions = {t: (i / (len(priced) - 1) if len(priced) > 1 else 0.0) for i, (t, _p) in enumerate(priced)}
    prices = dict(priced)

    def best(at: float) -> int:
        return max(prices, key=lambda t: (at * positions[t] - price_of_quality * prices[t], -t))

    flips = [
        price_of_quality * (prices[chosen] - prices[t]) / (positions[chosen] - positions[t])
        for t in prices
        if t != chosen and positions[t] != positions[chosen]
    ]
    real = [f for f in flips if 0.0 <= f <= 1.0 and best(f - 1e-9) != best(f + 1e-9)]
    return min(real, key=lambda f: abs(f - score), default=None)


def _value(score: float, index: int, count: int, price: float, price_of_quality: float) -> float:
    position = index / (count - 1) if count > 1 else 0.0
    return score * position - price_of_quality * price


def _shares_on(tiers: Sequence[int], wanted: Mapping[int, float]) -> dict[int, float]:
    """``wanted`` moved onto the tiers present (a missing tier's share goes up, else to the top), summing
    to 1."""
    shares = dict.fromkeys(tiers, 0.0)
    for tier, share in wanted.items():
        target = next((t for t in tiers if t >= tier), tiers[-1])
        shares[target] += share
    total = sum(shares.values()) or 1.0
    return {t: s / total for t, s in shares.items()}
