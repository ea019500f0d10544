"""Cost reports: breakdowns, the overview, the model comparison and the session timeline.

Everything here reads the daily rollups or makes one grouped query per table: the number of
queries a report makes does not depend on how many rows it shows. The admin pages, their CSV
exports and ``manage.py ag2_logging_report`` all call these functions, so they agree.

A cost is *unknown* when a call's model has no price (``LLMCall.cost`` is NULL): such calls are
counted (``unpriced``) and never added as 0. A figure whose calls are all unpriced is unknown; one
with some unpriced calls is a lower bound (``partial``).

Days are UTC days. Rollups count a call on the day it ended and only once its session has
finished; the model comparison's exact figures read the calls themselves, by the time they
started.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils.translation import gettext_lazy as _

from ag2_logging.models import AgentEvent, DailyRollup, LLMCall, ModelDayRollup, Session, ToolCall
from ag2_logging.querysets import (
    LATENCY_BUCKET_BOUNDS_MS,
    LATENCY_BUCKET_RATIO,
    LATENCY_BUCKETS,
    DailyRollupQuerySet,
    ModelDayRollupQuerySet,
    day_start,
)

ZERO = Decimal(0)
DEFAULT_DAYS = 30
#: A longer range is cut to this many days (a chart of more daily bars is unreadable anyway).
MAX_DAYS = 731
#: Upper bounds (ms) of the latency histogram's buckets; the last bucket is open. Each is a
#: bound of the model rollups' finer histogram (``LATENCY_BUCKET_BOUNDS_MS``), which regroups.
LATENCY_BOUNDS_MS: tuple[float, ...] = (250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000)
#: Steps shown on a session timeline; longer sessions are cut (with a note) and open in the lists.
TIMELINE_LIMIT = 2_000

CostState = Literal["none", "known", "partial", "unknown"]


def rollups() -> DailyRollupQuerySet:
    return DailyRollupQuerySet(DailyRollup)


# ---------------------------------------------------------------------------------------------
# Filters


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _parse_date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class ReportFilter:
    """The period (UTC days, both inclusive) and the scope every report is filtered by."""

    start: dt.date
    end: dt.date
    enterprise: str = ""
    workflow: str = ""

    @classmethod
    def default(cls, today: dt.date | None = None) -> ReportFilter:
        end = today or _utc_today()
        return cls(start=end - dt.timedelta(days=DEFAULT_DAYS - 1), end=end)

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, today: dt.date | None = None
    ) -> tuple[ReportFilter, list[str]]:
        """Read ``start``, ``end`` (YYYY-MM-DD), ``enterprise`` and ``workflow``; also returns
        what was wrong with them (the defaults are used instead)."""
        errors: list[str] = []
        default = cls.default(today)
        start, end = default.start, default.end
        raw_start, raw_end = params.get("start") or "", params.get("end") or ""
        parsed_start, parsed_end = _parse_date(raw_start), _parse_date(raw_end)
        if raw_start and parsed_start is None:
            errors.append(str(_("“%(value)s” is not a date (YYYY-MM-DD).") % {"value": raw_start}))
        if raw_end and parsed_end is None:
            errors.append(str(_("“%(value)s” is not a date (YYYY-MM-DD).") % {"value": raw_end}))
        if parsed_end is not None:
            end = parsed_end
            if parsed_start is None:
                start = end - dt.timedelta(days=DEFAULT_DAYS - 1)
        if parsed_start is not None:
            start = parsed_start
            if parsed_end is None and start > end:
                end = start
        if start > end:
            errors.append(str(_("The period ends before it starts: the dates were swapped.")))
            start, end = end, start
        if (end - start).days >= MAX_DAYS:
            errors.append(str(_("Periods are at most %(days)d days long.") % {"days": MAX_DAYS}))
            start = end - dt.timedelta(days=MAX_DAYS - 1)
        enterprise = str(params.get("enterprise") or "").strip()
        workflow = str(params.get("workflow") or "").strip()
        return cls(start=start, end=end, enterprise=enterprise, workflow=workflow), errors

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def params(self, **overrides: Any) -> dict[str, str]:
        values = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "enterprise": self.enterprise,
            "workflow": self.workflow,
        }
        values.update({k: "" if v is None else str(v) for k, v in overrides.items()})
        return {k: v for k, v in values.items() if v}

    def querystring(self, **overrides: Any) -> str:
        return urlencode(self.params(**overrides))

    def rollups(self) -> DailyRollupQuerySet:
        return rollups().for_days(self.start, self.end).in_scope(self.enterprise, self.workflow)

    def model_rollups(self) -> ModelDayRollupQuerySet:
        return (
            ModelDayRollupQuerySet(ModelDayRollup)
            .for_days(self.start, self.end)
            .in_scope(self.enterprise, self.workflow)
        )

    def calls(self) -> Any:
        return LLMCall.objects.started_between(self.start, self.end).in_scope(self.enterprise, self.workflow)

    def sessions(self) -> Any:
        return Session.objects.started_between(self.start, self.end).in_scope(self.enterprise, self.workflow)

    def calls_list_params(self, **extra: str) -> dict[str, str]:
        """Query parameters of the LLM call list showing the calls of this filter."""
        params = {
            "started_at__gte": self.start.isoformat(),
            "started_at__lt": (self.end + dt.timedelta(days=1)).isoformat(),
        }
        if self.enterprise:
            params["enterprise"] = self.enterprise
        if self.workflow:
            params["workflow"] = self.workflow
        params.update(extra)
        return params


# ---------------------------------------------------------------------------------------------
# Figures


@dataclass
class Figures:
    """Summed figures of a group of calls (a rollup group, a model, the whole period)."""

    calls: int = 0
    errors: int = 0
    retries: int = 0
    unpriced: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    #: Sum over priced calls only.
    priced_cost: Decimal = ZERO
    latency_ms_sum: float = 0.0
    sessions: int | None = None

    @classmethod
    def from_rollup(cls, row: Mapping[str, Any]) -> Figures:
        return cls(
            calls=int(row.get("call_count") or 0),
            errors=int(row.get("error_count") or 0),
            retries=int(row.get("retry_count") or 0),
            unpriced=int(row.get("unpriced_calls") or 0),
            prompt_tokens=int(row.get("prompt_tokens") or 0),
            completion_tokens=int(row.get("completion_tokens") or 0),
            cached_tokens=int(row.get("cached_tokens") or 0),
            reasoning_tokens=int(row.get("reasoning_tokens") or 0),
            total_tokens=int(row.get("total_tokens") or 0),
            priced_cost=row.get("cost") or ZERO,
            latency_ms_sum=float(row.get("latency_ms_sum") or 0.0),
        )

    def add(self, other: Figures) -> None:
        self.calls += other.calls
        self.errors += other.errors
        self.retries += other.retries
        self.unpriced += other.unpriced
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.total_tokens += other.total_tokens
        self.priced_cost += other.priced_cost
        self.latency_ms_sum += other.latency_ms_sum
        if other.sessions is not None:
            self.sessions = (self.sessions or 0) + other.sessions

    @property
    def cost_state(self) -> CostState:
        if self.calls == 0:
            return "none"
        if self.unpriced == 0:
            return "known"
        # Failed calls are priced at 0: a model without a price whose other calls failed is
        # still unknown, not "at least $0".
        return "unknown" if self.unpriced >= self.calls or not self.priced_cost else "partial"

    @property
    def cost(self) -> Decimal | None:
        """The cost, None when every call is unpriced (a lower bound when some are)."""
        return None if self.cost_state == "unknown" else self.priced_cost

    @property
    def input_tokens(self) -> int:
        """Input tokens not served from the provider's cache."""
        return self.prompt_tokens - self.cached_tokens

    @property
    def output_tokens(self) -> int:
        """Output tokens other than reasoning."""
        return self.completion_tokens - self.reasoning_tokens

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.calls if self.calls else None

    @property
    def cost_per_session(self) -> Decimal | None:
        if not self.sessions or self.cost is None:
            return None
        return self.priced_cost / self.sessions


def share(part: Decimal | int | None, whole: Decimal | int | None) -> float | None:
    if part is None or not whole:
        return None
    return float(Decimal(part) / Decimal(whole))


# ---------------------------------------------------------------------------------------------
# Breakdowns


@dataclass(frozen=True)
class Dimension:
    slug: str
    label: str
    fields: tuple[str, ...]
    #: The session field with the same meaning (sessions per group come from the Session table).
    session_field: str = ""

    def key_label(self, key: Mapping[str, Any]) -> str:
        if self.slug == "day":
            return str(key["day"].isoformat())
        if self.slug == "model":
            model = key.get("model") or str(_("(no model)"))
            return f"{model} ({key['provider']})" if key.get("provider") else model
        value = key[self.fields[0]]
        return str(value) if value else str(_("(none)"))


DIMENSIONS: dict[str, Dimension] = {
    "enterprise": Dimension("enterprise", str(_("Enterprise")), ("enterprise_id",), "enterprise_id"),
    "workflow": Dimension("workflow", str(_("Workflow")), ("workflow_name",), "workflow_name"),
    "model": Dimension("model", str(_("Model")), ("model", "provider")),
    "agent": Dimension("agent", str(_("Agent")), ("agent_name",)),
    "day": Dimension("day", str(_("Day")), ("day",)),
}


@dataclass
class BreakdownRow:
    key: dict[str, Any]
    label: str
    figures: Figures
    cost_share: float | None = None
    token_share: float | None = None


@dataclass
class Breakdown:
    dimension: Dimension
    filter: ReportFilter
    rows: list[BreakdownRow]
    total: Figures

    def top(self, n: int) -> list[BreakdownRow]:
        return self.rows[:n]


def _sort_key(row: BreakdownRow) -> tuple[Any, ...]:
    f = row.figures
    return (-f.priced_cost, -f.unpriced, -f.calls, row.label)


def breakdown(dimension: str | Dimension, flt: ReportFilter, *, with_sessions: bool = True) -> Breakdown:
    """Totals per enterprise, workflow, model, agent or day: one grouped query on the rollups,
    plus one on sessions for the dimensions sessions have (enterprise, workflow, day)."""
    dim = DIMENSIONS[dimension] if isinstance(dimension, str) else dimension
    rows: list[BreakdownRow] = []
    total = Figures()
    for group in flt.rollups().grouped(*dim.fields):
        key = {name: group[name] for name in dim.fields}
        figures = Figures.from_rollup(group)
        total.add(figures)
        rows.append(BreakdownRow(key=key, label=dim.key_label(key), figures=figures))
    if with_sessions and (dim.session_field or dim.slug == "day"):
        by_key = _session_counts(dim, flt)
        total.sessions = sum(by_key.values())
        for row in rows:
            row.figures.sessions = by_key.get(row.key[dim.fields[0]], 0)
    if dim.slug == "day":
        present = {row.key["day"]: row for row in rows}
        rows = [
            present.get(day)
            or BreakdownRow(
                key={"day": day},
                label=day.isoformat(),
                figures=Figures(sessions=0 if total.sessions is not None else None),
            )
            for day in flt.days
        ]
    else:
        rows.sort(key=_sort_key)
    for row in rows:
        row.cost_share = share(row.figures.priced_cost, total.priced_cost)
        row.token_share = share(row.figures.total_tokens, total.total_tokens)
    return Breakdown(dimension=dim, filter=flt, rows=rows, total=total)


def _session_counts(dim: Dimension, flt: ReportFilter) -> dict[Any, int]:
    # Finished sessions only, like the rollups.
    sessions = flt.sessions().exclude(status=Session.Status.RUNNING)
    if dim.slug == "day":
        qs = sessions.annotate(day=TruncDate("started_at", tzinfo=dt.UTC)).count_by("day")
        return {row["day"]: row["sessions"] for row in qs}
    return {row[dim.session_field]: row["sessions"] for row in sessions.count_by(dim.session_field)}


# ---------------------------------------------------------------------------------------------
# Cost per day, stacked


OTHER = str(_("other"))


@dataclass
class DailySeries:
    """Cost per day per series (the top ``n`` values of a dimension, then "other")."""

    days: list[dt.date]
    names: list[str]
    #: values[name][i]: known cost of ``name`` on ``days[i]``
    values: dict[str, list[Decimal]]
    #: unpriced calls per day (their cost is unknown and not in ``values``)
    unpriced: list[int]
    #: token kinds per day: input (uncached), cached, output (non-reasoning), reasoning
    tokens: dict[str, list[int]]
    calls: list[int]
    #: the period's figures per series
    figures: dict[str, Figures] = field(default_factory=dict)

    @property
    def totals(self) -> list[Decimal]:
        return [sum((self.values[n][i] for n in self.names), ZERO) for i in range(len(self.days))]


def daily_series(flt: ReportFilter, stack: str = "model", *, top: int = 7) -> DailySeries:
    """One grouped query: the rollups per (day, ``stack`` value)."""
    dim = DIMENSIONS[stack]
    per_name: dict[str, Figures] = defaultdict(Figures)
    cells: list[tuple[dt.date, str, Figures]] = []
    for group in flt.rollups().grouped("day", *dim.fields):
        name = dim.key_label(group)
        cell = Figures.from_rollup(group)
        per_name[name].add(cell)
        cells.append((group["day"], name, cell))
    ranked = sorted(per_name, key=lambda n: (-per_name[n].priced_cost, -per_name[n].calls, n))
    names = ranked if len(ranked) <= top + 1 else [*ranked[:top], OTHER]
    index = {day: i for i, day in enumerate(flt.days)}
    days = flt.days
    values = {name: [ZERO] * len(days) for name in names}
    unpriced = [0] * len(days)
    calls = [0] * len(days)
    tokens = {kind: [0] * len(days) for kind in ("input", "cached", "output", "reasoning")}
    for day, name, f in cells:
        i = index.get(day)
        if i is None:
            continue
        values[name if name in values else OTHER][i] += f.priced_cost
        unpriced[i] += f.unpriced
        calls[i] += f.calls
        tokens["input"][i] += f.input_tokens
        tokens["cached"][i] += f.cached_tokens
        tokens["output"][i] += f.output_tokens
        tokens["reasoning"][i] += f.reasoning_tokens
    per_series: dict[str, Figures] = {}
    for name, f in per_name.items():
        per_series.setdefault(name if name in values else OTHER, Figures()).add(f)
    return DailySeries(
        days=days,
        names=names,
        values=values,
        unpriced=unpriced,
        tokens=tokens,
        calls=calls,
        figures=per_series,
    )


# ---------------------------------------------------------------------------------------------
# Overview


@dataclass
class Overview:
    filter: ReportFilter
    total: Figures
    series: DailySeries
    stack: str
    top: dict[str, Breakdown]
    unattributed_calls: int
    running_sessions: int


def overview(flt: ReportFilter, *, stack: str = "model", top: int = 5) -> Overview:
    """Totals, cost per day and the top enterprises, workflows, models and agents (7 queries)."""
    tops = {
        slug: breakdown(slug, flt, with_sessions=False)
        for slug in ("enterprise", "workflow", "model", "agent")
    }
    total = tops["model"].total
    counts = flt.sessions().aggregate(
        sessions=Count("id", filter=~Q(status=Session.Status.RUNNING)),
        running=Count("id", filter=Q(status=Session.Status.RUNNING)),
    )
    total = replace(total, sessions=counts["sessions"])
    unattributed = 0
    if not flt.enterprise and not flt.workflow:
        unattributed = flt.calls().unattributed().count()
    return Overview(
        filter=flt,
        total=total,
        series=daily_series(flt, stack),
        stack=stack,
        top=tops,
        unattributed_calls=unattributed,
        running_sessions=counts["running"],
    )


# ---------------------------------------------------------------------------------------------
# Model comparison


@dataclass
class ModelRow:
    model: str
    provider: str
    figures: Figures
    priced_tokens: int
    mean_latency_ms: float | None
    p95_latency_ms: float | None
    cost_share: float | None = None

    @property
    def label(self) -> str:
        return f"{self.model} ({self.provider})" if self.provider else self.model

    @property
    def cost_per_1k_tokens(self) -> Decimal | None:
        if self.figures.cost is None or not self.priced_tokens:
            return None
        return self.figures.priced_cost * 1000 / self.priced_tokens

    @property
    def cost_per_session(self) -> Decimal | None:
        return self.figures.cost_per_session

    @property
    def error_rate(self) -> float | None:
        return self.figures.error_rate

    @property
    def retry_rate(self) -> float | None:
        """SDK retries per call."""
        f = self.figures
        return f.retries / f.calls if f.calls else None

    @property
    def cache_hit_rate(self) -> float | None:
        """Share of input tokens read from the provider's prompt cache."""
        f = self.figures
        return f.cached_tokens / f.prompt_tokens if f.prompt_tokens else None

    def sort_value(self, column: str) -> Any:
        value = MODEL_COLUMNS[column][1](self)
        return value


#: Sortable columns of the model comparison: slug -> (heading, value).
MODEL_COLUMNS: dict[str, tuple[str, Any]] = {
    "model": (str(_("Model")), lambda r: r.label.lower()),
    "calls": (str(_("Calls")), lambda r: r.figures.calls),
    "sessions": (str(_("Sessions")), lambda r: r.figures.sessions or 0),
    "input": (str(_("Input")), lambda r: r.figures.prompt_tokens),
    "cached": (str(_("Cached")), lambda r: r.figures.cached_tokens),
    "output": (str(_("Output")), lambda r: r.figures.completion_tokens),
    "reasoning": (str(_("Reasoning")), lambda r: r.figures.reasoning_tokens),
    "cost": (str(_("Cost")), lambda r: r.figures.cost),
    "per1k": (str(_("Cost / 1k tokens")), lambda r: r.cost_per_1k_tokens),
    "persession": (str(_("Cost / session")), lambda r: r.cost_per_session),
    "latency": (str(_("Mean latency")), lambda r: r.mean_latency_ms),
    "p95": (str(_("p95 latency")), lambda r: r.p95_latency_ms),
    "errors": (str(_("Error rate")), lambda r: r.error_rate),
    "retries": (str(_("Retries / call")), lambda r: r.retry_rate),
    "cache": (str(_("Cache hit rate")), lambda r: r.cache_hit_rate),
}


@dataclass
class LatencyHistogram:
    bounds_ms: tuple[float, ...]
    #: counts[model][bucket]
    counts: dict[str, list[int]]

    @property
    def labels(self) -> list[str]:
        return latency_bucket_labels(self.bounds_ms)

    @property
    def totals(self) -> list[int]:
        out = [0] * (len(self.bounds_ms) + 1)
        for counts in self.counts.values():
            for i, n in enumerate(counts):
                out[i] += n
        return out


def latency_bucket_labels(bounds_ms: Sequence[float]) -> list[str]:
    """Short labels: '<250ms', '250-500ms', '0.5-1s', '1-2s', ..., '≥32s' (with en dashes)."""

    def fmt(ms: float, unit_of: float) -> str:
        return f"{ms / 1000:g}" if unit_of >= 1000 else f"{ms:g}"

    def unit(ms: float) -> str:
        return "s" if ms >= 1000 else "ms"

    labels = [f"<{fmt(bounds_ms[0], bounds_ms[0])}{unit(bounds_ms[0])}"]
    labels += [
        f"{fmt(lo, hi)}–{fmt(hi, hi)}{unit(hi)}"  # noqa: RUF001
        for lo, hi in itertools.pairwise(bounds_ms)
    ]
    labels.append(f"≥{fmt(bounds_ms[-1], bounds_ms[-1])}{unit(bounds_ms[-1])}")
    return labels


@dataclass
class ModelComparison:
    filter: ReportFilter
    rows: list[ModelRow]
    total: Figures
    histogram: LatencyHistogram
    sort: str
    p95_in_sql: bool
    #: True when sessions, p95 and the histogram come from the model rollups (not the calls):
    #: p95 is then interpolated in a histogram bucket (see ``p95_resolution_pct``).
    from_histogram: bool = False

    @property
    def p95_resolution_pct(self) -> int:
        """Half the relative width of a histogram bucket, in percent (p95 from the rollups)."""
        return round(100 * (LATENCY_BUCKET_RATIO - 1) / 2)


def percentile_in_sql() -> bool:
    return connection.vendor == "postgresql"


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's ``percentile_cont``."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def histogram_percentile(buckets: Sequence[int], fraction: float) -> float | None:
    """The percentile of the values counted in ``buckets`` (of ``LATENCY_BUCKET_BOUNDS_MS``): the
    bucket holding the rank ``percentile_cont`` would take, and in it a geometric interpolation
    (the bucket's values taken as evenly spread in log scale). Within a bucket of the exact value."""
    count = sum(buckets)
    if not count:
        return None
    position = fraction * (count - 1)
    below = 0
    for i, n in enumerate(buckets):
        if n and position < below + n:
            inside = (position - below + 0.5) / n
            if i >= len(LATENCY_BUCKET_BOUNDS_MS):
                return LATENCY_BUCKET_BOUNDS_MS[-1]
            high = LATENCY_BUCKET_BOUNDS_MS[i]
            if i == 0:
                return high * inside
            low = LATENCY_BUCKET_BOUNDS_MS[i - 1]
            return float(low * (high / low) ** inside)
        below += n
    return LATENCY_BUCKET_BOUNDS_MS[-1]


def _display_bucket(fine: int) -> int:
    """The bucket of ``LATENCY_BOUNDS_MS`` holding bucket ``fine`` of the model rollups."""
    return 0 if fine == 0 else bisect_right(LATENCY_BOUNDS_MS, LATENCY_BUCKET_BOUNDS_MS[fine - 1])


DISPLAY_BUCKET = tuple(_display_bucket(i) for i in range(LATENCY_BUCKETS))

#: Up to this many calls in the period, latency and sessions per model are counted from the
#: calls; above it (and without ``exact=True``), they come from the model rollups: sessions
#: exactly, p95 from their latency histogram, so the page stays fast at millions of calls.
EXACT_LIMIT = 100_000


def model_comparison(flt: ReportFilter, *, sort: str = "-cost", exact: bool = False) -> ModelComparison:
    """Per model and provider. Counts, tokens, cost and mean latency come from the rollups (one
    grouped query). Sessions per model, p95 latency and the latency histogram come, when the
    period has more than ``EXACT_LIMIT`` calls and ``exact`` is not asked for, from the model
    rollups (one grouped query: sessions exact, p95 interpolated in the summed histogram);
    otherwise from the calls: one grouped query (plus, without ``percentile_cont``, one for the
    latencies)."""
    in_sql = percentile_in_sql()
    rows: list[ModelRow] = []
    total = Figures()
    for group in flt.rollups().grouped("model", "provider"):
        figures = Figures.from_rollup(group)
        total.add(figures)
        rows.append(
            ModelRow(
                model=group["model"],
                provider=group["provider"],
                figures=figures,
                priced_tokens=int(group["priced_tokens"] or 0),
                mean_latency_ms=figures.mean_latency_ms,
                p95_latency_ms=None,
            )
        )
    from_histogram = not exact and total.calls > EXACT_LIMIT
    by_key = {(r.model, r.provider): r for r in rows}
    counts: dict[str, list[int]] = {}
    if rows and from_histogram:
        for group in flt.model_rollups().by_model():
            buckets = [int(group[f"bucket_{i}"] or 0) for i in range(LATENCY_BUCKETS)]
            if (row := by_key.get((group["model"], group["provider"]))) is not None:
                row.p95_latency_ms = histogram_percentile(buckets, 0.95)
                row.figures.sessions = int(group["session_count"] or 0)
            bucket_counts = counts.setdefault(group["model"], [0] * (len(LATENCY_BOUNDS_MS) + 1))
            for i, n in enumerate(buckets):
                bucket_counts[DISPLAY_BUCKET[i]] += n
    elif rows:
        calls = rolled_up_calls(flt)
        for group in calls.model_latency(percentile_in_sql=in_sql, bounds_ms=LATENCY_BOUNDS_MS):
            if (row := by_key.get((group["model"], group["provider"]))) is not None:
                row.p95_latency_ms = group.get("p95_latency_ms")
                row.figures.sessions = group["session_count"]
            bucket_counts = counts.setdefault(group["model"], [0] * (len(LATENCY_BOUNDS_MS) + 1))
            for i in range(len(LATENCY_BOUNDS_MS) + 1):
                bucket_counts[i] += group[f"bucket_{i}"]
        if not in_sql:
            exact_latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
            for model, provider, latency in calls.latencies_by_model():
                exact_latencies[model, provider].append(latency)
            for row in rows:
                row.p95_latency_ms = percentile(exact_latencies.get((row.model, row.provider), []), 0.95)
    for row in rows:
        row.cost_share = share(row.figures.priced_cost, total.priced_cost)
    column = sort.lstrip("-")
    if column not in MODEL_COLUMNS:
        sort, column = "-cost", "cost"
    rows = sort_rows(rows, column, descending=sort.startswith("-"))
    return ModelComparison(
        filter=flt,
        rows=rows,
        total=total,
        histogram=LatencyHistogram(LATENCY_BOUNDS_MS, counts),
        sort=sort,
        p95_in_sql=in_sql,
        from_histogram=from_histogram and bool(rows),
    )


def rolled_up_calls(flt: ReportFilter) -> Any:
    """The calls of the period that the rollups hold: those of finished sessions in scope.

    The scope is a subquery on sessions (their enterprise and workflow indexes), so a filtered
    report reads the calls of those sessions rather than every call of the period."""
    sessions = Session.objects.exclude(status=Session.Status.RUNNING)
    if flt.enterprise or flt.workflow:
        sessions = sessions.in_scope(flt.enterprise, flt.workflow).filter(
            started_at__lt=day_start(flt.end + dt.timedelta(days=1))
        )
    return LLMCall.objects.started_between(flt.start, flt.end).filter(session__in=sessions.values("pk"))


def sort_rows(rows: list[ModelRow], column: str, *, descending: bool) -> list[ModelRow]:
    """Sort by ``column``; rows without a value (unknown cost, no latency) always go last."""
    getter = MODEL_COLUMNS[column][1]
    present = [r for r in rows if getter(r) is not None]
    missing = [r for r in rows if getter(r) is None]
    present.sort(key=lambda r: (getter(r), r.label), reverse=descending)
    return present + sorted(missing, key=lambda r: r.label)


# ---------------------------------------------------------------------------------------------
# Session timeline


@dataclass
class Step:
    kind: Literal["llm", "tool", "event"]
    at: dt.datetime | None
    seq: int
    agent: str
    name: str
    obj: Any
    started_at: dt.datetime | None = None
    duration_ms: float | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: Decimal | None = None
    priced: bool = True
    error: str = ""
    offset_s: float | None = None

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class Timeline:
    session: Session
    steps: list[Step]
    truncated: bool
    counts: dict[str, int]
    agents: list[str]
    span_s: float
    children: list[Session] = field(default_factory=list)


def _step_sort_key(step: Step) -> tuple[Any, ...]:
    moment = step.started_at or step.at
    return (moment is None, moment or dt.datetime.min.replace(tzinfo=dt.UTC), step.seq)


def timeline(session: Session, *, limit: int = TIMELINE_LIMIT) -> Timeline:
    """The session's LLM calls, tool calls and agent events in time order (three queries, plus
    one for child sessions), each step with its tokens, cost and latency."""
    steps: list[Step] = []
    calls = list(
        LLMCall.objects.for_session(session.pk).order_by("seq").defer("request", "response")[: limit + 1]
    )
    for call in calls:
        steps.append(
            Step(
                kind="llm",
                at=call.ended_at,
                seq=call.seq,
                agent=call.agent_name,
                name=call.model,
                obj=call,
                started_at=call.started_at,
                duration_ms=call.latency_ms,
                prompt_tokens=call.prompt_tokens,
                cached_tokens=call.cached_tokens,
                completion_tokens=call.completion_tokens,
                reasoning_tokens=call.reasoning_tokens,
                cost=call.cost,
                priced=call.cost is not None,
                error=call.error,
            )
        )
    tools = list(ToolCall.objects.filter(session=session).order_by("seq").defer("arguments")[: limit + 1])
    for tool in tools:
        steps.append(
            Step(
                kind="tool",
                at=tool.ended_at,
                seq=tool.seq,
                agent=tool.agent_name,
                name=tool.name,
                obj=tool,
                started_at=tool.started_at,
                duration_ms=tool.duration_ms,
                error=tool.error,
            )
        )
    events = list(AgentEvent.objects.filter(session=session).order_by("seq").defer("data")[: limit + 1])
    for event in events:
        steps.append(
            Step(
                kind="event",
                at=event.created_at,
                seq=event.seq,
                agent=event.agent_name,
                name=event.name,
                obj=event,
                duration_ms=event.duration_ms,
                error=event.error,
            )
        )
    steps.sort(key=_step_sort_key)
    truncated = len(steps) > limit
    steps = steps[:limit]
    origin = session.started_at
    end = session.ended_at or origin
    for step in steps:
        moment = step.started_at or step.at
        if moment is not None:
            step.offset_s = (moment - origin).total_seconds()
            finish = step.at or moment
            end = max(end, finish)
    agents = sorted({s.agent for s in steps if s.agent})
    children = list(session.children.order_by("started_at")[:100])
    return Timeline(
        session=session,
        steps=steps,
        truncated=truncated,
        counts={"llm": len(calls), "tool": len(tools), "event": len(events)},
        agents=agents,
        span_s=max((end - origin).total_seconds(), 0.001),
        children=children,
    )


# ---------------------------------------------------------------------------------------------
# Tables (CSV, the management command)


def money(value: Decimal | None) -> str:
    """A cost as plain text with all its precision (CSV, JSON): '' when unknown."""
    if value is None:
        return ""
    return format(value.normalize(), "f") if value else "0"


def ratio(value: float | None, places: int = 4) -> str:
    return "" if value is None else f"{value:.{places}f}"


def number(value: float | None, places: int = 1) -> str:
    return "" if value is None else f"{value:.{places}f}"


FIGURE_HEADER = [
    "sessions",
    "calls",
    "errors",
    "retries",
    "unpriced_calls",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost",
    "cost_complete",
    "cost_share",
    "token_share",
]


def _figure_cells(f: Figures, cost_share: float | None, token_share: float | None) -> list[Any]:
    return [
        "" if f.sessions is None else f.sessions,
        f.calls,
        f.errors,
        f.retries,
        f.unpriced,
        f.prompt_tokens,
        f.cached_tokens,
        f.completion_tokens,
        f.reasoning_tokens,
        f.total_tokens,
        money(f.cost),
        "yes" if f.cost_state in ("known", "none") else "no",
        ratio(cost_share),
        ratio(token_share),
    ]


def breakdown_table(report: Breakdown, *, with_total: bool = True) -> tuple[list[str], Iterator[list[Any]]]:
    """Header and rows of a breakdown, for CSV, JSON and the terminal (the total row last)."""
    keys = list(report.dimension.fields)
    header = [*keys, *FIGURE_HEADER]

    def rows() -> Iterator[list[Any]]:
        for row in report.rows:
            key = [row.key[name].isoformat() if name == "day" else row.key[name] for name in keys]
            yield [*key, *_figure_cells(row.figures, row.cost_share, row.token_share)]
        if with_total:
            label = ["TOTAL", *([""] * (len(keys) - 1))]
            yield [*label, *_figure_cells(report.total, 1.0 if report.total.priced_cost else None, 1.0)]

    return header, rows()


MODEL_HEADER = [
    "model",
    "provider",
    "calls",
    "sessions",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "total_tokens",
    "unpriced_calls",
    "cost",
    "cost_share",
    "cost_per_1k_tokens",
    "cost_per_session",
    "mean_latency_ms",
    "p95_latency_ms",
    "error_rate",
    "retries_per_call",
    "cache_hit_rate",
]


def model_table(report: ModelComparison) -> tuple[list[str], Iterator[list[Any]]]:
    def rows() -> Iterator[list[Any]]:
        for r in report.rows:
            f = r.figures
            yield [
                r.model,
                r.provider,
                f.calls,
                f.sessions,
                f.prompt_tokens,
                f.cached_tokens,
                f.completion_tokens,
                f.reasoning_tokens,
                f.total_tokens,
                f.unpriced,
                money(f.cost),
                ratio(r.cost_share),
                money(_round(r.cost_per_1k_tokens)),
                money(_round(r.cost_per_session)),
                number(r.mean_latency_ms),
                number(r.p95_latency_ms),
                ratio(r.error_rate),
                ratio(r.retry_rate),
                ratio(r.cache_hit_rate),
            ]

    return MODEL_HEADER, rows()


def _round(value: Decimal | None, places: int = 10) -> Decimal | None:
    return None if value is None else value.quantize(Decimal(1).scaleb(-places))


TIMELINE_HEADER = [
    "offset_s",
    "kind",
    "seq",
    "agent",
    "name",
    "started_at",
    "ended_at",
    "duration_ms",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost",
    "error",
]


def timeline_table(report: Timeline) -> tuple[list[str], Iterator[list[Any]]]:
    def rows() -> Iterator[list[Any]]:
        for s in report.steps:
            yield [
                number(s.offset_s, 3),
                s.kind,
                s.seq,
                s.agent,
                s.name,
                s.started_at.isoformat() if s.started_at else "",
                s.at.isoformat() if s.at else "",
                number(s.duration_ms),
                s.prompt_tokens,
                s.cached_tokens,
                s.completion_tokens,
                s.reasoning_tokens,
                money(s.cost) if s.kind == "llm" else "",
                s.error,
            ]

    return TIMELINE_HEADER, rows()


def overview_table(report: Overview) -> tuple[list[str], Iterator[list[Any]]]:
    """The overview as one table: the top rows of each dimension, then the total."""
    header = ["dimension", "value", *FIGURE_HEADER]

    def rows() -> Iterator[list[Any]]:
        for slug, part in report.top.items():
            for row in part.rows:
                yield [slug, row.label, *_figure_cells(row.figures, row.cost_share, row.token_share)]
        yield ["total", "", *_figure_cells(report.total, 1.0 if report.total.priced_cost else None, 1.0)]

    return header, rows()


def as_records(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(header, row, strict=True)) for row in rows]
