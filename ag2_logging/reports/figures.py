"""What the reports return: figures, breakdown rows, daily series, model rows, timeline steps.

Plain values, computed by :mod:`ag2_logging.reports.queries` and read by the admin pages, the
CSV tables and the charts; the percentile arithmetic of the latency figures is here too. A cost
is *unknown* when a call's model has no price: such calls are counted (``unpriced``) and never
added as 0. A figure whose calls are all unpriced is unknown; one with some unpriced calls is a
lower bound (``partial``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from django.utils.translation import gettext_lazy as _

from ag2_logging.querysets import LATENCY_BUCKET_BOUNDS_MS, LATENCY_BUCKET_RATIO, LATENCY_BUCKETS
from ag2_logging.reports.filters import ReportFilter

if TYPE_CHECKING:
    from ag2_logging.models import Session

ZERO = Decimal(0)
#: Upper bounds (ms) of the latency histogram's buckets; the last bucket is open. Each is a
#: bound of the model rollups' finer histogram (``LATENCY_BUCKET_BOUNDS_MS``), which regroups.
LATENCY_BOUNDS_MS: tuple[float, ...] = (250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000)

CostState = Literal["none", "known", "partial", "unknown"]

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
    # From UserDayRollup and TagDayRollup: a tagged session counts under each of its tags.
    "user": Dimension("user", str(_("User")), ("user_id",)),
    "tag": Dimension("tag", str(_("Tag")), ("tag",)),
}


@dataclass
class BreakdownRow:
    key: dict[str, Any]
    label: str
    figures: Figures
    cost_share: float | None = None
    token_share: float | None = None
    #: Median and 95th percentile of the calls' latency (ms), for the workflow and agent
    #: breakdowns (None elsewhere, or when the period has too many calls to read them all).
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None


@dataclass
class Breakdown:
    dimension: Dimension
    filter: ReportFilter
    rows: list[BreakdownRow]
    total: Figures
    #: Whether the rows have their p50 and p95 latency (workflow and agent breakdowns).
    latency: bool = False

    def top(self, n: int) -> list[BreakdownRow]:
        return self.rows[:n]


# ---------------------------------------------------------------------------------------------
# Cost per day, stacked, and the overview


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


@dataclass
class Overview:
    filter: ReportFilter
    total: Figures
    series: DailySeries
    stack: str
    top: dict[str, Breakdown]
    unattributed_calls: int
    running_sessions: int


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
