"""Recommendations on sessions with many errors or retries (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Count, ExpressionWrapper, F, FloatField, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from ag2_logging.formats import show
from ag2_logging.models import Session
from ag2_logging.reports.figures import ZERO, Figures
from ag2_logging.reports.filters import ReportFilter
from ag2_logging.reports.queries import rolled_up_calls
from ag2_logging.reports.recommendations.base import LIMIT, Recommendation, money_text

#: A failing session has at least this many failed attempts...
FAILING_MIN_ATTEMPTS = 3
#: ...making at least this share of its calls.
FAILING_MIN_SHARE = 0.2


# ---------------------------------------------------------------------------------------------
# 3. Sessions with many failed attempts


def failing_sessions(flt: ReportFilter) -> list[Recommendation]:
    """Sessions of the period with many errors or retries (one grouped query on the calls).

    Only the calls of sessions whose totals (``Session.error_count`` and ``retry_count``, over
    the whole session) reach both thresholds are grouped: the query reads no call of the other
    sessions, however many the period holds."""
    attempts = F("error_count") + F("retry_count")
    candidates = (
        Session.objects.exclude(status=Session.Status.RUNNING)
        .alias(attempts=attempts)
        .filter(attempts__gte=FAILING_MIN_ATTEMPTS)
        .filter(
            attempts__gte=ExpressionWrapper(F("call_count") * FAILING_MIN_SHARE, output_field=FloatField())
        )
    )
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
