"""The list filters of the admin: date ranges, the rollup-backed choices (enterprise, workflow,
model, provider, agent), price, pipeline, AG2's own cost and error filters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import CharField, F, Q, QuerySet, Value
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ag2_logging import reports
from ag2_logging.models import Session


class DateRangeFilter(admin.FieldListFilter):
    """From/to dates (UTC days, ``to`` exclusive, as ``field__gte`` / ``field__lt``) with presets.

    Accepts ``YYYY-MM-DD`` and full ISO datetimes, so report pages can link to the calls behind a
    figure. Needs no query, unlike ``date_hierarchy`` (which reads every distinct date).
    """

    template = "admin/ag2_logging/filters/date_range.html"

    def __init__(
        self, field: Any, request: HttpRequest, params: Any, model: Any, model_admin: Any, field_path: str
    ):
        self.lookup_gte = f"{field_path}__gte"
        self.lookup_lt = f"{field_path}__lt"
        super().__init__(field, request, params, model, model_admin, field_path)

    def expected_parameters(self) -> list[str | None]:
        return [self.lookup_gte, self.lookup_lt]

    def _raw(self, name: str) -> str:
        value = self.used_parameters.get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        return str(value or "")

    def _bound(self, name: str) -> Any:
        raw = self._raw(name)
        if not raw:
            return None
        is_datetime = (
            not isinstance(self.field, type(None)) and self.field.get_internal_type() == "DateTimeField"
        )
        try:
            if len(raw) == 10:
                day = dt.date.fromisoformat(raw)
                return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC) if is_datetime else day
            moment = dt.datetime.fromisoformat(raw)
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc
        if not is_datetime:
            return moment.date()
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        lookups = {name: self._bound(name) for name in (self.lookup_gte, self.lookup_lt)}
        lookups = {k: v for k, v in lookups.items() if v is not None}
        return queryset.filter(**lookups) if lookups else queryset

    def choices(self, changelist: Any) -> Iterator[Any]:
        today = dt.datetime.now(dt.UTC).date()
        tomorrow = (today + dt.timedelta(days=1)).isoformat()
        presets = [
            (_("Any date"), None, None),
            (_("Today"), today.isoformat(), tomorrow),
            (_("Past 7 days"), (today - dt.timedelta(days=6)).isoformat(), tomorrow),
            (_("Past 30 days"), (today - dt.timedelta(days=29)).isoformat(), tomorrow),
            (_("This month"), today.replace(day=1).isoformat(), tomorrow),
        ]
        current = (self._raw(self.lookup_gte) or None, self._raw(self.lookup_lt) or None)
        for label, start, end in presets:
            yield {
                "selected": current == (start, end),
                "query_string": changelist.get_query_string(
                    {k: v for k, v in ((self.lookup_gte, start), (self.lookup_lt, end)) if v},
                    [self.lookup_gte, self.lookup_lt] if start is None else [],
                ),
                "display": label,
            }
        hidden = [
            (key, value)
            for key, values in changelist.get_filters_params().items()
            if key not in (self.lookup_gte, self.lookup_lt)
            for value in (values if isinstance(values, list) else [values])
        ]
        for key in ("q", "o"):
            if key in changelist.params:
                hidden.append((key, changelist.params[key]))
        gte, lt = self._raw(self.lookup_gte), self._raw(self.lookup_lt)
        yield {
            "form": True,
            "hidden": hidden,
            "lookup_gte": self.lookup_gte,
            "lookup_lt": self.lookup_lt,
            "value_gte": gte[:10],
            "value_lt": lt[:10],
            "selected": bool(gte or lt) and current not in {(s, e) for _l, s, e in presets},
        }


class RollupValueFilter(admin.SimpleListFilter):
    """Choices read from the small rollup table (not a DISTINCT over millions of calls)."""

    rollup_field = ""
    field_path = ""

    #: Most choices shown; a longer list is no use in a sidebar (the reports list them all).
    max_choices = 200
    #: Add the recent sessions that have no rollup row (:func:`rollup_values`).
    with_sessions = False

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = rollup_values(request, sessions=self.with_sessions)[self.rollup_field]
        choices = [(v, v) for v in values[: self.max_choices]]
        current = self.value()
        if current and current not in {v for v, _l in choices}:
            choices.append((current, current))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field_path: value}) if value else queryset


ROLLUP_FILTER_FIELDS = ("enterprise_id", "workflow_name", "model", "provider", "agent_name")


#: How far back the session lists' enterprise and workflow choices look for sessions that have no
#: rollup rows (see :func:`rollup_values`).
UNROLLED_SESSION_DAYS = 90

#: Sessions that may have no rollup row: stopped before their first call (blocked by a budget,
#: failed, cancelled, interrupted), or still running. Few, and read through the
#: (status, started_at) index; completed sessions are left out (there are millions).
UNROLLED_STATUSES = (
    Session.Status.BLOCKED,
    Session.Status.FAILED,
    Session.Status.CANCELLED,
    Session.Status.INTERRUPTED,
)


def _unrolled_sessions() -> QuerySet[Any]:
    """The enterprise and workflow of the recent sessions that may have no rollup row (no calls,
    or still running), in the rollup query's five columns, for a ``UNION`` with it."""
    since = timezone.now() - dt.timedelta(days=UNROLLED_SESSION_DAYS)
    blank = Value("", output_field=CharField())
    return (
        Session.objects.filter(
            Q(status__in=UNROLLED_STATUSES, call_count=0) | Q(status=Session.Status.RUNNING),
            started_at__gte=since,
        )
        .values_list("enterprise_id", "workflow_name", blank, blank, blank)
        .order_by()
    )


def rollup_values(request: HttpRequest, *, sessions: bool = False) -> dict[str, list[str]]:
    """The distinct values of each rollup key field, from one query per request. With
    ``sessions`` (the session list), the enterprises and workflows of recent sessions with no
    rollup row are added in the same query: a session blocked before its first call has none."""
    key = "_ag2_session_values" if sessions else "_ag2_rollup_values"
    cached: dict[str, list[str]] | None = getattr(request, key, None)
    if cached is None:
        found: dict[str, set[str]] = {name: set() for name in ROLLUP_FILTER_FIELDS}
        rows: QuerySet[Any] = reports.rollups().values_list(*ROLLUP_FILTER_FIELDS).distinct().order_by()
        if sessions:
            # UNION: still distinct, still one query. No ordering on the union (Django 6.1 applies
            # the model's default ordering to a combined query otherwise, which names no column of it).
            rows = rows.union(_unrolled_sessions()).order_by()
        for row in rows:
            for name, value in zip(ROLLUP_FILTER_FIELDS, row, strict=True):
                if value:
                    found[name].add(value)
        cached = {name: sorted(values) for name, values in found.items()}
        setattr(request, key, cached)
    return cached


class EnterpriseFilter(RollupValueFilter):
    title = _("enterprise")
    parameter_name = "enterprise"
    rollup_field = "enterprise_id"
    field_path = "session__enterprise_id"


class WorkflowFilter(RollupValueFilter):
    title = _("workflow")
    parameter_name = "workflow"
    rollup_field = "workflow_name"
    field_path = "session__workflow_name"


class ModelFilter(RollupValueFilter):
    title = _("model")
    parameter_name = "model"
    rollup_field = "model"
    field_path = "model"


class ProviderFilter(RollupValueFilter):
    title = _("provider")
    parameter_name = "provider"
    rollup_field = "provider"
    field_path = "provider"


class AgentFilter(RollupValueFilter):
    title = _("agent")
    parameter_name = "agent_name"
    rollup_field = "agent_name"
    field_path = "agent_name"


class SessionEnterpriseFilter(EnterpriseFilter):
    """``EnterpriseFilter`` on the session list: choices from the rollups, not a ``DISTINCT`` over
    every session on each view, plus, in the same query, those of the last
    ``UNROLLED_SESSION_DAYS`` days' sessions that have no rollup row (blocked, failed, cancelled
    or interrupted before their first call; running)."""

    field_path = "enterprise_id"
    with_sessions = True


class SessionWorkflowFilter(WorkflowFilter):
    """``WorkflowFilter`` on the session list (see :class:`SessionEnterpriseFilter`)."""

    field_path = "workflow_name"
    with_sessions = True


class UnpricedSessionFilter(admin.SimpleListFilter):
    title = _("price")
    parameter_name = "priced"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("all", _("every call priced")), ("unknown", _("some calls without a price"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "all":
            return queryset.filter(unpriced_calls=0)
        if self.value() == "unknown":
            return queryset.filter(unpriced_calls__gt=0)
        return queryset


class PipelineFilter(admin.SimpleListFilter):
    """Sessions whose record has not reached the reports: failed, or pending past the alert time."""

    title = _("in the reports")
    parameter_name = "pipeline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("failed", _("no: the pipeline failed")),
            ("pending", _("not yet (retrying after an error, or pending too long)")),
            ("yes", _("yes")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        from ag2_logging.conf import conf

        if self.value() == "failed":
            return queryset.filter(pipeline_failed_at__isnull=False)
        if self.value() == "pending":
            # The sessions the banner counts, less the failed ones (the choice above).
            pending = Session.objects.missing_from_reports(conf.resolved.pipeline_pending_alert_seconds)
            return queryset.filter(pk__in=pending.filter(pipeline_failed_at__isnull=True).values("pk"))
        if self.value() == "yes":
            return queryset.filter(ingested_at__isnull=False, summarized_at__isnull=False)
        return queryset


class Ag2CostFilter(admin.SimpleListFilter):
    """Where AG2's own cost figure and ours disagree (cached tokens, unknown models, old tables)."""

    title = _("AG2's own cost")
    parameter_name = "ag2_cost"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("differs", _("differs from ours")), ("same", _("same as ours"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # AG2 rounds to floats: differences under a millionth of a cent are the same figure.
        differs = Q(ag2_cost__isnull=False) & (
            Q(cost__isnull=True)
            | Q(ag2_cost__gt=F("cost") + TOLERANCE)
            | Q(ag2_cost__lt=F("cost") - TOLERANCE)
        )
        if self.value() == "differs":
            return queryset.filter(differs)
        if self.value() == "same":
            return queryset.filter(ag2_cost__isnull=False).exclude(differs)
        return queryset


#: Below this, AG2's float and our Decimal are the same amount.
TOLERANCE = Decimal("0.00000001")


class HasErrorFilter(admin.SimpleListFilter):
    title = _("error")
    parameter_name = "failed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("with an error")), ("no", _("without error"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.exclude(error="")
        if self.value() == "no":
            return queryset.filter(error="")
        return queryset


class UserFilter(admin.SimpleListFilter):
    """Sessions of one user (``?user=<primary key>``); the choices are the users in the user
    rollups (one query, plus one for their names)."""

    title = _("user")
    parameter_name = "user"
    #: The path to the session's user from the listed model.
    session_path = ""
    max_choices = 200

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from ag2_logging.models import UserDayRollup

        column = "user_id"  # UserDayRollup's text column (its manager is typed for DailyRollup's)
        rollups: Any = UserDayRollup.objects.exclude(**{column: ""})
        keys = list(rollups.values_list(column, flat=True).distinct().order_by(column)[: self.max_choices])
        current = self.value()
        if current and current not in keys:
            keys.append(current)
        labels = reports.user_labels(keys)
        return sorted(labels.items(), key=lambda item: (item[1].lower(), item[0]))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        pk = reports.ReportFilter(start=dt.date.min, end=dt.date.min, user=str(value)).user_pk()
        if pk is None:
            raise IncorrectLookupParameters(f"not a user id: {value!r}")
        return queryset.filter(**{f"{self.session_path}user_id": pk})


class TagFilter(admin.SimpleListFilter):
    """Sessions with one tag (``?tag=<tag>``); the choices are the tags in the tag rollups."""

    title = _("tag")
    parameter_name = "tag"
    session_path = ""
    max_choices = 200

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from ag2_logging.models import TagDayRollup

        tags = list(
            TagDayRollup.objects.values_list("tag", flat=True).distinct().order_by("tag")[: self.max_choices]
        )
        current = self.value()
        if current and current not in tags:
            tags.append(current)
        return [(tag, tag) for tag in tags]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{f"{self.session_path}tag_rows__tag": value}) if value else queryset


class CallUserFilter(UserFilter):
    """``UserFilter`` for lists of a session's rows (LLM calls, tool calls, agent events)."""

    session_path = "session__"


class CallTagFilter(TagFilter):
    """``TagFilter`` for lists of a session's rows (LLM calls, tool calls, agent events)."""

    session_path = "session__"
