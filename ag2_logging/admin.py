"""Admins: read-only lists of what was recorded, the editable price overrides, and the report
pages (``admin_views``), linked from the app index."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ag2_logging import reports
from ag2_logging.admin_views import ExportViewMixin, ReportViewsMixin, TimelineViewMixin
from ag2_logging.models import AgentEvent, DailyRollup, LLMCall, ModelPrice, Session, ToolCall
from ag2_logging.templatetags.ag2_reports import call_cost, format_money, ms

EXPORT_CHANGE_LIST = "admin/ag2_logging/export_change_list.html"


def incomplete_banner(session: Session) -> str:
    """What the writing process counted beside what the record holds (``Session.incomplete``)."""
    recorded = session.recorded_totals if isinstance(session.recorded_totals, dict) else {}
    counted = ""
    if "call_count" in recorded:
        cost = recorded.get("total_cost")
        counted = _("the process counted %(calls)s calls / %(cost)s, ") % {
            "calls": recorded["call_count"],
            "cost": format_money(Decimal(str(cost))) if cost is not None else "—",
        }
    text = _("incomplete: %(counted)sthe record holds %(calls)s calls / %(cost)s") % {
        "counted": counted,
        "calls": session.call_count,
        "cost": format_money(session.total_cost),
    }
    if session.dropped_events:
        text += "; " + _("%(n)s event(s) were lost (neither the disk nor the database took them)") % {
            "n": session.dropped_events
        }
    return str(text)


# ---------------------------------------------------------------------------------------------
# Filters


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


def pipeline_banner(request: HttpRequest) -> str | None:
    """The sentence the session list shows when finished sessions are missing from the reports."""
    from ag2_logging.conf import conf

    threshold = conf.resolved.pipeline_pending_alert_seconds
    stuck = Session.objects.not_in_reports(threshold) | Session.objects.pipeline_failed()
    count = stuck.count()
    if not count:
        return None
    return str(
        _(
            "%(n)s finished session(s) are not in the cost reports (their pipeline failed, or is pending "
            "for more than %(s)s s). Filter by \u201cin the reports\u201d to see why; fix the cause, then run "
            "manage.py ag2_logging_recover (with --local on the host that wrote them). "
            "manage.py ag2_logging_doctor checks the whole pipeline."
        )
        % {"n": count, "s": f"{threshold:g}"}
    )


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


# ---------------------------------------------------------------------------------------------
# Shared pieces


class ReadOnlyAdmin(ExportViewMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Log rows are evidence: nobody adds, edits or deletes them in the admin."""

    show_full_result_count = False
    #: Facet counts are one COUNT per filter choice over the whole table: never on log rows.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    change_list_template = EXPORT_CHANGE_LIST

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return self.get_export_urls() + super().get_urls()


def session_link(session: Session | None, text: str | None = None) -> SafeString | str:
    if session is None:
        return format_html('<span class="ag2-quiet">{}</span>', _("unattributed"))
    url = reverse("admin:ag2_logging_session_change", args=[session.pk])
    return format_html('<a href="{}">{}</a>', url, text or session.chat_id)


def pretty_json(value: Any) -> SafeString:
    if value is None:
        return format_html('<span class="ag2-quiet">{}</span>', "—")
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    return format_html('<pre class="ag2-json">{}</pre>', text)


# ---------------------------------------------------------------------------------------------
# Sessions


@admin.register(Session)
class SessionAdmin(TimelineViewMixin, ReadOnlyAdmin):
    # What a cost review reads first comes first: the columns past the window's right edge on a
    # laptop (with the nav sidebar and the filters) are the ones least needed.
    list_display = (
        "started_at",
        "enterprise_id",
        "workflow_name",
        "status",
        "cost_display",
        "calls_link",
        "total_tokens",
        "duration",
        "chat_id",
        "timeline_link",
    )
    list_display_links = ("started_at", "chat_id")
    list_filter = (
        "status",
        ("started_at", DateRangeFilter),
        UnpricedSessionFilter,
        PipelineFilter,
        "incomplete",
        "enterprise_id",
        "workflow_name",
        "source",
    )
    search_fields = ("=id", "chat_id")
    search_help_text = _("A chat id (or part of one), or a whole session id.")
    list_select_related = ()
    csv_columns = (
        ("id", "id"),
        ("chat_id", "chat_id"),
        ("enterprise_id", "enterprise_id"),
        ("workflow_name", "workflow_name"),
        ("status", "status"),
        ("started_at", "started_at"),
        ("ended_at", "ended_at"),
        ("parent_id", "parent_id"),
        ("call_count", "call_count"),
        ("error_count", "error_count"),
        ("retry_count", "retry_count"),
        ("unpriced_calls", "unpriced_calls"),
        ("prompt_tokens", "prompt_tokens"),
        ("cached_tokens", "cached_tokens"),
        ("completion_tokens", "completion_tokens"),
        ("reasoning_tokens", "reasoning_tokens"),
        ("total_tokens", "total_tokens"),
        ("total_cost", "total_cost"),
        ("error", "error"),
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "links",
                    "chat_id",
                    "workflow_name",
                    "enterprise_id",
                    "parent",
                    "status",
                    "error",
                    "completeness",
                )
            },
        ),
        (_("Time"), {"fields": ("started_at", "ended_at", "duration")}),
        (
            _("Totals"),
            {
                "fields": (
                    "call_count",
                    "error_count",
                    "retry_count",
                    "unpriced_calls",
                    "prompt_tokens",
                    "cached_tokens",
                    "completion_tokens",
                    "reasoning_tokens",
                    "total_tokens",
                    "cost_display",
                )
            },
        ),
        (
            _("Recording"),
            {
                "classes": ("collapse",),
                "fields": (
                    "id",
                    "source",
                    "host",
                    "pid",
                    "journal_path",
                    "sanitized_at",
                    "journal_published_at",
                    "journal_storage_name",
                    "ingested_at",
                    "summarized_at",
                    "pipeline_error",
                    "pipeline_attempts",
                    "pipeline_failed_at",
                    "bad_journal_lines",
                    "dropped_events",
                    "redactions",
                    "last_heartbeat_at",
                ),
            },
        ),
    )
    readonly_fields = ("links", "duration", "cost_display", "completeness")

    def get_urls(self) -> list[URLPattern]:
        return self.get_timeline_urls() + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        session = self.get_object(request, object_id)
        if session is not None and session.incomplete:
            # A banner, not a field: both figures are kept and neither may go unnoticed.
            messages.warning(request, incomplete_banner(session))
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if request.method == "GET":
            banner = pipeline_banner(request)
            if banner:
                self.message_user(request, banner, level=messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("cost"), ordering="total_cost")
    def cost_display(self, obj: Session) -> SafeString | str:
        if obj.call_count and obj.unpriced_calls >= obj.call_count:
            return call_cost(None)
        text = format_money(obj.total_cost)
        if obj.unpriced_calls:
            return format_html(
                '<span class="ag2-partial" title="{}">≥ {}</span>',
                _("%(n)s call(s) without a price are not included") % {"n": obj.unpriced_calls},
                text,
            )
        return text

    @admin.display(description=_("record"))
    def completeness(self, obj: Session) -> SafeString:
        problems = []
        if obj.dropped_events:
            problems.append(
                _("%(n)s event(s) could not be written to the journal (disk full, ...)")
                % {"n": obj.dropped_events}
            )
        if obj.bad_journal_lines:
            problems.append(_("%(n)s journal line(s) could not be read") % {"n": obj.bad_journal_lines})
        if obj.pipeline_failed_at is not None:
            problems.append(_("not in the reports: %(why)s") % {"why": obj.pipeline_error})
        elif obj.status != Session.Status.RUNNING and obj.ingested_at is None:
            problems.append(
                _("not in the reports yet") + (f": {obj.pipeline_error}" if obj.pipeline_error else "")
            )
        if not problems:
            return format_html("{}", _("complete"))
        return format_html(
            '<strong class="ag2-unknown">{}</strong>: {}',
            _("incomplete"),
            "; ".join(str(p) for p in problems),
        )

    @admin.display(description=_("calls"), ordering="call_count")
    def calls_link(self, obj: Session) -> SafeString:
        url = reverse("admin:ag2_logging_llmcall_changelist") + f"?session__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.call_count)

    @admin.display(description=_("duration"))
    def duration(self, obj: Session) -> str:
        if obj.ended_at is None:
            return "—"
        return ms((obj.ended_at - obj.started_at).total_seconds() * 1000)

    @admin.display(description=_("timeline"))
    def timeline_link(self, obj: Session) -> SafeString:
        url = reverse("admin:ag2_logging_session_timeline", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("timeline"))

    @admin.display(description=_("see"))
    def links(self, obj: Session) -> SafeString:
        q = f"?session__id__exact={obj.pk}"
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a> · <a href="{}">{}</a> · <a href="{}">{}</a>',
            reverse("admin:ag2_logging_session_timeline", args=[obj.pk]),
            _("timeline"),
            reverse("admin:ag2_logging_llmcall_changelist") + q,
            _("LLM calls (%(n)s)") % {"n": obj.call_count},
            reverse("admin:ag2_logging_toolcall_changelist") + q,
            _("tool calls"),
            reverse("admin:ag2_logging_agentevent_changelist") + q,
            _("agent events"),
        )


# ---------------------------------------------------------------------------------------------
# LLM calls


class SessionRowAdmin(ReadOnlyAdmin):
    """Columns shared by the rows that belong to a session (calls, events, tool calls)."""

    @admin.display(description=_("session"), ordering="session__chat_id")
    def session_chat(self, obj: Any) -> SafeString | str:
        return session_link(obj.session)

    @admin.display(description=_("duration"), ordering="duration_ms")
    def duration(self, obj: Any) -> str:
        return ms(obj.duration_ms)

    @admin.display(description=_("error"), boolean=True)
    def has_error(self, obj: Any) -> bool:
        return bool(obj.error)


@admin.register(LLMCall)
class LLMCallAdmin(SessionRowAdmin):
    ordering = ("-started_at",)  # newest first
    list_display = (
        "started_at",
        "session_chat",
        "enterprise",
        "agent_name",
        "provider",
        "model",
        "input_tokens",
        "cached",
        "output_tokens",
        "cost_display",
        "latency",
        "status",
    )
    list_filter = (
        ("started_at", DateRangeFilter),
        EnterpriseFilter,
        WorkflowFilter,
        ModelFilter,
        ProviderFilter,
        AgentFilter,
        "status",
        "price_status",
        Ag2CostFilter,
        "is_cached",
    )
    search_fields = ("=session__id", "session__chat_id", "=response_id")
    search_help_text = _("A chat id (or part of one), a whole session id, or a response id.")
    list_select_related = ("session",)
    csv_columns = (
        ("id", "id"),
        ("session_id", "session_id"),
        ("chat_id", "session__chat_id"),
        ("enterprise_id", "session__enterprise_id"),
        ("workflow_name", "session__workflow_name"),
        ("seq", "seq"),
        ("agent_name", "agent_name"),
        ("provider", "provider"),
        ("model", "model"),
        ("started_at", "started_at"),
        ("ended_at", "ended_at"),
        ("latency_ms", "latency_ms"),
        ("status", "status"),
        ("prompt_tokens", "prompt_tokens"),
        ("cached_tokens", "cached_tokens"),
        ("cache_write_tokens", "cache_write_tokens"),
        ("completion_tokens", "completion_tokens"),
        ("reasoning_tokens", "reasoning_tokens"),
        ("total_tokens", "total_tokens"),
        ("cost", "cost"),
        ("price_status", "price_status"),
        ("ag2_cost", "ag2_cost"),
        ("is_cached", "is_cached"),
        ("retries", "retries"),
        ("error", "error"),
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "session_chat",
                    "seq",
                    "agent_name",
                    "provider",
                    "model",
                    "status",
                    "error",
                    "started_at",
                    "ended_at",
                    "latency",
                )
            },
        ),
        (
            _("Tokens and cost"),
            {
                "fields": (
                    "prompt_tokens",
                    "cached_tokens",
                    "cache_write_tokens",
                    "completion_tokens",
                    "reasoning_tokens",
                    "total_tokens",
                    "cost_display",
                    "price_status",
                    "ag2_cost_display",
                    "is_cached",
                    "retries",
                    "attempt",
                )
            },
        ),
        (_("Request and response (redacted)"), {"fields": ("request_json", "response_json")}),
        (_("Ids"), {"classes": ("collapse",), "fields": ("id", "invocation_id", "response_id")}),
    )
    readonly_fields = (
        "session_chat",
        "latency",
        "cost_display",
        "ag2_cost_display",
        "request_json",
        "response_json",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[LLMCall]:
        qs = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "ag2_logging_llmcall_changelist":
            qs = qs.defer("request", "response")  # bodies can be large; the list never shows them
        return qs

    @admin.display(description=_("enterprise"), ordering="session__enterprise_id")
    def enterprise(self, obj: LLMCall) -> str:
        return obj.session.enterprise_id if obj.session else ""

    @admin.display(description=_("input"), ordering="prompt_tokens")
    def input_tokens(self, obj: LLMCall) -> str:
        return f"{obj.prompt_tokens:,}"

    @admin.display(description=_("cached"), ordering="cached_tokens")
    def cached(self, obj: LLMCall) -> str:
        return f"{obj.cached_tokens:,}"

    @admin.display(description=_("output"), ordering="completion_tokens")
    def output_tokens(self, obj: LLMCall) -> str:
        return f"{obj.completion_tokens:,}"

    @admin.display(description=_("cost"), ordering="cost")
    def cost_display(self, obj: LLMCall) -> SafeString:
        return call_cost(obj.cost)

    @admin.display(description=_("AG2's own cost"), ordering="ag2_cost")
    def ag2_cost_display(self, obj: LLMCall) -> SafeString | str:
        if obj.ag2_cost is None:
            return "—"
        text = format_money(obj.ag2_cost)
        if obj.cost is not None and abs(obj.ag2_cost - obj.cost) <= TOLERANCE:
            return text
        ours = format_money(obj.cost) if obj.cost is not None else _("unknown")
        return format_html(
            '<span class="ag2-partial" title="{}">{} ({})</span>',
            _("AG2 prices from its own table, which ignores cached tokens and says 0 for unknown models."),
            text,
            _("differs from ours: %(ours)s") % {"ours": ours},
        )

    @admin.display(description=_("latency"), ordering="latency_ms")
    def latency(self, obj: LLMCall) -> str:
        return ms(obj.latency_ms)

    @admin.display(description=_("request"))
    def request_json(self, obj: LLMCall) -> SafeString:
        return pretty_json(obj.request)

    @admin.display(description=_("response"))
    def response_json(self, obj: LLMCall) -> SafeString:
        return pretty_json(obj.response)


# ---------------------------------------------------------------------------------------------
# Agent events and tool calls


@admin.register(AgentEvent)
class AgentEventAdmin(SessionRowAdmin):
    ordering = ("-created_at",)  # newest first
    list_display = ("created_at", "session_chat", "agent_name", "name", "duration", "has_error")
    list_filter = (("created_at", DateRangeFilter), "name", HasErrorFilter)
    search_fields = ("=session__id", "session__chat_id", "agent_name")
    search_help_text = _("A chat id (or part of one), a whole session id, or an agent name.")
    list_select_related = ("session",)
    csv_columns = (
        ("id", "id"),
        ("session_id", "session_id"),
        ("chat_id", "session__chat_id"),
        ("seq", "seq"),
        ("created_at", "created_at"),
        ("agent_name", "agent_name"),
        ("name", "name"),
        ("duration_ms", "duration_ms"),
        ("error", "error"),
    )
    fields = (
        "session_chat",
        "seq",
        "created_at",
        "agent_name",
        "name",
        "duration",
        "error",
        "data_json",
        "id",
    )
    readonly_fields = ("session_chat", "duration", "data_json")

    @admin.display(description=_("data"))
    def data_json(self, obj: AgentEvent) -> SafeString:
        return pretty_json(obj.data)


@admin.register(ToolCall)
class ToolCallAdmin(SessionRowAdmin):
    ordering = ("-ended_at",)  # newest first
    list_display = ("ended_at", "session_chat", "agent_name", "name", "duration", "has_error")
    list_filter = (("ended_at", DateRangeFilter), "name", HasErrorFilter)
    search_fields = ("=session__id", "session__chat_id", "name")
    search_help_text = _("A chat id (or part of one), a whole session id, or a tool name.")
    list_select_related = ("session",)
    csv_columns = (
        ("id", "id"),
        ("session_id", "session_id"),
        ("chat_id", "session__chat_id"),
        ("seq", "seq"),
        ("started_at", "started_at"),
        ("ended_at", "ended_at"),
        ("agent_name", "agent_name"),
        ("name", "name"),
        ("duration_ms", "duration_ms"),
        ("result_summary", "result_summary"),
        ("error", "error"),
    )
    fields = (
        "session_chat",
        "seq",
        "started_at",
        "ended_at",
        "agent_name",
        "name",
        "duration",
        "arguments_json",
        "result_summary",
        "error",
        "id",
    )
    readonly_fields = ("session_chat", "duration", "arguments_json")

    @admin.display(description=_("arguments"))
    def arguments_json(self, obj: ToolCall) -> SafeString:
        return pretty_json(obj.arguments)


# ---------------------------------------------------------------------------------------------
# Daily rollups (and the report pages)


@admin.register(DailyRollup)
class DailyRollupAdmin(ReportViewsMixin, ReadOnlyAdmin):
    """The rollup rows, read-only; the report pages hang off this admin (they read rollups)."""

    list_display = (
        "day",
        "enterprise_id",
        "workflow_name",
        "model",
        "agent_name",
        "provider",
        "call_count",
        "total_tokens",
        "cost_display",
    )
    list_filter = (("day", DateRangeFilter), "provider")
    search_fields = ("=enterprise_id", "=workflow_name", "=model", "=agent_name")
    search_help_text = _("An exact enterprise id, workflow, model or agent name.")
    csv_columns = tuple(
        (name, name)
        for name in (
            "day",
            "enterprise_id",
            "workflow_name",
            "model",
            "agent_name",
            "provider",
            "call_count",
            "error_count",
            "retry_count",
            "unpriced_calls",
            "prompt_tokens",
            "cached_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "total_tokens",
            "cost",
            "latency_ms_sum",
        )
    )

    def get_urls(self) -> list[URLPattern]:
        return self.get_report_urls() + super().get_urls()

    @admin.display(description=_("cost"), ordering="cost")
    def cost_display(self, obj: DailyRollup) -> SafeString | str:
        if obj.call_count and obj.unpriced_calls >= obj.call_count:
            return call_cost(None)
        text = format_money(obj.cost)
        return format_html('<span class="ag2-partial">≥ {}</span>', text) if obj.unpriced_calls else text


# ---------------------------------------------------------------------------------------------
# Price overrides (edited by people; read by pricing)


class ModelPriceForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ModelPrice
        fields = (
            "provider",
            "model",
            "currency_note",
            "input_per_mtok",
            "cached_input_per_mtok",
            "cache_write_per_mtok",
            "output_per_mtok",
            "reasoning_per_mtok",
            "effective_from",
            "effective_to",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("effective_from"), data.get("effective_to")
        if start and end and end <= start:
            self.add_error("effective_to", _("Must be after “effective from” (it is exclusive)."))
        for name in (
            "input_per_mtok",
            "cached_input_per_mtok",
            "cache_write_per_mtok",
            "output_per_mtok",
            "reasoning_per_mtok",
        ):
            value = data.get(name)
            if value is not None and value < 0:
                self.add_error(name, _("A price cannot be negative."))
        return data


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = ModelPriceForm
    list_display = (
        "model",
        "provider_display",
        "input_per_mtok",
        "cached_input_per_mtok",
        "output_per_mtok",
        "reasoning_per_mtok",
        "effective_from",
        "effective_to",
        "updated_at",
    )
    list_display_links = ("model",)
    list_filter = ("provider", "effective_from")
    search_fields = ("model", "provider", "currency_note")
    fieldsets = (
        (None, {"fields": ("provider", "model", "currency_note")}),
        (
            _("Prices per million tokens"),
            {
                "fields": (
                    "input_per_mtok",
                    "cached_input_per_mtok",
                    "cache_write_per_mtok",
                    "output_per_mtok",
                    "reasoning_per_mtok",
                )
            },
        ),
        (_("Period"), {"fields": ("effective_from", "effective_to")}),
        (_("History"), {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("created_at", "updated_at")

    @admin.display(description=_("provider"), ordering="provider")
    def provider_display(self, obj: ModelPrice) -> str:
        return obj.provider or "*"
