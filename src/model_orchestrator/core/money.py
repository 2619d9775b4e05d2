"""Money as people read it: ``usd(0.001)`` is ``$0.001``, never ``$0.00``.

One function for every amount shown to a person (error messages, CLI tables, progress lines), so a
budget of a tenth of a cent and a spend of a few millionths of a dollar stay visible. Machine outputs
(``--json``, CSV export, the ledger) keep the raw float; this is for text only.
"""

from __future__ import annotations

import math

SIGNIFICANT_DIGITS = 4
_MIN_DECIMALS = 2  # cents: $5.00, $0.10


def usd(amount: float) -> str:
    """``amount`` dollars with ``SIGNIFICANT_DIGITS`` significant digits and at least cents.

    Trailing zeros past the cents are dropped: ``5 -> $5.00``, ``0.001 -> $0.001``,
    ``0.000123456 -> $0.0001235``, ``1234.5 -> $1,234.50``, ``-0.25 -> -$0.25``.
    """
    if not math.isfinite(amount):
        return f"${amount}"
    size = abs(amount)
    decimals = _MIN_DECIMALS
    if size > 0:
        decimals = max(_MIN_DECIMALS, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(size)))
    text = f"{size:,.{decimals}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(_MIN_DECIMALS, "0")
    sign = "-" if amount < 0 else ""
    return f"{sign}${whole}.{fraction}"


def usd_or_unknown(amount: float | None) -> str:
    """``usd(amount)``, or ``unknown`` when the price (so the amount) is not known."""
    return "unknown" if amount is None else usd(amount)
