"""The report queries: breakdowns, the overview, the model comparison and the session timeline.

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
from collections import defaultdict
from dataclasses import replace
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils.translation import gettext_lazy as _

from ag2_logging.models import AgentEvent, DailyRollup, LLMCall, Session, SessionTag, ToolCall
from ag2_logging.querysets import LATENCY_BUCKETS, DailyRollupQuerySet, day_start
from ag2_logging.reports.figures import (
    DIMENSIONS,
    DISPLAY_BUCKET,
    LATENCY_BOUNDS_MS,
    MODEL_COLUMNS,
    OTHER,
    ZERO,
    Breakdown,
    BreakdownRow,
    DailySeries,
    Dimension,
    Figures,
    LatencyHistogram,
    ModelComparison,
    ModelRow,
    Overview,
    Step,
    Timeline,
    histogram_percentile,
    percentile,
    share,
    sort_rows,
)
from ag2_logging.reports.filters import ReportFilter

#: Steps shown on a session timeline; longer sessions are cut (with a note) and open in the lists.
TIMELINE_LIMIT = 2_000
#: Up to this many calls in the period, latency and sessions per model are counted from the
#: calls; above it (and without ``exact=True``), they come from the model rollups: sessions
#: exactly, p95 from their latency histogram, so the page stays fast at millions of calls.
#: Counting reads every call of the period's dates whatever else filters them (a sequential
#: scan: 0.4 s a query for one enterprise's 49,000 calls among a million), hence 20,000.
EXACT_LIMIT = 20_000


def rollups() -> DailyRollupQuerySet:
    return DailyRollupQuerySet(DailyRollup)


# ---------------------------------------------------------------------------------------------
# Breakdowns


def _sort_key(row: BreakdownRow) -> tuple[Any, ...]:
    f = row.figures
    return (-f.priced_cost, -f.unpriced, -f.calls, row.label)


def known_share(figures: Figures, total: Figures) -> float | None:
    """A group's share of the period's known cost: None (unknown, never 0.0) when the group's
    own cost is unknown. With calls unpriced anywhere the shares are of the known cost only."""
    if figures.cost_state == "unknown":
        return None
    return share(figures.priced_cost, total.priced_cost)


#: The breakdowns with p50 and p95 latency, and the call field each groups the calls by.
LATENCY_FIELDS = {"workflow": "session__workflow_name", "agent": "agent_name"}


def breakdown(
    dimension: str | Dimension, flt: ReportFilter, *, with_sessions: bool = True, with_latency: bool = True
) -> Breakdown:
    """Totals per enterprise, workflow, model, agent or day: one grouped query on the rollups,
    plus one for the sessions per group (on sessions for enterprise, workflow and day; for model
    and agent, see :func:`_call_session_counts`: above ``EXACT_LIMIT`` calls in the period, per
    model from the model rollups and per agent not at all, the rows' ``sessions`` left None); for
    workflow and agent, one more for the p50 and p95 latency of each group's calls (when the
    period has at most ``EXACT_LIMIT`` calls)."""
    dim = DIMENSIONS[dimension] if isinstance(dimension, str) else dimension
    rows: list[BreakdownRow] = []
    total = Figures()
    for group in flt.rollups(dim.fields).grouped(*dim.fields):
        key = {name: group[name] for name in dim.fields}
        figures = Figures.from_rollup(group)
        total.add(figures)
        rows.append(BreakdownRow(key=key, label=dim.key_label(key), figures=figures))
    if dim.slug == "tag":
        # A session with two tags is in two rows: the total is the period's, not the rows' sum.
        total = Figures.from_rollup(flt.rollups().totals())
    if dim.slug == "user":
        _label_users(rows)
    if with_sessions and dim.slug in ("user", "tag"):
        by_people, total.sessions = _people_session_counts(dim, flt)
        for row in rows:
            row.figures.sessions = by_people.get(row.key[dim.fields[0]], 0)
    elif with_sessions and (dim.session_field or dim.slug == "day"):
        by_key = _session_counts(dim, flt)
        total.sessions = sum(by_key.values())
        for row in rows:
            row.figures.sessions = by_key.get(row.key[dim.fields[0]], 0)
    elif with_sessions:
        by_fields, total.sessions = _call_session_counts(dim, flt, total.calls)
        if by_fields is not None:
            for row in rows:
                row.figures.sessions = by_fields.get(tuple(row.key[name] for name in dim.fields), 0)
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
        row.cost_share = known_share(row.figures, total)
        row.token_share = share(row.figures.total_tokens, total.total_tokens)
    latency = with_latency and dim.slug in LATENCY_FIELDS and 0 < total.calls <= EXACT_LIMIT
    if latency:
        _group_latency(dim, flt, rows)
    return Breakdown(dimension=dim, filter=flt, rows=rows, total=total, latency=latency)


def _group_latency(dim: Dimension, flt: ReportFilter, rows: list[BreakdownRow]) -> None:
    """Each row's p50 and p95 latency (ms) from its calls' latencies (one query, sorted by the
    database; the percentiles interpolate as ``percentile_cont`` does)."""
    field = LATENCY_FIELDS[dim.slug]
    values: dict[Any, list[float]] = defaultdict(list)
    latencies = (
        rolled_up_calls(flt)
        .filter(latency_ms__isnull=False)
        .order_by(field, "latency_ms")
        .values_list(field, "latency_ms")
    )
    for key, latency in latencies.iterator(chunk_size=5_000):
        values[key].append(float(latency))
    for row in rows:
        ordered = values.get(row.key[dim.fields[0]], [])
        row.p50_latency_ms = percentile(ordered, 0.5)
        row.p95_latency_ms = percentile(ordered, 0.95)


def _session_counts(dim: Dimension, flt: ReportFilter) -> dict[Any, int]:
    # Finished sessions only, like the rollups.
    sessions = flt.sessions().exclude(status=Session.Status.RUNNING)
    if dim.slug == "day":
        qs = sessions.annotate(day=TruncDate("started_at", tzinfo=dt.UTC)).count_by("day")
        return {row["day"]: row["sessions"] for row in qs}
    return {row[dim.session_field]: row["sessions"] for row in sessions.count_by(dim.session_field)}


def _people_session_counts(dim: Dimension, flt: ReportFilter) -> tuple[dict[str, int], int]:
    """Finished sessions per user (the key as the rollups have it: the primary key as text, ""
    for none) or per tag (one grouped query), and the finished sessions in all (one more)."""
    sessions = flt.sessions().exclude(status=Session.Status.RUNNING)
    counts: dict[str, int] = {}
    if dim.slug == "user":
        for row in sessions.count_by("user_id"):
            key = "" if row["user_id"] is None else str(row["user_id"])
            counts[key] = counts.get(key, 0) + int(row["sessions"])
        return counts, sum(counts.values())
    for tag, n in _tag_session_counts(sessions):
        counts[tag] = n
    return counts, sessions.count()


def _tag_session_counts(sessions: Any) -> Any:
    """(tag, sessions with it) for the tags of ``sessions``, one grouped query: the tag rows of
    those sessions (a subquery on sessions, index-only on PostgreSQL), each (session, tag) once
    by the unique constraint. Not the sessions ``LEFT JOIN``ed to their tags: that hashed every
    session of the period, untagged ones too (100,000 over 90 days at ten million calls). With a
    tag chosen (``sessions`` filtered by it) the other tags of those sessions are counted too,
    under their own keys; the breakdown reads the chosen one's."""
    tagged = SessionTag.objects.filter(session__in=sessions.values("pk"))
    return tagged.values_list("tag").annotate(n=Count("pk")).order_by()


def user_labels(keys: list[str]) -> dict[str, str]:
    """``{user key: label}``: the user's name (``get_username()``, one query for all), "(no
    user)" for "", "#<id> (deleted)" for a user that no longer exists."""
    model = get_user_model()
    pk_field = model._meta.pk
    assert pk_field is not None
    wanted: dict[str, Any] = {}
    for key in keys:
        if key:
            try:
                wanted[key] = pk_field.to_python(key)
            except (ValidationError, ValueError, TypeError):
                continue
    names: dict[str, str] = {}
    if wanted:
        users = model._default_manager.filter(pk__in=list(wanted.values()))
        names = {str(user.pk): user.get_username() for user in users}
    return {
        key: (names.get(key) or str(_("#%(id)s (deleted)") % {"id": key})) if key else str(_("(no user)"))
        for key in keys
    }


def _label_users(rows: list[BreakdownRow]) -> None:
    labels = user_labels([row.key["user_id"] for row in rows])
    for row in rows:
        row.label = labels[row.key["user_id"]]


def user_choices(flt: ReportFilter) -> list[tuple[str, str]]:
    """``(user key, label)`` of the users with calls in the period, by label (two queries at
    most): the choices of the reports' user filter (the chosen one always among them)."""
    from ag2_logging.models import UserDayRollup

    # ``user_id`` is UserDayRollup's text column (its manager is typed for DailyRollup's).
    column = "user_id"
    rollups: Any = UserDayRollup.objects.filter(day__gte=flt.start, day__lte=flt.end)
    keys = set(rollups.exclude(**{column: ""}).values_list(column, flat=True).distinct().order_by()[:500])
    if flt.user:
        keys.add(flt.user)
    labels = user_labels(sorted(keys))
    return sorted(labels.items(), key=lambda item: (item[1].lower(), item[0]))


def _call_session_counts(
    dim: Dimension, flt: ReportFilter, calls_in_period: int, *, with_total: bool = True
) -> tuple[dict[tuple[Any, ...], int] | None, int | None]:
    """Per group of ``dim.fields`` (model and provider, or agent), the finished sessions in scope
    that made a call in the period with it; and those sessions in all (a session that used two
    models counts once in the total; None without ``with_total``).

    Up to ``EXACT_LIMIT`` calls in the period both are counted on the calls (two queries). Above
    it, so that no page reads millions of calls: sessions per model come from the model rollups
    (one query; each session counted on the day of its first call to the model, as in the model
    comparison; not with a user or tag chosen, which those rollups do not have), per agent they
    are not counted (the first item is None), and the total is the finished sessions in scope
    that started in the period (one query on sessions)."""
    if calls_in_period <= EXACT_LIMIT:
        calls = rolled_up_calls(flt)
        grouped = calls.values(*dim.fields).annotate(n=Count("session", distinct=True)).order_by()
        counts = {tuple(row[name] for name in dim.fields): int(row["n"]) for row in grouped}
        if not with_total:
            return counts, None
        return counts, int(calls.aggregate(n=Count("session", distinct=True))["n"] or 0)
    by_model: dict[tuple[Any, ...], int] | None = None
    if dim.slug == "model" and not flt.by_people:
        grouped = flt.model_rollups().values("model", "provider").annotate(n=Sum("session_count")).order_by()
        by_model = {(row["model"], row["provider"]): int(row["n"] or 0) for row in grouped}
    total = flt.sessions().exclude(status=Session.Status.RUNNING).count() if with_total else None
    return by_model, total


# ---------------------------------------------------------------------------------------------
# Cost per day, stacked


def daily_series(flt: ReportFilter, stack: str = "model", *, top: int = 7) -> DailySeries:
    """One grouped query: the rollups per (day, ``stack`` value)."""
    dim = DIMENSIONS[stack]
    per_name: dict[str, Figures] = defaultdict(Figures)
    cells: list[tuple[dt.date, str, Figures]] = []
    for group in flt.rollups(dim.fields).grouped("day", *dim.fields):
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


# ---------------------------------------------------------------------------------------------
# Overview


def overview(flt: ReportFilter, *, stack: str = "model", top: int = 5) -> Overview:
    """Totals, cost per day and the top enterprises, workflows, models and agents, each with its
    sessions (at most 10 queries: four on the rollups, one grouping the period's sessions by
    enterprise, workflow and status, the sessions per model and per agent as
    :func:`_call_session_counts` counts them, the unattributed calls, the daily series)."""
    tops = {
        slug: breakdown(slug, flt, with_sessions=False, with_latency=False)
        for slug in ("enterprise", "workflow", "model", "agent")
    }
    by_enterprise: dict[str, int] = defaultdict(int)
    by_workflow: dict[str, int] = defaultdict(int)
    finished = running = 0
    grouped = flt.sessions().values("enterprise_id", "workflow_name", "status").annotate(n=Count("id"))
    for group in grouped.order_by():
        if group["status"] == Session.Status.RUNNING:
            running += group["n"]
            continue
        finished += group["n"]
        by_enterprise[group["enterprise_id"]] += group["n"]
        by_workflow[group["workflow_name"]] += group["n"]
    for slug, counts in (("enterprise", by_enterprise), ("workflow", by_workflow)):
        part = tops[slug]
        field = part.dimension.fields[0]
        for row in part.rows:
            row.figures.sessions = counts.get(row.key[field], 0)
        part.total.sessions = finished
    for slug in ("model", "agent"):
        part = tops[slug]
        by_fields, _total = _call_session_counts(part.dimension, flt, part.total.calls, with_total=False)
        if by_fields is not None:
            for row in part.rows:
                row.figures.sessions = by_fields.get(tuple(row.key[n] for n in part.dimension.fields), 0)
        part.total.sessions = finished
    total = replace(tops["model"].total, sessions=finished)
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
        running_sessions=running,
    )


# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Model comparison


def percentile_in_sql() -> bool:
    return connection.vendor == "postgresql"


def model_comparison(flt: ReportFilter, *, sort: str = "-cost", exact: bool = False) -> ModelComparison:
    """Per model and provider. Counts, tokens, cost and mean latency come from the rollups (one
    grouped query). Sessions per model, p95 latency and the latency histogram come, when the
    period has more than ``EXACT_LIMIT`` calls and ``exact`` is not asked for, from the model
    rollups (one grouped query: sessions exact, p95 interpolated in the summed histogram);
    otherwise from the calls: one grouped query (plus, without ``percentile_cont``, one for the
    latencies)."""
    in_sql = percentile_in_sql()
    rows, total = _model_rows(flt)
    # The model rollups have no user or tag: with one chosen, the calls answer.
    from_histogram = not exact and total.calls > EXACT_LIMIT and not flt.by_people
    counts: dict[str, list[int]] = {}
    if rows and from_histogram:
        _latency_from_rollups(flt, rows, counts)
    elif rows:
        _latency_from_calls(flt, rows, counts, in_sql=in_sql)
    for row in rows:
        row.cost_share = known_share(row.figures, total)
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


def _model_rows(flt: ReportFilter) -> tuple[list[ModelRow], Figures]:
    """A row per (model, provider) from the rollups (one grouped query), and their total."""
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
    return rows, total


def _latency_from_rollups(flt: ReportFilter, rows: list[ModelRow], counts: dict[str, list[int]]) -> None:
    """Sessions, p95 (interpolated) and the histogram from the model rollups (one grouped query)."""
    by_key = {(r.model, r.provider): r for r in rows}
    for group in flt.model_rollups().by_model():
        buckets = [int(group[f"bucket_{i}"] or 0) for i in range(LATENCY_BUCKETS)]
        if (row := by_key.get((group["model"], group["provider"]))) is not None:
            row.p95_latency_ms = histogram_percentile(buckets, 0.95)
            row.figures.sessions = int(group["session_count"] or 0)
        bucket_counts = counts.setdefault(group["model"], [0] * (len(LATENCY_BOUNDS_MS) + 1))
        for i, n in enumerate(buckets):
            bucket_counts[DISPLAY_BUCKET[i]] += n


def _latency_from_calls(
    flt: ReportFilter, rows: list[ModelRow], counts: dict[str, list[int]], *, in_sql: bool
) -> None:
    """Sessions, p95 and the histogram from the calls: one grouped query, plus one for the
    latencies when the database has no ``percentile_cont``."""
    by_key = {(r.model, r.provider): r for r in rows}
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


def rolled_up_sessions(flt: ReportFilter) -> Any:
    """The sessions whose calls of the period the rollups hold (``rolled_up_calls``): finished
    ones, of the scope when one is chosen (started before the period's end then)."""
    sessions = Session.objects.exclude(status=Session.Status.RUNNING)
    if flt.enterprise or flt.workflow or flt.by_people:
        sessions = flt._people(sessions.in_scope(flt.enterprise, flt.workflow), "").filter(
            started_at__lt=day_start(flt.end + dt.timedelta(days=1))
        )
    return sessions


def rolled_up_calls(flt: ReportFilter) -> Any:
    """The calls of the period that the rollups hold: those of finished sessions in scope.

    The scope is a subquery on sessions (their enterprise and workflow indexes), so a filtered
    report reads the calls of those sessions rather than every call of the period."""
    sessions = rolled_up_sessions(flt)
    return LLMCall.objects.started_between(flt.start, flt.end).filter(session__in=sessions.values("pk"))


# ---------------------------------------------------------------------------------------------
# Session timeline


def _step_sort_key(step: Step) -> tuple[Any, ...]:
    moment = step.started_at or step.at
    return (moment is None, moment or dt.datetime.min.replace(tzinfo=dt.UTC), step.seq)


def timeline(session: Session, *, limit: int = TIMELINE_LIMIT) -> Timeline:
    """The session's LLM calls, tool calls and agent events in time order (three queries, plus
    one for child sessions), each step with its tokens, cost and latency."""
    calls = _call_steps(session, limit)
    tools = _tool_steps(session, limit)
    events = _event_steps(session, limit)
    steps = sorted([*calls, *tools, *events], key=_step_sort_key)
    truncated = len(steps) > limit
    steps = steps[:limit]
    span_s = _place(steps, session)
    agents = sorted({s.agent for s in steps if s.agent})
    children = list(session.children.order_by("started_at")[:100])
    return Timeline(
        session=session,
        steps=steps,
        truncated=truncated,
        counts={"llm": len(calls), "tool": len(tools), "event": len(events)},
        agents=agents,
        span_s=span_s,
        children=children,
    )


def _call_steps(session: Session, limit: int) -> list[Step]:
    calls = LLMCall.objects.for_session(session.pk).order_by("seq").defer("request", "response")[: limit + 1]
    return [
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
        for call in calls
    ]


def _tool_steps(session: Session, limit: int) -> list[Step]:
    tools = ToolCall.objects.filter(session=session).order_by("seq").defer("arguments")[: limit + 1]
    return [
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
        for tool in tools
    ]


def _event_steps(session: Session, limit: int) -> list[Step]:
    events = AgentEvent.objects.filter(session=session).order_by("seq").defer("data")[: limit + 1]
    return [
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
        for event in events
    ]


def _place(steps: list[Step], session: Session) -> float:
    """Set each step's offset from the session's start; returns the span shown (seconds)."""
    origin = session.started_at
    end = session.ended_at or origin
    for step in steps:
        moment = step.started_at or step.at
        if moment is not None:
            step.offset_s = (moment - origin).total_seconds()
            finish = step.at or moment
            end = max(end, finish)
    return max((end - origin).total_seconds(), 0.001)
