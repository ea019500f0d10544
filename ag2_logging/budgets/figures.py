"""What the admin shows of a budget: its spend and reservations this period, a forecast to the
period's end, and the sessions it blocked (sync ORM; Redis when it is the ledger)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet, Sum

from ag2_logging.budgets import enforce, periods
from ag2_logging.budgets.ledger import DatabaseLedger
from ag2_logging.budgets.specs import spec_of
from ag2_logging.models import MONEY_PLACES, BudgetLedger, Session


@dataclass(frozen=True)
class Figures:
    """USD this period: ``spent`` (settled), ``reserved`` (calls in flight and allowances held),
    ``forecast`` (the spend at the period's end at the pace so far; None for ``session`` and
    rolling periods, or when the ledger cannot be read for the scope); ``period`` its bounds."""

    spent: Decimal | None
    reserved: Decimal | None
    forecast: Decimal | None
    period: periods.Period


def _keys(budget: Any, at: datetime) -> list[str]:
    """The ledger keys (without the scope value) of the budget's current period."""
    if budget.period == "rolling_hours":
        return [f"{budget.pk}:{key}:" for key in periods.window_keys(at, budget.window_hours or 1)]
    return [f"{budget.pk}:{periods.period_of(budget.period, at, enforce._time_zone()).key}:"]


def figures(budget: Any, at: datetime | None = None) -> Figures:
    """The budget's figures at ``at`` (default: now)."""
    at = at or enforce.now()
    period = periods.period_of(budget.period, at, enforce._time_zone(), budget.window_hours)
    if budget.period == "session":
        return Figures(None, None, None, period)
    ledger = enforce.shared_ledger()
    spent = reserved = Decimal(0)
    if isinstance(ledger, DatabaseLedger):
        match = Q()
        for prefix in _keys(budget, at):
            match |= Q(key__startswith=prefix)
        sums = BudgetLedger.objects.filter(match).aggregate(s=Sum("spent"), r=Sum("reserved"))
        # Rounded to the ledger's places: SQLite adds and subtracts them as floats (2e-19 left
        # of a reservation given back).
        spent, reserved = _places(sums["s"]), _places(sums["r"])
    else:
        spec = spec_of(budget)
        if (spec.scope in ("enterprise", "enterprise_workflow") and not spec.enterprise_id) or (
            spec.scope in ("workflow", "enterprise_workflow") and not spec.workflow_name
        ):
            return Figures(None, None, None, period)  # one ledger per enterprise/workflow: not listed
        for prefix in _keys(budget, at):
            s, r = ledger.totals(prefix + spec.scope_value(spec.enterprise_id, spec.workflow_name))
            spent, reserved = spent + s, reserved + r
    return Figures(spent, reserved, _forecast(spent, period, at, budget.period), period)


def _places(value: Any) -> Decimal:
    """A ledger sum as a Decimal of ``MONEY_PLACES`` places (0 for None)."""
    return Decimal(str(value or 0)).quantize(_PLACE)


_PLACE = Decimal(1).scaleb(-MONEY_PLACES)


def _forecast(spent: Decimal, period: periods.Period, at: datetime, kind: str) -> Decimal | None:
    if kind == "rolling_hours" or period.start is None or period.end is None:
        return None
    elapsed = (at - period.start).total_seconds()
    total = (period.end - period.start).total_seconds()
    if elapsed <= 0:
        return spent
    return (spent * Decimal(total) / Decimal(elapsed)).quantize(Decimal("1e-6"))


def blocked_sessions(budget: Any) -> QuerySet[Session]:
    """The sessions this budget blocked (their error names it)."""
    return Session.objects.filter(
        status=Session.Status.BLOCKED, error__startswith=f"BudgetExceeded: budget #{budget.pk} ("
    )
