"""The session admin (:class:`SessionAdmin`, with the timeline page) and the warnings it shows:
the pipeline banner over the list, the incomplete-record banner over a session."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import URLPattern, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ag2_logging.admin.base import ReadOnlyAdmin
from ag2_logging.admin.filters import DateRangeFilter, PipelineFilter, UnpricedSessionFilter
from ag2_logging.admin.timeline import TimelineViewMixin
from ag2_logging.models import Session
from ag2_logging.templatetags.ag2_reports import call_cost, format_money, ms


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
