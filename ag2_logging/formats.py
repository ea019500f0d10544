"""The two ways a number leaves the app: :func:`show` for a person (pages, charts, the terminal)
and :func:`export` for a program (CSV, JSON).

``show`` rounds to significant digits, groups thousands and writes money with its currency:
``9000`` -> ``9,000``, ``Decimal("0.00950")`` as money -> ``$0.0095``, ``1.0`` as money ->
``$1.00``, ``49.050000000000004`` -> ``49.1``. ``export`` writes plain decimals with no float
artefacts and no exponent: ``49.050000000000004`` -> ``49.05``, ``Decimal("1.0000000000")`` ->
``1``, ``Decimal("6.6E-5")`` -> ``0.000066``; None (unknown) is ``""``, never 0.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

__all__ = ["CURRENCY", "export", "show"]

#: Costs are US dollars (genai-prices' and the overrides' unit).
CURRENCY = "$"

Number = int | float | Decimal


def _decimal(value: Number) -> Decimal | None:
    """``value`` as a Decimal (a float through its 15 significant digits, which drops binary
    artefacts); None for NaN and infinities."""
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return Decimal(f"{value:.15g}")
    return Decimal(int(value))


def _strip(text: str, keep: int) -> str:
    """Trailing zeros after the decimal point removed, down to ``keep`` places."""
    if "." not in text:
        return text
    whole, frac = text.split(".")
    frac = frac.rstrip("0").ljust(keep, "0")
    return f"{whole}.{frac}" if frac else whole


def show(value: Number | None, *, money: bool = False, digits: int = 3, empty: str = "—") -> str:
    """``value`` for a person: ``empty`` for None (or NaN); whole numbers with thousands
    separators (``1,234,567``); other numbers to ``digits`` significant digits (``0.000123``,
    ``12.5``, ``1,235``). With ``money``, the currency in front, cents from a dollar up
    (``$1,234.50``) and ``digits`` significant digits below (``$0.0095``, ``$0.000066``; at
    least two places: ``$0.50``); negative money is ``-$0.50``."""
    if value is None or isinstance(value, bool):
        return empty
    amount = _decimal(value)
    if amount is None:
        return empty
    if not money and amount == amount.to_integral_value():
        return f"{int(amount):,}"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    floor = 2 if money else 0
    places = floor if amount == 0 else max(digits - 1 - amount.adjusted(), floor)
    try:
        rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the context holds: a huge number
        rounded = amount
    text = f"{rounded:,.{places}f}"
    if not money or amount < 1:
        text = _strip(text, floor)
    if text.strip("0.,") == "":
        sign = ""
    return f"{sign}{CURRENCY if money else ''}{text}"


def export(value: Number | None) -> str:
    """``value`` for a program: plain decimal text, no exponent, no thousands separator, no
    float artefacts (``49.05``, ``0.000066``, ``1``, ``-3``); ``""`` for None, NaN and
    infinities (unknown is never written as 0)."""
    if value is None or isinstance(value, bool):
        return ""
    amount = _decimal(value)
    if amount is None:
        return ""
    if amount == 0:
        return "0"
    return format(amount.normalize(), "f")
