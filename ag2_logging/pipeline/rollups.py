"""Daily rollups: totals per (day, enterprise, workflow, model, agent, provider).

``summarize_session`` adds one finished session's calls to the rollups, exactly once (the
``Session.summarized_at`` mark is set in the same transaction, under a row lock), with ``F()``
updates so concurrent sessions never lose each other's counts; ``summarize_sessions`` does the
same for several sessions in one transaction, each shared rollup row moved once. ``rebuild_rollups`` recomputes
everything from the raw rows and yields the same table. Days are UTC days of the call's end.
Unattributed calls (no session) have no enterprise or workflow and are not rolled up.

``ModelDayRollup`` is kept alongside, in the same transactions: per (day, enterprise, workflow,
model, provider), the sessions that used the model (each once, on the day of its first call to
it) and a latency histogram, merged under a lock on the rollup row; and ``ModelDayTotalRollup``,
the same summed over enterprises and workflows (a row per day, model and provider, what the
reports of every enterprise read), locked after every ``ModelDayRollup`` row, in key order.

``UserDayRollup`` and ``TagDayRollup`` (the same figures per user, per tag) are kept in the same
transactions too: see :mod:`ag2_logging.pipeline.people_rollups`.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce, TruncDate

from ag2_logging.models import DailyRollup, LLMCall, ModelDayRollup, ModelDayTotalRollup, Session
from ag2_logging.pipeline import people_rollups
from ag2_logging.pipeline.db import retry_deadlocks
from ag2_logging.querysets import ROLLUP_SUMS, empty_latency_buckets, latency_bucket

logger = logging.getLogger("ag2_logging.rollups")

KEY = ("day", "enterprise_id", "workflow_name", "model", "agent_name", "provider")
SUMS = ROLLUP_SUMS
MODEL_KEY = ("day", "enterprise_id", "workflow_name", "model", "provider")
MODEL_TOTAL_KEY = ("day", "model", "provider")


def rollup_day() -> Any:
    """The UTC day a call is rolled up on: that of its end (of its start when it has none)."""
    return TruncDate(Coalesce("ended_at", "started_at"), tzinfo=dt.UTC)


_day = rollup_day


def key_order(item: tuple[tuple[Any, ...], Any]) -> tuple[Any, ...]:
    """Sort key of a ``(KEY values, ...)`` pair: the one order in which every writer locks
    rollup rows (summarize within one session, reprice across sessions), so none deadlock."""
    key = item[0]
    return (key[0] or dt.date.min, *key[1:])


def _grouped(calls: Any, *, with_session_fields: bool, extra: dict[str, Any] | None = None) -> Any:
    """The calls' summed figures per (day, model, agent, provider), and per the session's
    enterprise and workflow (``with_session_fields``) and the ``extra`` annotations' values."""
    day = _day()
    values = ["day", "model", "agent_name", "provider"]
    annotations: dict[str, Any] = {"day": day}
    if with_session_fields:
        annotations["enterprise"] = F("session__enterprise_id")
        annotations["workflow"] = F("session__workflow_name")
        values += ["enterprise", "workflow"]
    if extra:
        annotations.update(extra)
        values += list(extra)
    return (
        calls.annotate(**annotations)
        .values(*values)
        .annotate(
            call_count=Count("id"),
            error_count=Count("id", filter=Q(status="error")),
            retry_count=Coalesce(Sum("retries"), 0),
            unpriced_calls=Count("id", filter=Q(cost__isnull=True)),
            prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
            completion_tokens=Coalesce(Sum("completion_tokens"), 0),
            cached_tokens=Coalesce(Sum("cached_tokens"), 0),
            reasoning_tokens=Coalesce(Sum("reasoning_tokens"), 0),
            total_tokens=Coalesce(Sum("total_tokens"), 0),
            cost=Sum("cost"),
            latency_ms_sum=Sum("latency_ms"),
        )
        .order_by()
    )


def _numbers(row: dict[str, Any]) -> dict[str, Any]:
    out = {name: row[name] or 0 for name in SUMS}
    out["cost"] = row["cost"] if row["cost"] is not None else Decimal(0)
    out["latency_ms_sum"] = float(row["latency_ms_sum"] or 0.0)
    return out


def adjust_rollup(key: dict[str, Any], cost_delta: Decimal, unpriced_delta: int) -> None:
    """Move the rollup row of ``key`` by a repricing's cost and unpriced-call differences. The
    caller holds the lock of every session whose calls changed (see ``reprice``)."""
    updated = DailyRollup.objects.filter(**key).update(
        cost=F("cost") + cost_delta, unpriced_calls=F("unpriced_calls") + unpriced_delta
    )
    if not updated:
        logger.warning("ag2_logging: no rollup row %s for a summarized session's calls", key)


def add_to_rollups(key: dict[str, Any], numbers: dict[str, Any], model: Any = DailyRollup) -> None:
    """Add ``numbers`` to the rollup row of ``key`` (created when missing), race-free; ``model``:
    ``DailyRollup``, ``UserDayRollup`` or ``TagDayRollup``."""
    moves = {name: F(name) + numbers[name] for name in SUMS}
    # The row exists but on a session's first day: one UPDATE. Else it is created, and when a
    # concurrent session created it first, moved after all.
    if model.objects.filter(**key).update(**moves):
        return
    rollup, created = model.objects.get_or_create(**key, defaults=numbers)
    if not created:
        model.objects.filter(pk=rollup.pk).update(**moves)


class ModelDays:
    """``ModelDayRollup`` figures accumulated from calls ``(session, enterprise, workflow, model,
    provider, day, latency_ms)``. With ``since``, only days from ``since`` on are kept, and a
    session is counted only when its first day with the model is one of them (every call of a
    session must then be added, those before ``since`` too)."""

    def __init__(self, since: dt.date | None = None) -> None:
        self.since = since
        self.first_day: dict[tuple[Any, ...], tuple[dt.date, tuple[Any, ...]]] = {}
        self.buckets: dict[tuple[Any, ...], list[int]] = {}

    def add(
        self,
        session_id: Any,
        enterprise: str,
        workflow: str,
        model: str,
        provider: str,
        day: dt.date,
        latency_ms: float | None,
    ) -> None:
        key = (day, enterprise, workflow, model, provider)
        seen = self.first_day.get((session_id, model, provider))
        if seen is None or day < seen[0]:
            self.first_day[session_id, model, provider] = (day, key)
        if self.since is None or day >= self.since:
            buckets = self.buckets.get(key)
            if buckets is None:
                buckets = self.buckets[key] = empty_latency_buckets()
            if latency_ms is not None:
                buckets[latency_bucket(latency_ms)] += 1

    def rows(self) -> dict[tuple[Any, ...], tuple[int, list[int]]]:
        """(session count, latency buckets) per key of ``MODEL_KEY``, in key order."""
        sessions: dict[tuple[Any, ...], int] = {}
        for day, key in self.first_day.values():
            if self.since is None or day >= self.since:
                sessions[key] = sessions.get(key, 0) + 1
        return {key: (sessions.get(key, 0), self.buckets[key]) for key in sorted(self.buckets)}


def merge_buckets(a: list[int], b: list[int]) -> list[int]:
    """Element-wise sum (the shorter list padded with zeros)."""
    size = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(size)]


def model_totals(
    rows: dict[tuple[Any, ...], tuple[int, list[int]]],
) -> dict[tuple[Any, ...], tuple[int, list[int]]]:
    """``ModelDays.rows()`` summed per (day, model, provider) (``ModelDayTotalRollup``'s key), in
    key order."""
    totals: dict[tuple[Any, ...], tuple[int, list[int]]] = {}
    for (day, _enterprise, _workflow, model, provider), (sessions, buckets) in rows.items():
        key = (day, model, provider)
        before = totals.get(key)
        totals[key] = (
            (sessions, buckets)
            if before is None
            else (
                before[0] + sessions,
                merge_buckets(before[1], buckets),
            )
        )
    return {key: totals[key] for key in sorted(totals)}


def add_to_model_rollups(
    key: dict[str, Any], sessions: int, buckets: list[int], model: Any = ModelDayRollup
) -> None:
    """Add sessions and a latency histogram to the ``model`` row of ``key`` (created when missing;
    ``ModelDayRollup`` or ``ModelDayTotalRollup``). The JSON list is merged under a lock of the
    row (``SELECT ... FOR UPDATE``), so concurrent sessions never lose each other's counts."""
    latency_count = sum(buckets)
    numbers = {"session_count": sessions, "latency_count": latency_count, "latency_buckets": buckets}
    rollup = model.objects.select_for_update().filter(**key).first()
    if rollup is None:
        _, created = model.objects.get_or_create(**key, defaults=numbers)
        if created:
            return
        rollup = model.objects.select_for_update().get(**key)
    model.objects.filter(pk=rollup.pk).update(
        session_count=F("session_count") + sessions,
        latency_count=F("latency_count") + latency_count,
        latency_buckets=merge_buckets(list(rollup.latency_buckets or []), buckets),
    )


def resync_people(session: Session) -> None:
    """Move the session's user and tag rollups by what a reprice changed in its calls' costs
    (``people_rollups.resync``; called from ``refresh_session_totals``)."""
    people_rollups.resync(session, _day())


def summarize_session(session_id: uuid.UUID | str) -> bool:
    """Add a finished session to the rollups once; False when already done or not finished."""
    return bool(summarize_sessions([session_id]))


@retry_deadlocks
def summarize_sessions(session_ids: Sequence[uuid.UUID | str]) -> list[uuid.UUID]:
    """Add finished sessions to the rollups, each once, in one transaction; returns those added,
    in the order given (a session already summarized, still running or unknown is left out).

    What ``summarize_session`` does for each, with the rollup rows they share moved once by
    their summed figures: one ``UPDATE`` per row for a batch of sessions of one enterprise,
    workflow and model, where each session took its own. The sessions' rows are locked in
    primary-key order (as ``reprice`` and ingest lock them), then every rollup row in key order
    (table by table, as one session's summarize does). A deadlock the database still finds (on
    MariaDB, InnoDB's locks around rows being created; a project's own transaction) ends the
    transaction, which runs again (``db.retry_deadlocks``).
    """
    keys = list(dict.fromkeys(k if isinstance(k, uuid.UUID) else uuid.UUID(str(k)) for k in session_ids))
    with transaction.atomic():
        locked = Session.objects.select_for_update().filter(pk__in=keys).order_by("pk")
        sessions = {s.pk: s for s in locked if s.summarized_at is None and s.status != Session.Status.RUNNING}
        if not sessions:
            return []
        calls = LLMCall.objects.filter(session_id__in=list(sessions))
        keyed: dict[uuid.UUID, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {pk: [] for pk in sessions}
        totals: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in _grouped(calls, with_session_fields=False, extra={"sid": F("session_id")}):
            session = sessions[row["sid"]]
            key = (
                row["day"],
                session.enterprise_id,
                session.workflow_name,
                row["model"],
                row["agent_name"],
                row["provider"],
            )
            keyed[session.pk].append((key, row))
            people_rollups.sum_into(totals, key, _numbers(row))
        # In key order: concurrent sessions (and reprice) lock the rows they share in one order.
        for key, numbers in sorted(totals.items(), key=key_order):
            add_to_rollups(dict(zip(KEY, key, strict=True)), numbers)
        shares = people_rollups.add_sessions(
            [(sessions[pk], sorted(keyed[pk], key=key_order)) for pk in sessions], _numbers
        )
        _add_model_days(calls, sessions)
        now = dt.datetime.now(dt.UTC)
        for pk, session in sessions.items():
            session.summarized_at, session.rollup_shares = now, shares[pk]
        if len(sessions) == 1:
            session.save(update_fields=["summarized_at", "rollup_shares"])
        else:
            Session.objects.bulk_update(list(sessions.values()), ["summarized_at", "rollup_shares"])
    return [key for key in keys if key in sessions]


def _add_model_days(calls: Any, sessions: dict[uuid.UUID, Session]) -> None:
    """Add the sessions' ``calls`` to ``ModelDayRollup``, then ``ModelDayTotalRollup``."""
    model_days = ModelDays()
    values = calls.annotate(_day=_day()).order_by()
    for sid, model, provider, day, latency in values.values_list(
        "session_id", "model", "provider", "_day", "latency_ms"
    ):
        session = sessions[sid]
        model_days.add(sid, session.enterprise_id, session.workflow_name, model, provider, day, latency)
    model_rows = model_days.rows()
    for model_key, (count, buckets) in model_rows.items():
        add_to_model_rollups(dict(zip(MODEL_KEY, model_key, strict=True)), count, buckets)
    # After every ModelDayRollup row: each writer locks the shared total rows last, in order.
    for total_key, (count, buckets) in model_totals(model_rows).items():
        add_to_model_rollups(
            dict(zip(MODEL_TOTAL_KEY, total_key, strict=True)), count, buckets, ModelDayTotalRollup
        )


def _first_recomputed_day() -> dt.date | None:
    """With ``RETENTION_DAYS``, the first day no pruned call can be on (None: every day).

    Retention deletes sessions that ended before ``now - RETENTION_DAYS``: their calls may be on
    that cutoff's own day, so that day is kept like the older ones and rebuilding starts the day
    after (a cutoff taken now is later than that of any earlier retention run).
    """
    from ag2_logging.conf import conf

    days = conf.resolved.retention_days
    if not days:
        return None
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).date() + dt.timedelta(days=1)


def _lock_out_writers() -> None:
    """Make the rebuild the only writer of sessions until it commits (PostgreSQL).

    ``EXCLUSIVE`` still lets readers in, but waits for, and then holds off, every transaction
    that locks or writes a session row: ingest, summarize and reprice all lock the session first,
    so none of them adds to, or moves, a rollup row between the rebuild's read of the calls and
    its marking of the sessions as summarized (else a session summarized meanwhile would count
    twice). SQLite transactions are serialized already; other databases take their chances.
    """
    connection = connections[router.db_for_write(Session)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"LOCK TABLE {connection.ops.quote_name(Session._meta.db_table)} IN EXCLUSIVE MODE"
            )


def rebuild_rollups(*, batch_size: int = 1_000, since: dt.date | None = None) -> int:
    """Recompute the rollups from the raw rows of finished sessions; returns the rows written.

    With ``RETENTION_DAYS`` set, days up to the raw-row cutoff are kept as they are (their rows
    may be pruned already: the rollups are all that is left of them) and only later days are
    recomputed; ``since`` sets that first recomputed day explicitly.
    """
    if since is None:
        since = _first_recomputed_day()
    with transaction.atomic():
        _lock_out_writers()
        return _rebuild(batch_size, since)


def _rebuild(batch_size: int, since: dt.date | None) -> int:
    finished = Session.objects.exclude(status=Session.Status.RUNNING)
    calls = LLMCall.objects.filter(session__in=finished)
    existing = DailyRollup.objects.all()
    existing_models = ModelDayRollup.objects.all()
    existing_totals = ModelDayTotalRollup.objects.all()
    # Every call of the sessions with a call from ``since`` on: their first day with each model.
    model_calls = calls
    if since is not None:
        calls = calls.annotate(_day=_day()).filter(_day__gte=since)
        existing = existing.filter(day__gte=since)
        existing_models = existing_models.filter(day__gte=since)
        existing_totals = existing_totals.filter(day__gte=since)
        model_calls = model_calls.filter(session_id__in=calls.values("session_id"))
    existing.delete()
    existing_models.delete()
    existing_totals.delete()
    people_rollups.rebuild(
        finished,
        calls,
        since,
        batch_size,
        lambda qs, extra: _grouped(qs, with_session_fields=True, extra=extra),
        _numbers,
        _day(),
    )
    rows = [
        DailyRollup(
            day=row["day"],
            enterprise_id=row["enterprise"],
            workflow_name=row["workflow"],
            model=row["model"],
            agent_name=row["agent_name"],
            provider=row["provider"],
            **_numbers(row),
        )
        for row in _grouped(calls, with_session_fields=True)
    ]
    DailyRollup.objects.bulk_create(rows, batch_size=batch_size)
    _rebuild_model_rollups(model_calls, since, batch_size)
    finished.update(summarized_at=dt.datetime.now(dt.UTC))
    return len(rows)


def _rebuild_model_rollups(model_calls: Any, since: dt.date | None, batch_size: int) -> None:
    """``ModelDayRollup`` and ``ModelDayTotalRollup`` rows from ``model_calls`` (every call of the
    sessions concerned, for their first day with each model); the old rows are deleted already."""
    model_days = ModelDays(since)
    columns = ("session_id", "session__enterprise_id", "session__workflow_name", "model", "provider")
    for values in (
        model_calls.annotate(_day=_day())
        .order_by()
        .values_list(*columns, "_day", "latency_ms")
        .iterator(chunk_size=10_000)
    ):
        model_days.add(*values)
    model_rows = model_days.rows()
    ModelDayRollup.objects.bulk_create(
        (
            ModelDayRollup(
                **dict(zip(MODEL_KEY, key, strict=True)),
                session_count=sessions,
                latency_count=sum(buckets),
                latency_buckets=buckets,
            )
            for key, (sessions, buckets) in model_rows.items()
        ),
        batch_size=batch_size,
    )
    ModelDayTotalRollup.objects.bulk_create(
        (
            ModelDayTotalRollup(
                **dict(zip(MODEL_TOTAL_KEY, key, strict=True)),
                session_count=sessions,
                latency_count=sum(buckets),
                latency_buckets=buckets,
            )
            for key, (sessions, buckets) in model_totals(model_rows).items()
        ),
        batch_size=batch_size,
    )
