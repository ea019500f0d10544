"""What the live dashboard shows, read from the live counters (:mod:`ag2_logging.live.counters`:
the database or Redis), the running sessions' rows and the budgets' ledger: O(running sessions +
budgets + scopes seen today) rows, never a scan of call rows. Sync ORM: call it off the event loop.

:func:`snapshot` returns a JSON-safe dict (money as decimal strings in USD, with a ``*_text``
for the screen; times ISO 8601 UTC)::

    at              when it was read
    running         [{session_id, chat_id, enterprise_id, workflow_name, started_at,
                      elapsed_seconds, call_count, error_count, total_tokens, total_cost,
                      total_cost_text, host, url}], newest first, at most RUNNING_LIMIT
    running_count   how many sessions are running (all of them, not only those listed)
    today, month    {key, calls, cost, cost_text}: every session's calls and cost this day /
                    month of BUDGET_TIME_ZONE
    budgets         [{id, label, scope, period, action, limit, limit_text, spent, spent_text,
                      percent, today, today_text, month, month_text, url}] (active budgets)
    per_minute      60 x {minute, calls, errors}, oldest first, the last being this minute
    latest_calls    [{id, started_at, ended_at, session_id, enterprise_id, workflow_name,
                      agent_name, model, total_tokens, cost, cost_text, latency_ms, status,
                      ingested, url}], newest first, at most LATEST_LIMIT: the live counters'
                    calls (handed over while their session runs; ``ingested`` False and ``url``
                    empty until their row exists) and the newest ``LLMCall`` rows
    counters        "database" or "redis": where the live counters are kept
    counters_error  present only when the live counters could not be read (their figures are
                    then zeros): the error's class name
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.urls import NoReverseMatch, reverse

from ag2_logging.budgets import enforce, periods
from ag2_logging.budgets.figures import figures
from ag2_logging.conf import conf
from ag2_logging.live import counters
from ag2_logging.live.counters import minute_key
from ag2_logging.models import Budget, LLMCall, Session
from ag2_logging.templatetags.ag2_reports import format_money

#: Running sessions listed at most (the count says how many there are).
RUNNING_LIMIT = 100
#: Latest calls listed.
LATEST_LIMIT = 10
MINUTES_SHOWN = 60
logger = logging.getLogger("ag2_logging.live")


def _url(name: str, *args: Any) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _money(value: Decimal | None) -> tuple[str | None, str]:
    if value is None:
        return None, "unknown"
    return str(value), format_money(value)


def running_sessions(at: datetime) -> tuple[list[dict[str, Any]], int]:
    """The running sessions' rows as the page lists them, with the totals the rows hold."""
    rows = Session.objects.filter(status=Session.Status.RUNNING)
    found = []
    for s in rows.order_by("-started_at")[:RUNNING_LIMIT]:
        cost, cost_text = _money(s.total_cost)
        found.append(
            {
                "session_id": str(s.pk),
                "chat_id": s.chat_id,
                "enterprise_id": s.enterprise_id,
                "workflow_name": s.workflow_name,
                "started_at": s.started_at.isoformat(),
                "elapsed_seconds": max(0, int((at - s.started_at).total_seconds())),
                "call_count": s.call_count,
                "error_count": s.error_count,
                "total_tokens": s.total_tokens,
                "total_cost": cost,
                "total_cost_text": cost_text,
                "host": s.host,
                "url": _url("admin:ag2_logging_session_change", s.pk),
            }
        )
    count = len(found) if len(found) < RUNNING_LIMIT else rows.count()
    return found, count


def _minutes(at: datetime) -> list[str]:
    """The last ``MINUTES_SHOWN`` UTC minutes, oldest first, the last being ``at``'s."""
    return [minute_key(at - timedelta(minutes=n)) for n in range(MINUTES_SHOWN - 1, -1, -1)]


def per_minute(at: datetime, figures: counters.Figures) -> list[dict[str, Any]]:
    return [
        {"minute": m, "calls": c[0], "errors": c[1]}
        for m in _minutes(at)
        for c in [figures.minutes.get(m, (0, 0))]
    ]


def _overlay(running: list[dict[str, Any]], live: dict[str, dict[str, Any]] | None) -> None:
    """The live totals (Redis) over the rows' (which get them only when the session ends)."""
    for row in running:
        totals = (live or {}).get(row["session_id"])
        if not totals:
            continue
        for name in ("call_count", "error_count", "total_tokens"):
            if name in totals:
                row[name] = int(totals[name])
        if totals.get("total_cost") is not None:
            row["total_cost"], row["total_cost_text"] = _money(Decimal(str(totals["total_cost"])))


def _total(key: str, rows: Iterable[tuple[str, str, int, Decimal]]) -> dict[str, Any]:
    calls, cost = 0, Decimal(0)
    for _e, _w, n, spent in rows:
        calls, cost = calls + n, cost + spent
    return {"key": key, "calls": calls, "cost": str(cost), "cost_text": format_money(cost)}


def _scope_cost(budget: Budget, rows: list[tuple[str, str, int, Decimal]]) -> Decimal:
    """The cost of ``budget``'s scope in ``rows``; for a budget that counts *each* enterprise or
    workflow separately, the highest of them (the one nearest its limit)."""
    per: dict[tuple[str, str], Decimal] = {}
    for enterprise, workflow, _n, spent in rows:
        by_enterprise = budget.scope in ("enterprise", "enterprise_workflow")
        by_workflow = budget.scope in ("workflow", "enterprise_workflow")
        if (by_enterprise and budget.enterprise_id and enterprise != budget.enterprise_id) or (
            by_workflow and budget.workflow_name and workflow != budget.workflow_name
        ):
            continue
        group = (enterprise if by_enterprise else "", workflow if by_workflow else "")
        per[group] = per.get(group, Decimal(0)) + spent
    return max(per.values(), default=Decimal(0))


def budget_rows(
    at: datetime,
    day_rows: list[tuple[str, str, int, Decimal]],
    month_rows: list[tuple[str, str, int, Decimal]],
) -> list[dict[str, Any]]:
    found = []
    for budget in Budget.objects.filter(active=True):
        try:
            fig = figures(budget, at)
        except Exception:  # a ledger that cannot be read (Redis down): the rest still shows
            fig = None
        spent = None if fig is None or fig.spent is None else fig.spent + (fig.reserved or 0)
        today, month = _scope_cost(budget, day_rows), _scope_cost(budget, month_rows)
        percent = None
        if budget.limit:
            base = spent if spent is not None else (today if budget.period == "day" else None)
            percent = None if base is None else float(base * 100 / budget.limit)
        found.append(
            {
                "id": budget.pk,
                "label": str(budget),
                "scope": budget.get_scope_display(),
                "period": budget.get_period_display(),
                "action": budget.action,
                "limit": str(budget.limit),
                "limit_text": format_money(budget.limit),
                "spent": None if spent is None else str(spent),
                "spent_text": "—" if spent is None else format_money(spent),
                "percent": None if percent is None else round(percent, 1),
                "today": str(today),
                "today_text": format_money(today),
                "month": str(month),
                "month_text": format_money(month),
                "url": _url("admin:ag2_logging_budget_change", budget.pk),
            }
        )
    return found


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _call_row(call: dict[str, Any], ingested: bool) -> dict[str, Any]:
    cost = call.get("cost")
    value = Decimal(str(cost)) if cost is not None else None
    cost_text = _money(value)[1]
    latency = call.get("latency_ms")
    return {
        "id": str(call.get("id") or ""),
        "started_at": call.get("started_at"),
        "ended_at": call.get("ended_at"),
        "session_id": str(call.get("session_id") or ""),
        "enterprise_id": call.get("enterprise_id") or "",
        "workflow_name": call.get("workflow_name") or "",
        "agent_name": call.get("agent_name") or "",
        "model": call.get("model") or "",
        "total_tokens": int(call.get("total_tokens") or 0),
        "cost": None if value is None else str(value),
        "cost_text": cost_text,
        "latency_ms": None if latency is None else round(float(latency), 1),
        "status": call.get("status") or "",
        "ingested": ingested,
        "url": _url("admin:ag2_logging_llmcall_change", call.get("id")) if ingested else "",
    }


def latest_calls(live: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest calls: ``live`` (the live counters' lines: the calls of running sessions too)
    and the newest ``LLMCall`` rows (an index read of ``LATEST_LIMIT`` rows), one line per call."""
    rows = LLMCall.objects.select_related("session").order_by("-started_at")[:LATEST_LIMIT]
    found: dict[str, dict[str, Any]] = {}
    for call in rows:
        found[str(call.pk)] = _call_row(
            {
                "id": call.pk,
                "started_at": call.started_at.isoformat() if call.started_at else None,
                "ended_at": call.ended_at.isoformat() if call.ended_at else None,
                "session_id": call.session_id,
                "enterprise_id": call.session.enterprise_id if call.session else "",
                "workflow_name": call.session.workflow_name if call.session else "",
                "agent_name": call.agent_name,
                "model": call.model,
                "total_tokens": call.total_tokens,
                "cost": call.cost,
                "latency_ms": call.latency_ms,
                "status": call.status,
            },
            ingested=True,
        )
    for line in live:
        key = str(line.get("id") or "")
        if key and key not in found:
            found[key] = _call_row(line, ingested=False)

    def when(row: dict[str, Any]) -> datetime:
        return _time(row["started_at"]) or _time(row["ended_at"]) or datetime.min.replace(tzinfo=UTC)

    return sorted(found.values(), key=when, reverse=True)[:LATEST_LIMIT]


def snapshot(at: datetime | None = None) -> dict[str, Any]:
    """The dashboard's figures at ``at`` (default: now); see the module's docstring."""
    at = at or enforce.now().astimezone(UTC)
    zone = conf.resolved.budget_time_zone
    day, month = periods.period_of("day", at, zone).key, periods.period_of("month", at, zone).key
    running, count = running_sessions(at)
    error = ""
    try:
        figures = counters.read(_minutes(at), day, month, [row["session_id"] for row in running])
    except Exception as exc:  # Redis down: the rows and the budgets still show
        logger.warning("ag2_logging: could not read the live counters", exc_info=True)
        figures, error = counters.Figures(minutes={}, day=[], month=[], calls=[]), type(exc).__name__
    _overlay(running, figures.running)
    found = {
        "at": at.isoformat(),
        "running": running,
        "running_count": count,
        "today": _total(day, figures.day),
        "month": _total(month, figures.month),
        "budgets": budget_rows(at, figures.day, figures.month),
        "per_minute": per_minute(at, figures),
        "latest_calls": latest_calls(figures.calls),
        "live_seconds": conf.resolved.live_seconds,
        "counters": counters.store().name,
    }
    if error:
        found["counters_error"] = error
    return found
