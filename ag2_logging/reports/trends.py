"""Trends: cost and tokens per week or month by enterprise, workflow or model, the change against
the previous period, the biggest movers, and anomaly flags on workflows' daily cost.

Everything is read from the daily rollups (two grouped queries: one for the periods, one for
the anomaly check). Weeks are ISO weeks (Monday to Sunday), months calendar months, days UTC
days, as everywhere in the reports.

The change of a period compares it with the one before: a whole period with the whole previous
period; the current period, when it is not over (``end`` falls inside it), with the same number
of first days of the previous period (days 1 to *k*, like for like). A cost change is known only
when no call of either side is unpriced: a lower bound minus a lower bound says nothing.

The anomaly flags and their rule live in :mod:`ag2_logging.reports.anomalies` (re-exported here).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from django.utils.translation import gettext_lazy as _

from ag2_logging.reports.anomalies import (
    ANOMALY_DAYS,
    ANOMALY_MIN_HISTORY,
    ANOMALY_THRESHOLD,
    ANOMALY_WINDOW_DAYS,
    Anomaly,
    anomalies,
    robust_z,
)
from ag2_logging.reports.figures import DIMENSIONS, ZERO, Dimension, Figures
from ag2_logging.reports.filters import ReportFilter, _parse_date, _utc_today
from ag2_logging.reports.tables import money, ratio

__all__ = [
    "ANOMALY_DAYS",
    "ANOMALY_MIN_HISTORY",
    "ANOMALY_THRESHOLD",
    "ANOMALY_WINDOW_DAYS",
    "GRAINS",
    "TREND_DIMENSIONS",
    "Anomaly",
    "Change",
    "Period",
    "TrendFilter",
    "TrendRow",
    "Trends",
    "anomalies",
    "periods_ending",
    "robust_z",
    "trends",
    "trends_table",
]

Grain = Literal["week", "month"]
GRAINS: tuple[Grain, ...] = ("week", "month")
#: The dimensions a trends table can be grouped by (slugs of ``reports.DIMENSIONS``).
TREND_DIMENSIONS = ("enterprise", "workflow", "model")
#: Periods shown by default, and the most a page may ask for.
DEFAULT_PERIODS = 6
MAX_PERIODS = 24
#: Rows in the "biggest movers" list.
MOVERS = 5


# ---------------------------------------------------------------------------------------------
# Periods


@dataclass(frozen=True)
class Period:
    """A week (Monday to Sunday) or a calendar month; ``start`` and ``end`` inclusive."""

    grain: Grain
    start: dt.date
    end: dt.date

    @property
    def label(self) -> str:
        """``2026-W48`` or ``2026-11``."""
        if self.grain == "week":
            year, week, _day = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.start.year}-{self.start.month:02d}"

    @property
    def length(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        return period_of(self.start - dt.timedelta(days=1), self.grain)


def period_of(day: dt.date, grain: Grain) -> Period:
    """The week or month holding ``day``."""
    if grain == "week":
        start = day - dt.timedelta(days=day.weekday())
        return Period(grain, start, start + dt.timedelta(days=6))
    start = day.replace(day=1)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return Period(grain, start, following - dt.timedelta(days=1))


def periods_ending(end: dt.date, grain: Grain, count: int) -> list[Period]:
    """The ``count`` periods up to the one holding ``end``, oldest first."""
    periods = [period_of(end, grain)]
    while len(periods) < count:
        periods.append(periods[-1].previous())
    return periods[::-1]


# ---------------------------------------------------------------------------------------------
# The filter


@dataclass(frozen=True)
class TrendFilter:
    """What a trends page shows: ``periods`` weeks or months up to the one holding ``end``,
    grouped ``by`` enterprise, workflow or model, in a scope (enterprise, workflow)."""

    end: dt.date
    grain: Grain = "week"
    by: str = "workflow"
    periods: int = DEFAULT_PERIODS
    enterprise: str = ""
    workflow: str = ""

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, today: dt.date | None = None
    ) -> tuple[TrendFilter, list[str]]:
        """Read ``end`` (YYYY-MM-DD, default today), ``grain`` (week, month), ``by``
        (enterprise, workflow, model), ``periods`` (2 to 24), ``enterprise`` and ``workflow``;
        also returns what was wrong with them (the defaults are used instead)."""
        errors: list[str] = []
        raw_end = str(params.get("end") or "")
        end = _parse_date(raw_end) or today or _utc_today()
        if raw_end and _parse_date(raw_end) is None:
            errors.append(str(_("“%(value)s” is not a date (YYYY-MM-DD).") % {"value": raw_end}))
        grain_raw = str(params.get("grain") or "week")
        grain: Grain = "month" if grain_raw == "month" else "week"
        if grain_raw not in GRAINS:
            errors.append(str(_("Periods are weeks or months.")))
        by = str(params.get("by") or "workflow")
        if by not in TREND_DIMENSIONS:
            errors.append(str(_("Trends are by enterprise, workflow or model.")))
            by = "workflow"
        try:
            periods = int(str(params.get("periods") or DEFAULT_PERIODS))
        except ValueError:
            periods = DEFAULT_PERIODS
            errors.append(str(_("The number of periods is a whole number.")))
        if not 2 <= periods <= MAX_PERIODS:
            errors.append(str(_("From 2 to %(n)d periods.") % {"n": MAX_PERIODS}))
            periods = min(max(periods, 2), MAX_PERIODS)
        enterprise = str(params.get("enterprise") or "").strip()
        workflow = str(params.get("workflow") or "").strip()
        return cls(end, grain, by, periods, enterprise, workflow), errors

    @property
    def dimension(self) -> Dimension:
        return DIMENSIONS[self.by]

    def report_filter(self) -> ReportFilter:
        """The days the trends cover (the first period's start to ``end``), in scope."""
        first = periods_ending(self.end, self.grain, self.periods)[0]
        return ReportFilter(
            start=first.start, end=self.end, enterprise=self.enterprise, workflow=self.workflow
        )

    def params(self, **overrides: Any) -> dict[str, str]:
        values = {
            "end": self.end.isoformat(),
            "grain": self.grain,
            "by": self.by,
            "periods": str(self.periods),
            "enterprise": self.enterprise,
            "workflow": self.workflow,
        }
        values.update({k: "" if v is None else str(v) for k, v in overrides.items()})
        return {k: v for k, v in values.items() if v}


# ---------------------------------------------------------------------------------------------
# Rows


def _complete(figures: Figures) -> bool:
    return figures.cost_state in ("known", "none")


@dataclass
class Change:
    """A period against the previous one over ``days`` days (the whole previous period, or its
    first ``days`` days when the current period is not over)."""

    current: Figures
    previous: Figures
    days: int
    #: The current period is not over: only its first ``days`` days are compared.
    to_date: bool

    @property
    def cost_delta(self) -> Decimal | None:
        """Current minus previous cost; None (unknown) when either has unpriced calls."""
        if not (_complete(self.current) and _complete(self.previous)):
            return None
        return self.current.priced_cost - self.previous.priced_cost

    @property
    def cost_ratio(self) -> float | None:
        """The relative change of the cost (0.25 for +25%); None when unknown or from $0."""
        delta = self.cost_delta
        if delta is None or not self.previous.priced_cost:
            return None
        return float(delta / self.previous.priced_cost)

    @property
    def tokens_delta(self) -> int:
        return self.current.total_tokens - self.previous.total_tokens

    @property
    def tokens_ratio(self) -> float | None:
        if not self.previous.total_tokens:
            return None
        return self.tokens_delta / self.previous.total_tokens

    @property
    def is_new(self) -> bool:
        """Calls now and none in the compared days before."""
        return self.current.calls > 0 and self.previous.calls == 0


@dataclass
class TrendRow:
    key: dict[str, Any]
    label: str
    #: figures[i]: the group's figures in ``Trends.periods[i]``
    figures: list[Figures]
    change: Change

    @property
    def current(self) -> Figures:
        return self.figures[-1]


@dataclass
class Trends:
    filter: TrendFilter
    dimension: Dimension
    periods: list[Period]
    rows: list[TrendRow]
    total: TrendRow
    #: The rows with the largest known cost change, largest first.
    movers: list[TrendRow]
    anomalies: list[Anomaly] = field(default_factory=list)
    #: Workflows with at least one day checked for anomalies.
    checked_workflows: int = 0

    @property
    def to_date(self) -> bool:
        return self.total.change.to_date


def _compared_days(current: Period, end: dt.date) -> tuple[int, bool]:
    """(days of the previous period compared, whether the current period is not over)."""
    previous = current.previous()
    if end >= current.end:
        return previous.length, False
    return min((end - current.start).days + 1, previous.length), True


def trends(flt: TrendFilter) -> Trends:
    """Per group of ``flt.by``: its figures in each period and its change; the total; the
    movers; the anomalies (two grouped queries on the daily rollups)."""
    dim = flt.dimension
    periods = periods_ending(flt.end, flt.grain, flt.periods)
    current = periods[-1]
    days, to_date = _compared_days(current, flt.end)
    previous = periods[-2]
    compare_end = previous.start + dt.timedelta(days=days - 1)
    index = {
        period.start + dt.timedelta(days=n): i
        for i, period in enumerate(periods)
        for n in range(period.length)
    }
    per_key: dict[tuple[Any, ...], list[Figures]] = {}
    compared: dict[tuple[Any, ...], Figures] = defaultdict(Figures)
    for group in flt.report_filter().rollups().grouped("day", *dim.fields):
        key = tuple(group[name] for name in dim.fields)
        slot = index.get(group["day"])
        if slot is None:
            continue
        cell = Figures.from_rollup(group)
        per_key.setdefault(key, [Figures() for _ in periods])[slot].add(cell)
        if previous.start <= group["day"] <= compare_end:
            compared[key].add(cell)
    rows = []
    total = TrendRow(
        {}, str(_("Total")), [Figures() for _ in periods], Change(Figures(), Figures(), days, to_date)
    )
    for key, figures in per_key.items():
        mapping = dict(zip(dim.fields, key, strict=True))
        change = Change(figures[-1], compared[key], days, to_date)
        rows.append(TrendRow(mapping, dim.key_label(mapping), figures, change))
        for i, f in enumerate(figures):
            total.figures[i].add(f)
        total.change.previous.add(compared[key])
    total.change.current = total.figures[-1]
    rows.sort(
        key=lambda r: (-r.current.priced_cost, -r.change.previous.priced_cost, -r.current.calls, r.label)
    )
    movers = [r for r in rows if r.change.cost_delta]
    movers.sort(key=lambda r: (-abs(r.change.cost_delta or ZERO), r.label))
    found, checked = anomalies(flt)
    return Trends(flt, dim, periods, rows, total, movers[:MOVERS], found, checked)


# ---------------------------------------------------------------------------------------------
# CSV


TREND_HEADER = [
    "period",
    "period_start",
    "period_end",
    "calls",
    "errors",
    "unpriced_calls",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost",
    "cost_complete",
    "compared_days",
    "previous_cost",
    "cost_change",
    "cost_change_ratio",
    "previous_tokens",
    "tokens_change_ratio",
]


def trends_table(report: Trends) -> tuple[list[str], list[list[Any]]]:
    """One row per group and period (the total last); the change columns on the rows of the
    last period only. Unknown costs are empty cells, never 0."""
    keys = list(report.dimension.fields)
    rows: list[list[Any]] = []
    end = report.filter.end
    for row in [*report.rows, report.total]:
        label = [row.key.get(name, "TOTAL" if i == 0 else "") for i, name in enumerate(keys)]
        for i, (period, f) in enumerate(zip(report.periods, row.figures, strict=True)):
            last = i == len(report.periods) - 1
            c = row.change
            change = (
                [c.days, money(c.previous.cost), money(c.cost_delta), ratio(c.cost_ratio),
                 c.previous.total_tokens, ratio(c.tokens_ratio)]
                if last
                else [""] * 6
            )  # fmt: skip
            rows.append(
                [
                    *label,
                    period.label,
                    period.start.isoformat(),
                    min(period.end, end).isoformat(),
                    f.calls,
                    f.errors,
                    f.unpriced,
                    f.prompt_tokens,
                    f.cached_tokens,
                    f.completion_tokens,
                    f.reasoning_tokens,
                    f.total_tokens,
                    money(f.cost),
                    "yes" if _complete(f) else "no",
                    *change,
                ]
            )
    return [*keys, *TREND_HEADER], rows
