"""Chainable QuerySets: every query the admin, reports and tasks make lives here."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from django.db.models import Aggregate, Avg, BigIntegerField, Count, FloatField, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from ag2_logging.events import ROLLUP_COUNTERS, SESSION_COUNTERS

if TYPE_CHECKING:
    from ag2_logging.models import DailyRollup, LLMCall, ModelDayRollup, Session  # noqa: F401


TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "total_tokens")


class SessionQuerySet(models.QuerySet["Session"]):
    def started_between(self, start: date, end: date) -> SessionQuerySet:
        """Sessions started on UTC days ``start`` to ``end`` inclusive (a range the indexes serve)."""
        return self.filter(
            started_at__gte=day_start(start), started_at__lt=day_start(end + dt.timedelta(days=1))
        )

    def in_scope(self, enterprise_id: str = "", workflow_name: str = "") -> SessionQuerySet:
        qs = self
        if enterprise_id:
            qs = qs.filter(enterprise_id=enterprise_id)
        if workflow_name:
            qs = qs.filter(workflow_name=workflow_name)
        return qs

    def count_by(self, *fields: str) -> models.QuerySet[Any, Any]:
        """Number of sessions per value of ``fields``, one grouped query."""
        grouped: models.QuerySet[Any, Any] = self.values(*fields).annotate(sessions=Count("id")).order_by()
        return grouped

    def finished(self) -> SessionQuerySet:
        # Listed rather than excluding "running": served by the (status, started_at) index.
        return self.filter(status__in=[s for s in self.model.Status.values if s != self.model.Status.RUNNING])

    def pipeline_failed(self) -> SessionQuerySet:
        """Sessions the pipeline gave up on (``pipeline_failed_at``): not in the reports."""
        return self.filter(pipeline_failed_at__isnull=False)

    def not_in_reports(self, older_than_seconds: float, *, now: dt.datetime | None = None) -> SessionQuerySet:
        """Finished sessions that ended more than ``older_than_seconds`` ago and are not yet both
        ingested and rolled up (the reports do not include them), failed ones included."""
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=older_than_seconds)
        return (
            self.finished()
            .filter(Q(ingested_at__isnull=True) | Q(summarized_at__isnull=True))
            .filter(Q(ended_at__lt=cutoff) | Q(ended_at__isnull=True, started_at__lt=cutoff))
        )

    def missing_from_reports(
        self, older_than_seconds: float, *, now: dt.datetime | None = None
    ) -> SessionQuerySet:
        """Finished sessions the reports leave out that are not merely on their way: their pipeline
        failed, is retrying after an error (``pipeline_error`` set), or is still pending
        ``older_than_seconds`` after the session ended. What the doctor, the sessions list, the
        report pages and ``ag2_logging_report`` warn about."""
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=older_than_seconds)
        left_out = self.finished().filter(Q(ingested_at__isnull=True) | Q(summarized_at__isnull=True))
        late = Q(ended_at__lt=cutoff) | Q(ended_at__isnull=True, started_at__lt=cutoff)
        return left_out.filter(late | ~Q(pipeline_error="")) | self.pipeline_failed()

    def ingested(self) -> SessionQuerySet:
        """Sessions whose journal has reached the database (at least once)."""
        return self.filter(ingested_at__isnull=False)

    def older_than(self, days: float, *, now: dt.datetime | None = None) -> SessionQuerySet:
        """Finished sessions that ended more than ``days`` days before ``now`` (one whose end was
        never recorded counts from its start). A running session is never old: retention of rows
        and of journals both start from here."""
        cutoff = (now or timezone.now()) - dt.timedelta(days=days)
        # started_at < cutoff follows from ended_at < cutoff; it is there for the index.
        return self.finished().filter(
            Q(ended_at__lt=cutoff) | Q(ended_at__isnull=True), started_at__lt=cutoff
        )

    def delete_in_batches(
        self, batch_size: int = 1_000, *, progress: Callable[[int, int], None] | None = None
    ) -> BatchDeletion:
        """Delete these sessions with their calls, events and tool calls, ``batch_size`` sessions
        per transaction (see ``delete_in_batches()``)."""
        return delete_in_batches(self, batch_size, progress=progress)


class LLMCallQuerySet(models.QuerySet["LLMCall"]):
    def for_session(self, session_id: Any) -> LLMCallQuerySet:
        return self.filter(session_id=session_id)

    def unattributed(self) -> LLMCallQuerySet:
        return self.filter(session__isnull=True)

    def started_between(self, start: date, end: date) -> LLMCallQuerySet:
        """Calls started on UTC days ``start`` to ``end`` inclusive (served by the started_at index)."""
        return self.filter(
            started_at__gte=day_start(start), started_at__lt=day_start(end + dt.timedelta(days=1))
        )

    def in_scope(self, enterprise_id: str = "", workflow_name: str = "") -> LLMCallQuerySet:
        qs = self
        if enterprise_id:
            qs = qs.filter(session__enterprise_id=enterprise_id)
        if workflow_name:
            qs = qs.filter(session__workflow_name=workflow_name)
        return qs

    def model_latency(
        self, *, percentile_in_sql: bool, bounds_ms: tuple[float, ...] = ()
    ) -> models.QuerySet[Any, Any]:
        """Per (model, provider), one grouped query: calls, sessions that used it, mean latency,
        p95 latency (by the database when ``percentile_in_sql``: PostgreSQL's
        ``percentile_cont``) and, for ``bounds_ms``, the calls per latency bucket ``bucket_<i>``
        (bucket i holds ``bounds_ms[i-1] <= latency < bounds_ms[i]``, the last one the rest)."""
        aggregates: dict[str, Any] = {
            "call_count": Count("id"),
            "session_count": Count("session", distinct=True),
            "mean_latency_ms": Avg("latency_ms"),
        }
        if percentile_in_sql:
            aggregates["p95_latency_ms"] = PercentileCont(0.95, "latency_ms")
        edges = [None, *bounds_ms, None] if bounds_ms else []
        for i, (low, high) in enumerate(itertools.pairwise(edges)):
            condition = Q(latency_ms__isnull=False)
            if low is not None:
                condition &= Q(latency_ms__gte=low)
            if high is not None:
                condition &= Q(latency_ms__lt=high)
            aggregates[f"bucket_{i}"] = Count("id", filter=condition)
        grouped: models.QuerySet[Any, Any] = (
            self.values("model", "provider").annotate(**aggregates).order_by()
        )
        return grouped

    def latencies_by_model(self) -> models.QuerySet[Any, Any]:
        """(model, provider, latency_ms) sorted, for a percentile computed outside the database."""
        return (
            self.filter(latency_ms__isnull=False)
            .order_by("model", "provider", "latency_ms")
            .values_list("model", "provider", "latency_ms")
        )

    @staticmethod
    def _totals_aggregates() -> dict[str, Any]:
        aggregates: dict[str, Any] = {name: Coalesce(Sum(name), 0) for name in TOKEN_FIELDS}
        aggregates["call_count"] = Count("id")
        aggregates["error_count"] = Count("id", filter=Q(status="error"))
        aggregates["unpriced_calls"] = Count("id", filter=Q(cost__isnull=True))
        aggregates["retry_count"] = Coalesce(Sum("retries"), 0)
        aggregates["total_cost"] = Sum("cost")
        return aggregates

    def totals_by_session(self) -> dict[Any, dict[str, Any]]:
        """``totals()`` of each session these calls belong to, keyed by session id, in one
        grouped query (a session without calls here has no entry)."""
        found: dict[Any, dict[str, Any]] = {}
        grouped: models.QuerySet[Any, Any] = self.values("session_id")
        for row in grouped.annotate(**self._totals_aggregates()).order_by():
            session_id = row.pop("session_id")
            if row["unpriced_calls"] and not row["total_cost"]:
                row["total_cost"] = None
            found[session_id] = row
        return found

    def totals(self) -> dict[str, Any]:
        """Calls, errors, unpriced calls, the token kinds and cost (USD), in one query.

        Every call counts, failed ones included (``error_count`` of them; they cost 0 by
        ``price_call``'s rule). ``unpriced_calls`` are the calls without a cost (``cost`` NULL:
        price status ``unknown`` or ``no_usage``), as the recorder and the rollups count them.
        ``total_cost`` is the sum of the known costs, None when there is nothing to sum or when
        calls are unpriced and the known costs sum to 0 (a lower bound of $0 says nothing: the
        cost is unknown, as ``reports.Figures.cost_state`` has it).
        """
        totals = self.aggregate(**self._totals_aggregates())
        if totals["unpriced_calls"] and not totals["total_cost"]:
            totals["total_cost"] = None
        return totals

    def older_than(self, days: float, *, now: dt.datetime | None = None) -> LLMCallQuerySet:
        """Calls that ended (or, without an end, started) more than ``days`` days before ``now``."""
        cutoff = (now or timezone.now()) - dt.timedelta(days=days)
        return self.filter(Q(ended_at__lt=cutoff) | Q(ended_at__isnull=True, started_at__lt=cutoff))

    def delete_in_batches(
        self, batch_size: int = 1_000, *, progress: Callable[[int, int], None] | None = None
    ) -> BatchDeletion:
        """Delete these calls, ``batch_size`` per transaction (see ``delete_in_batches()``)."""
        return delete_in_batches(self, batch_size, progress=progress)


#: The totals a ``Session`` row keeps (recomputed from its calls by ``LLMCallQuerySet.totals``).
SESSION_TOTALS = SESSION_COUNTERS

#: Summed columns of ``DailyRollup``.
ROLLUP_SUMS = ROLLUP_COUNTERS


class DailyRollupQuerySet(models.QuerySet["DailyRollup"]):
    def for_days(self, start: date, end: date) -> DailyRollupQuerySet:
        return self.filter(day__gte=start, day__lte=end)

    def in_scope(self, enterprise_id: str = "", workflow_name: str = "") -> DailyRollupQuerySet:
        qs = self
        if enterprise_id:
            qs = qs.filter(enterprise_id=enterprise_id)
        if workflow_name:
            qs = qs.filter(workflow_name=workflow_name)
        return qs

    def grouped(self, *fields: str) -> models.QuerySet[Any, Any]:
        """The summed columns per value of ``fields``, one grouped query; ``priced_tokens`` are
        the tokens of rollups without unpriced calls (for costs per token)."""
        # Before "total_tokens" is annotated: it would shadow the column.
        sums: dict[str, Any] = {"priced_tokens": Sum("total_tokens", filter=Q(unpriced_calls=0))}
        sums.update({name: Sum(name) for name in ROLLUP_SUMS})
        grouped: models.QuerySet[Any, Any] = self.values(*fields).annotate(**sums).order_by()
        return grouped

    def totals(self) -> dict[str, Any]:
        """The summed columns over the whole queryset, one query."""
        return self.aggregate(**{name: Sum(name) for name in ROLLUP_SUMS})

    def scopes(self) -> models.QuerySet[Any, Any]:
        """The distinct (enterprise, workflow) pairs: the choices of the reports' filters."""
        return (
            self.values_list("enterprise_id", "workflow_name")
            .distinct()
            .order_by("enterprise_id", "workflow_name")
        )


#: Latency histogram of ``ModelDayRollup``: bucket bounds (ms) at a constant ratio of 2^(1/6)
#: (buckets 12% wide) from 7.8125 ms to 34 min. Bucket ``i`` holds ``bounds[i-1] <= ms <
#: bounds[i]``; bucket 0 is below the first bound, the last one at or above the last bound. Every
#: sixth bound is a power of two times 7.8125 ms (250 ms, 500 ms, 1 s, ... 32 s), so the reports'
#: coarser histogram is an exact regrouping of these buckets.
LATENCY_BUCKET_RATIO = 2 ** (1 / 6)
LATENCY_BUCKET_BOUNDS_MS: tuple[float, ...] = tuple(7.8125 * 2 ** (i / 6) for i in range(109))
LATENCY_BUCKETS = len(LATENCY_BUCKET_BOUNDS_MS) + 1


def empty_latency_buckets() -> list[int]:
    return [0] * LATENCY_BUCKETS


def latency_bucket(latency_ms: float) -> int:
    """The index of the histogram bucket holding ``latency_ms``."""
    return bisect.bisect_right(LATENCY_BUCKET_BOUNDS_MS, latency_ms)


class ModelDayRollupQuerySet(models.QuerySet["ModelDayRollup"]):
    def for_days(self, start: date, end: date) -> ModelDayRollupQuerySet:
        return self.filter(day__gte=start, day__lte=end)

    def in_scope(self, enterprise_id: str = "", workflow_name: str = "") -> ModelDayRollupQuerySet:
        qs = self
        if enterprise_id:
            qs = qs.filter(enterprise_id=enterprise_id)
        if workflow_name:
            qs = qs.filter(workflow_name=workflow_name)
        return qs

    def by_model(self) -> models.QuerySet[Any, Any]:
        """Per (model, provider), one grouped query: ``session_count``, ``latency_count`` and the
        summed histogram, bucket i as ``bucket_<i>``."""
        sums: dict[str, Any] = {
            "session_count": Sum("session_count"),
            "latency_count": Sum("latency_count"),
        }
        for i in range(LATENCY_BUCKETS):
            element = Cast(KeyTextTransform(str(i), "latency_buckets"), BigIntegerField())
            sums[f"bucket_{i}"] = Sum(element)
        grouped: models.QuerySet[Any, Any] = self.values("model", "provider").annotate(**sums).order_by()
        return grouped


def day_start(day: date) -> dt.datetime:
    """Midnight UTC starting ``day`` (days in reports and rollups are UTC days)."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


class PercentileCont(Aggregate):
    """``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`` (PostgreSQL)."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, fraction: float, expression: Any, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


@dataclass
class BatchDeletion:
    """What ``delete_in_batches`` deleted: rows per model label (cascades included), batches run."""

    batches: int = 0
    deleted: Counter[str] = field(default_factory=Counter)


def delete_in_batches(
    queryset: models.QuerySet[Any, Any],
    batch_size: int = 1_000,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> BatchDeletion:
    """Delete the rows of ``queryset`` (and what cascades from them), ``batch_size`` rows per
    transaction, so a large purge never holds locks or a transaction open for long and a failure
    loses only the batch it happened in. The queryset is evaluated again for each batch: rows that
    stopped matching are left alone. Rows another purge has locked are skipped (PostgreSQL).
    ``progress(done, total)`` is called after each batch. Inside an outer ``atomic`` block the
    batches are savepoints of that transaction."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    model = queryset.model
    label = model._meta.label
    db = queryset.db
    result = BatchDeletion()
    total = queryset.count() if progress is not None else 0
    if progress is not None:
        if not total:
            return result  # nothing to delete, and no empty progress bar to show
        progress(0, total)
    done = 0
    while True:
        with transaction.atomic(using=db):
            pks = list(
                queryset.order_by()
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch_size]
            )
            if not pks:
                break
            _, counts = model._base_manager.using(db).filter(pk__in=pks).delete()
        result.batches += 1
        result.deleted.update(counts)
        done += counts.get(label, 0)
        if progress is not None:
            progress(done, max(total, done))
        if not counts.get(label):
            break  # deleted concurrently by someone else: stop rather than spin
        if len(pks) < batch_size:
            break  # that was the rest (rows that match from now on wait for the next run)
    return result
