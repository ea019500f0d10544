"""Daily rollups: totals per (day, enterprise, workflow, model, agent, provider).

``summarize_session`` adds one finished session's calls to the rollups, exactly once (the
``Session.summarized_at`` mark is set in the same transaction, under a row lock), with ``F()``
updates so concurrent sessions never lose each other's counts. ``rebuild_rollups`` recomputes
everything from the raw rows and yields the same table. Days are UTC days of the call's end.
Unattributed calls (no session) have no enterprise or workflow and are not rolled up.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce, TruncDate

from ag2_logging.models import DailyRollup, LLMCall, Session
from ag2_logging.querysets import ROLLUP_SUMS

KEY = ("day", "enterprise_id", "workflow_name", "model", "agent_name", "provider")
SUMS = ROLLUP_SUMS


def _grouped(calls: Any, *, with_session_fields: bool) -> Any:
    day = TruncDate(Coalesce("ended_at", "started_at"), tzinfo=dt.UTC)
    values = ["day", "model", "agent_name", "provider"]
    annotations: dict[str, Any] = {"day": day}
    if with_session_fields:
        annotations["enterprise"] = F("session__enterprise_id")
        annotations["workflow"] = F("session__workflow_name")
        values += ["enterprise", "workflow"]
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


def add_to_rollups(key: dict[str, Any], numbers: dict[str, Any]) -> None:
    """Add ``numbers`` to the rollup row of ``key`` (created when missing), race-free."""
    rollup, created = DailyRollup.objects.get_or_create(**key, defaults=numbers)
    if not created:
        DailyRollup.objects.filter(pk=rollup.pk).update(**{name: F(name) + numbers[name] for name in SUMS})


def summarize_session(session_id: uuid.UUID | str) -> bool:
    """Add a finished session to the rollups once; False when already done or not finished."""
    with transaction.atomic():
        session = Session.objects.select_for_update().filter(pk=session_id).first()
        if session is None or session.summarized_at is not None or session.status == Session.Status.RUNNING:
            return False
        for row in _grouped(LLMCall.objects.filter(session=session), with_session_fields=False):
            key = {
                "day": row["day"],
                "enterprise_id": session.enterprise_id,
                "workflow_name": session.workflow_name,
                "model": row["model"],
                "agent_name": row["agent_name"],
                "provider": row["provider"],
            }
            add_to_rollups(key, _numbers(row))
        session.summarized_at = dt.datetime.now(dt.UTC)
        session.save(update_fields=["summarized_at"])
    return True


def rebuild_rollups(*, batch_size: int = 1_000, since: dt.date | None = None) -> int:
    """Recompute the rollups from the raw rows of finished sessions; returns the rows written.

    With ``RETENTION_DAYS`` set, days before the raw-row cutoff are kept as they are (their rows
    may be pruned already: the rollups are all that is left of them) and only later days are
    recomputed; ``since`` sets that first day explicitly.
    """
    from ag2_logging.conf import conf

    if since is None and conf.resolved.retention_days:
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=conf.resolved.retention_days)).date()
    finished = Session.objects.exclude(status=Session.Status.RUNNING)
    calls = LLMCall.objects.filter(session__in=finished)
    existing = DailyRollup.objects.all()
    if since is not None:
        calls = calls.annotate(_day=TruncDate(Coalesce("ended_at", "started_at"), tzinfo=dt.UTC)).filter(
            _day__gte=since
        )
        existing = existing.filter(day__gte=since)
    with transaction.atomic():
        existing.delete()
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
        finished.update(summarized_at=dt.datetime.now(dt.UTC))
    return len(rows)


def rollup_totals() -> dict[str, Any]:
    """Grand totals over all rollups (for tests and the reports' headline figures)."""
    return DailyRollup.objects.aggregate(**{name: Sum(name) for name in SUMS})
