"""Recommendations on sessions with many errors or retries (see the package docstring)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db.models import Count, ExpressionWrapper, F, FloatField, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from ag2_logging.formats import show
from ag2_logging.models import LLMCall
from ag2_logging.querysets import day_start
from ag2_logging.reports.figures import ZERO, Figures
from ag2_logging.reports.filters import ReportFilter
from ag2_logging.reports.queries import rolled_up_calls, rolled_up_sessions
from ag2_logging.reports.recommendations.base import LIMIT, Recommendation, money_text

#: A failing session has at least this many failed attempts...
FAILING_MIN_ATTEMPTS = 3
#: ...making at least this share of its calls.
FAILING_MIN_SHARE = 0.2
#: Up to this many candidate sessions, their calls are read by their ids.
MAX_IDS = 5_000


# ---------------------------------------------------------------------------------------------
# 3. Sessions with many failed attempts


def failing_sessions(flt: ReportFilter) -> list[Recommendation]:
    """Sessions of the period with many errors or retries (one grouped query on the calls).

    Only the calls of sessions whose totals (``Session.error_count`` and ``retry_count``, over
    the whole session) reach both thresholds are grouped: the query reads no call of the other
    sessions, however many the period holds. Those sessions are read first (one query, with the
    fields the recommendation shows), then their calls by their ids, the period as a filter of
    each sum rather than a condition: as one, PostgreSQL ANDed the sessions' index with the
    started_at one over every call of the period (3.3 million in 30 days at ten million calls,
    350 ms) and joined every session for the names. Past ``MAX_IDS`` candidates, a subquery."""
    attempts = F("error_count") + F("retry_count")
    candidates = (
        rolled_up_sessions(flt)
        .alias(attempts=attempts)
        .filter(attempts__gte=FAILING_MIN_ATTEMPTS)
        .filter(
            attempts__gte=ExpressionWrapper(F("call_count") * FAILING_MIN_SHARE, output_field=FloatField())
        )
    )
    fields = ("chat_id", "workflow_name", "enterprise_id")
    named = {
        row[0]: dict(zip(fields, row[1:], strict=True))
        for row in candidates.order_by().values_list("pk", *fields)[: MAX_IDS + 1]
    }
    if len(named) > MAX_IDS:
        return _failing_by_subquery(flt, candidates)
    found = []
    for g in _failing_groups(flt, list(named)):
        if g["attempts"] < FAILING_MIN_SHARE * g["n_calls"]:
            continue
        session = named[g["session_id"]]
        found.append(
            _failing(
                {
                    **g,
                    "session__chat_id": session["chat_id"],
                    "session__workflow_name": session["workflow_name"],
                    "session__enterprise_id": session["enterprise_id"],
                }
            )
        )
        if len(found) == LIMIT:
            break
    return found


def _failing_groups(flt: ReportFilter, session_ids: list[Any]) -> Any:
    """The period's figures of each of ``session_ids`` (by their calls) that reach
    ``FAILING_MIN_ATTEMPTS``, the most attempts first."""
    in_period = Q(
        started_at__gte=day_start(flt.start), started_at__lt=day_start(flt.end + dt.timedelta(days=1))
    )
    errors = in_period & Q(status="error")
    return (
        LLMCall.objects.filter(session_id__in=session_ids)
        .values("session_id")
        .annotate(
            n_calls=Count("id", filter=in_period),
            n_errors=Count("id", filter=errors),
            n_retries=Coalesce(Sum("retries", filter=in_period), 0),
            failed_ms=Coalesce(Sum("latency_ms", filter=errors), Value(0.0), output_field=FloatField()),
            priced_cost=Sum("cost", filter=in_period),
            n_unpriced=Count("id", filter=in_period & Q(cost__isnull=True)),
        )
        .annotate(attempts=Count("id", filter=errors) + Coalesce(Sum("retries", filter=in_period), 0))
        .filter(attempts__gte=FAILING_MIN_ATTEMPTS)
        .order_by("-attempts", "session_id")
    )


def _failing_by_subquery(flt: ReportFilter, candidates: Any) -> list[Recommendation]:
    """``failing_sessions`` with its candidates as a subquery (more than ``MAX_IDS`` of them)."""
    groups = (
        rolled_up_calls(flt)
        .filter(session__in=candidates.values("pk"))
        .values("session_id", "session__chat_id", "session__workflow_name", "session__enterprise_id")
        .annotate(
            n_calls=Count("id"),
            n_errors=Count("id", filter=Q(status="error")),
            n_retries=Coalesce(Sum("retries"), 0),
            failed_ms=Coalesce(
                Sum("latency_ms", filter=Q(status="error")), Value(0.0), output_field=FloatField()
            ),
            priced_cost=Sum("cost"),
            n_unpriced=Count("id", filter=Q(cost__isnull=True)),
        )
        .annotate(attempts=Count("id", filter=Q(status="error")) + Coalesce(Sum("retries"), 0))
        .filter(attempts__gte=FAILING_MIN_ATTEMPTS)
        .order_by("-attempts", "session_id")
    )
    found = []
    for g in groups:
        if g["attempts"] < FAILING_MIN_SHARE * g["n_calls"]:
            continue
        found.append(_failing(g))
        if len(found) == LIMIT:
            break
    return found


def _failing(g: Mapping[str, Any]) -> Recommendation:
    f = Figures(calls=g["n_calls"], unpriced=g["n_unpriced"], priced_cost=g["priced_cost"] or ZERO)
    return Recommendation(
        kind="failing_sessions",
        subject=_("session %(chat)s (%(workflow)s)")
        % {"chat": g["session__chat_id"], "workflow": g["session__workflow_name"] or _("(none)")},
        action=_("Look at its errors: a wrong model name, a rate limit or a tool that keeps failing."),
        estimate=None,
        estimate_text=_("%(attempts)s failed attempts, %(seconds)s s waiting on failed calls")
        % {"attempts": g["attempts"], "seconds": show(g["failed_ms"] / 1000)},
        method=_(
            "%(errors)s of its %(calls)s calls ended in an error and the SDK retried "
            "%(retries)s times; the seconds are the failed calls' latency. Listed from "
            "%(min)s failed attempts making at least %(share)s of the calls. Session "
            "cost: %(cost)s."
        )
        % {
            "errors": g["n_errors"],
            "calls": g["n_calls"],
            "retries": g["n_retries"],
            "min": FAILING_MIN_ATTEMPTS,
            "share": f"{FAILING_MIN_SHARE:.0%}",
            "cost": money_text(f.cost),
        },
        data={
            "session_id": g["session_id"],
            "chat_id": g["session__chat_id"],
            "workflow": g["session__workflow_name"],
            "calls": g["n_calls"],
            "errors": g["n_errors"],
            "retries": g["n_retries"],
            "attempts": g["attempts"],
            "failed_seconds": g["failed_ms"] / 1000,
            "cost": f.cost,
        },
    )
