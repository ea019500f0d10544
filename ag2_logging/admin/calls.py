"""The admins of the rows a session holds: LLM calls, agent events and tool calls (read-only, with
the columns they share in :class:`SessionRowAdmin`)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ag2_logging.admin.base import (
    ReadOnlyAdmin,
    count_column,
    pretty_json,
    session_link,
    time_column,
)
from ag2_logging.admin.filters import (
    TOLERANCE,
    Ag2CostFilter,
    AgentFilter,
    DateRangeFilter,
    EnterpriseFilter,
    HasErrorFilter,
    ModelFilter,
    ProviderFilter,
    WorkflowFilter,
)
from ag2_logging.admin.said import SaidFilter
from ag2_logging.formats import show
from ag2_logging.models import AgentEvent, LLMCall, ToolCall
from ag2_logging.templatetags.ag2_reports import call_cost, format_money, ms


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
    # What a team lead decides on, readable at 1366 px with the nav sidebar and the filters open:
    # when, who (agent; enterprise and session beneath), what (model; provider beneath), how much
    # (tokens in -> out, cost), how long, status. The rest is on the call's page.
    list_display = (
        "when",
        "who",
        "model_display",
        "tokens",
        "cost_display",
        "latency",
        "status",
    )
    list_filter = (
        SaidFilter,  # what was said: applied in get_search_results, after the other filters
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
    search_fields = ("=session__id", "session__chat_id", "=response_id", "model", "agent_name")
    search_help_text = _(
        "A model or an agent name, a chat id (or part of any of them), a whole session id, or a response id."
    )
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
                    "started",
                    "ended",
                    "latency",
                )
            },
        ),
        (
            _("Tokens and cost"),
            {
                "fields": (
                    "prompt_tokens_display",
                    "cached_tokens_display",
                    "cache_write_tokens_display",
                    "completion_tokens_display",
                    "reasoning_tokens_display",
                    "total_tokens_display",
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
        "started",
        "ended",
        "prompt_tokens_display",
        "cached_tokens_display",
        "cache_write_tokens_display",
        "completion_tokens_display",
        "reasoning_tokens_display",
        "total_tokens_display",
        "latency",
        "cost_display",
        "ag2_cost_display",
        "request_json",
        "response_json",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[LLMCall], search_term: str
    ) -> tuple[QuerySet[LLMCall], bool]:
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return SaidFilter.apply(request, queryset), may_have_duplicates

    def get_queryset(self, request: HttpRequest) -> QuerySet[LLMCall]:
        qs = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "ag2_logging_llmcall_changelist":
            qs = qs.defer("request", "response")  # bodies can be large; the list never shows them
        return qs

    when = time_column("started_at", _("started"), stacked=True)
    started = time_column("started_at", _("started at"))
    ended = time_column("ended_at", _("ended at"))
    prompt_tokens_display = count_column("prompt_tokens", _("prompt tokens"))
    cached_tokens_display = count_column("cached_tokens", _("cached tokens"))
    cache_write_tokens_display = count_column("cache_write_tokens", _("cache write tokens"))
    completion_tokens_display = count_column("completion_tokens", _("completion tokens"))
    reasoning_tokens_display = count_column("reasoning_tokens", _("reasoning tokens"))
    total_tokens_display = count_column("total_tokens", _("total tokens"))

    @admin.display(description=_("agent"), ordering="agent_name")
    def who(self, obj: LLMCall) -> SafeString:
        if obj.session is None:
            beneath = session_link(None)
        else:
            beneath = format_html("{} · {}", obj.session.enterprise_id or "—", session_link(obj.session))
        return format_html(
            '<div class="ag2-two" title="{}">{}<br><small class="ag2-quiet">{}</small></div>',
            obj.session.chat_id if obj.session else "",
            obj.agent_name or "—",
            beneath,
        )

    @admin.display(description=_("model"), ordering="model")
    def model_display(self, obj: LLMCall) -> SafeString:
        return format_html(
            '<div class="ag2-two">{}<br><small class="ag2-quiet">{}</small></div>',
            obj.model or "—",
            obj.provider or "—",
        )

    @admin.display(description=_("tokens"), ordering="total_tokens")
    def tokens(self, obj: LLMCall) -> SafeString:
        cached = (
            format_html('<br><small class="ag2-quiet">{} {}</small>', show(obj.cached_tokens), _("cached"))
            if obj.cached_tokens
            else ""
        )
        return format_html(
            '<span class="ag2-num">{} → {}</span>{}',
            show(obj.prompt_tokens),
            show(obj.completion_tokens),
            cached,
        )

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


@admin.register(AgentEvent)
class AgentEventAdmin(SessionRowAdmin):
    ordering = ("-created_at",)  # newest first
    list_display = ("when", "session_chat", "agent_name", "name", "duration", "has_error")
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
    created = time_column("created_at", _("created at"), millis=True)
    when = time_column("created_at", _("created"), millis=True, stacked=True)
    fields = (
        "session_chat",
        "seq",
        "created",
        "agent_name",
        "name",
        "duration",
        "error",
        "data_json",
        "id",
    )
    readonly_fields = ("session_chat", "created", "duration", "data_json")

    @admin.display(description=_("data"))
    def data_json(self, obj: AgentEvent) -> SafeString:
        return pretty_json(obj.data)


@admin.register(ToolCall)
class ToolCallAdmin(SessionRowAdmin):
    ordering = ("-ended_at",)  # newest first
    list_display = ("when", "session_chat", "agent_name", "name", "duration", "has_error")
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
    started = time_column("started_at", _("started at"), millis=True)
    ended = time_column("ended_at", _("ended at"), millis=True)
    when = time_column("ended_at", _("ended"), millis=True, stacked=True)
    fields = (
        "session_chat",
        "seq",
        "started",
        "ended",
        "agent_name",
        "name",
        "duration",
        "arguments_json",
        "result_summary",
        "error",
        "id",
    )
    readonly_fields = ("session_chat", "started", "ended", "duration", "arguments_json")

    @admin.display(description=_("arguments"))
    def arguments_json(self, obj: ToolCall) -> SafeString:
        return pretty_json(obj.arguments)
