"""``BudgetExceeded``: no ORM here, so every layer may catch it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any


def dollars(value: Decimal) -> str:
    """A dollar figure as plain digits, no exponent, no trailing zeros (``0E-10`` -> ``0``,
    ``0.0089570000`` -> ``0.008957``)."""
    return format(value.normalize(), "f") if value.is_finite() else str(value)


class BudgetExceeded(Exception):
    """A ``block`` budget stopped an LLM call before it was sent.

    ``budget``: the ``Budget`` row's id (None for a per-session ``budget=`` limit); ``scope``:
    what was counted (``"enterprise acme"``, ``"global"``, ``"session <uuid>"``...); ``limit``
    and ``spent`` in USD (``spent``: settled spend plus open reservations when the call was
    refused); ``estimate``: the refused call's worst-case cost in USD (None when it could not be
    estimated); ``period_end``: when the period resets (aware UTC datetime, None for a session).
    The session it was raised in ends with status ``blocked``.
    """

    #: Read by the session scope: a block that ends with this exception ends ``blocked``.
    session_status = "blocked"

    def __init__(
        self,
        *,
        budget: int | None,
        scope: str,
        limit: Decimal,
        spent: Decimal,
        period_end: datetime | None,
        reason: str = "",
        estimate: Decimal | None = None,
    ) -> None:
        self.budget = budget
        self.scope = scope
        self.limit = limit
        self.spent = spent
        self.period_end = period_end
        self.estimate = estimate
        ends = f"; the period ends {period_end.isoformat()}" if period_end else ""
        label = f"budget #{budget}" if budget is not None else "session budget"
        call = f" plus this call's estimated ${dollars(estimate)}" if estimate is not None else ""
        why = reason or f"spent and reserved ${dollars(spent)}{call} would pass the limit ${dollars(limit)}"
        super().__init__(f"{label} ({scope}): {why}{ends}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for Celery results
        args = (self.budget, self.scope, self.limit, self.spent, self.period_end, str(self), self.estimate)
        return (_rebuild, args)


def _rebuild(
    budget: int | None,
    scope: str,
    limit: Decimal,
    spent: Decimal,
    period_end: datetime | None,
    text: str,
    estimate: Decimal | None = None,
) -> BudgetExceeded:
    exc = BudgetExceeded(
        budget=budget, scope=scope, limit=limit, spent=spent, period_end=period_end, estimate=estimate
    )
    exc.args = (text,)
    return exc
