"""The list filters of the admin: date ranges, the rollup-backed choices (enterprise, workflow,
model, provider, agent), price, pipeline, AG2's own cost and error filters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import F, Q, QuerySet
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

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = rollup_values(request)[self.rollup_field]
        choices = [(v, v) for v in values[: self.max_choices]]
        current = self.value()
        if current and current not in {v for v, _l in choices}:
            choices.append((current, current))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field_path: value}) if value else queryset


ROLLUP_FILTER_FIELDS = ("enterprise_id", "workflow_name", "model", "provider", "agent_name")


def rollup_values(request: HttpRequest) -> dict[str, list[str]]:
    """The distinct values of each rollup key field, from one query per request."""
    cached: dict[str, list[str]] | None = getattr(request, "_ag2_rollup_values", None)
    if cached is None:
        found: dict[str, set[str]] = {name: set() for name in ROLLUP_FILTER_FIELDS}
        for row in reports.rollups().values_list(*ROLLUP_FILTER_FIELDS).distinct().order_by():
            for name, value in zip(ROLLUP_FILTER_FIELDS, row, strict=True):
                if value:
                    found[name].add(value)
        cached = {name: sorted(values) for name, values in found.items()}
        request._ag2_rollup_values = cached  # type: ignore[attr-defined]
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
            ("pending", _("not yet (pending too long)")),
            ("yes", _("yes")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        from ag2_logging.conf import conf

        if self.value() == "failed":
            return queryset.filter(pipeline_failed_at__isnull=False)
        if self.value() == "pending":
            pending = Session.objects.not_in_reports(conf.resolved.pipeline_pending_alert_seconds)
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
