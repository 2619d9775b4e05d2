"""Click parameter types the commands share: numbers that must be finite.

``click.FloatRange`` lets ``nan`` through every bound (NaN compares false with everything) and lets
``inf`` through an open upper bound, so ``--max-cost nan`` would switch a cap off and ``--temperature nan``
would reach a provider as invalid JSON. Every numeric option uses ``FiniteFloat`` instead.
"""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloat(click.FloatRange):
    """A ``FloatRange`` that refuses NaN and infinities (exit 2, like any bad option value)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number
