"""Anomaly flags on workflows' daily cost, read from the daily rollups (one grouped query).

The rule (:func:`robust_z`, :func:`anomalies`), written on the trends page too: each day a
workflow made calls, in the last ``ANOMALY_DAYS`` days up to ``end``, is compared with the
workflow's days with calls among the ``ANOMALY_WINDOW_DAYS`` days before it. With *m* the median of those days' costs and *MAD*
the median of their absolute deviations from *m*, the robust z-score is
``0.6745 * (cost - m) / MAD`` (Iglewicz and Hoaglin); when MAD is 0 (more than half the days cost
exactly the same), ``(cost - m) / (1.253314 * MeanAD)`` with the mean absolute deviation; when
that is 0 too, any other cost is out of range. A day is flagged when ``|z| > 3.5``, given at least
``ANOMALY_MIN_HISTORY`` days of history. Days whose cost is not fully known are neither checked nor
used as history; today is checked for rises only (its sessions are not all finished).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from django.db.models import Sum

from ag2_logging.reports.figures import ZERO
from ag2_logging.reports.filters import ReportFilter, _utc_today

__all__ = [
    "ANOMALY_DAYS",
    "ANOMALY_MIN_HISTORY",
    "ANOMALY_THRESHOLD",
    "ANOMALY_WINDOW_DAYS",
    "Anomaly",
    "Scope",
    "anomalies",
    "robust_z",
]

#: Days checked for anomalies, up to the trends' ``end``.
ANOMALY_DAYS = 14
#: Days of history before each checked day.
ANOMALY_WINDOW_DAYS = 28
#: Days with calls (and a fully known cost) the history needs before a day is checked.
ANOMALY_MIN_HISTORY = 7
#: A day is flagged when its robust z-score is beyond this (Iglewicz and Hoaglin's 3.5).
ANOMALY_THRESHOLD = 3.5
#: 0.6745 is the 0.75 quantile of the standard normal: MAD / 0.6745 estimates sigma.
MAD_SCALE = 0.6745
#: sqrt(pi / 2): the mean absolute deviation times this estimates sigma.
MEANAD_SCALE = 1.253314


class Scope(Protocol):
    """What the check is for: the last day checked, and the enterprise and workflow ('' for all)."""

    @property
    def end(self) -> dt.date: ...

    @property
    def enterprise(self) -> str: ...

    @property
    def workflow(self) -> str: ...


@dataclass
class Anomaly:
    """A workflow's day whose cost left its usual range."""

    enterprise: str
    workflow: str
    day: dt.date
    cost: Decimal
    median: Decimal
    mad: Decimal
    #: The robust z-score; +-inf when every day of the history cost the same.
    z: float
    history_days: int

    @property
    def direction(self) -> Literal["high", "low"]:
        return "high" if self.z > 0 else "low"

    @property
    def z_text(self) -> str:
        if math.isinf(self.z):
            return "+∞" if self.z > 0 else "-∞"
        return f"{self.z:+.1f}"


def robust_z(value: Decimal, history: Sequence[Decimal]) -> tuple[float, Decimal, Decimal]:
    """(z, median, MAD) of ``value`` against ``history`` (not empty): ``0.6745 * (value - median)
    / MAD``; with MAD 0, ``(value - median) / (1.253314 * MeanAD)``; with both 0, 0 for the
    median itself and +-inf for anything else."""
    median = Decimal(statistics.median(history))
    deviations = [abs(x - median) for x in history]
    mad = Decimal(statistics.median(deviations))
    diff = value - median
    if mad:
        return MAD_SCALE * float(diff / mad), median, mad
    mean_ad = sum(deviations, ZERO) / len(deviations)
    if mean_ad:
        return float(diff / mean_ad) / MEANAD_SCALE, median, mad
    if not diff:
        return 0.0, median, mad
    return (math.inf if diff > 0 else -math.inf), median, mad


def anomalies(flt: Scope, *, today: dt.date | None = None) -> tuple[list[Anomaly], int]:
    """The flagged days of each (enterprise, workflow) in the ``ANOMALY_DAYS`` days up to
    ``flt.end`` (the rule is in the module docstring), most extreme first; and how many
    workflows had a day checked. One grouped query on the daily rollups, of the three sums the
    rule reads (calls, unpriced calls, cost): the twelve of ``grouped()`` took most of the trends
    page's time converting some 3,000 rows at a million calls."""
    today = today or _utc_today()
    first_checked = flt.end - dt.timedelta(days=ANOMALY_DAYS - 1)
    window = ReportFilter(
        start=first_checked - dt.timedelta(days=ANOMALY_WINDOW_DAYS),
        end=flt.end,
        enterprise=flt.enterprise,
        workflow=flt.workflow,
    )
    # Per (enterprise, workflow) and day, the cost when every call was priced, else None.
    daily: dict[tuple[str, str], dict[dt.date, Decimal | None]] = defaultdict(dict)
    groups = (
        window.rollups()
        .values("day", "enterprise_id", "workflow_name")
        .annotate(calls=Sum("call_count"), unpriced=Sum("unpriced_calls"), priced=Sum("cost"))
        .order_by()
        .values_list("day", "enterprise_id", "workflow_name", "calls", "unpriced", "priced")
    )
    for day, enterprise, workflow, calls, unpriced, priced in groups:
        known = bool(calls) and not unpriced  # Figures.cost_state == "known"
        daily[enterprise, workflow][day] = (priced or ZERO) if known else None
    found: list[Anomaly] = []
    checked: set[tuple[str, str]] = set()
    for (enterprise, workflow), days in daily.items():
        for day, cost in days.items():
            if day < first_checked or cost is None:
                continue
            since = day - dt.timedelta(days=ANOMALY_WINDOW_DAYS)
            history = [c for d, c in days.items() if since <= d < day and c is not None]
            if len(history) < ANOMALY_MIN_HISTORY:
                continue
            checked.add((enterprise, workflow))
            z, median, mad = robust_z(cost, history)
            if abs(z) <= ANOMALY_THRESHOLD or (day >= today and z < 0):
                continue
            found.append(Anomaly(enterprise, workflow, day, cost, median, mad, z, len(history)))
    found.sort(key=lambda a: (-abs(a.z), a.day, a.enterprise, a.workflow))
    return found, len(checked)
