"""Read-only admins for the log rows (reports come with the reporting work)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Log rows are evidence: nobody adds, edits or deletes them in the admin."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LLMCallInline(admin.TabularInline):  # type: ignore[type-arg]
    model = LLMCall
    fields = (
        "seq",
        "agent_name",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "total_tokens",
        "cost",
        "price_status",
        "latency_ms",
        "status",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("seq",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "enterprise_id",
        "workflow_name",
        "chat_id",
        "status",
        "call_count",
        "total_tokens",
        "total_cost",
        "unpriced_calls",
    )
    list_filter = ("status", "enterprise_id", "workflow_name", "source", "started_at")
    search_fields = ("=id", "chat_id")
    date_hierarchy = "started_at"
    inlines = (LLMCallInline,)


@admin.register(LLMCall)
class LLMCallAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "session",
        "agent_name",
        "provider",
        "model",
        "total_tokens",
        "cost",
        "price_status",
        "latency_ms",
        "status",
    )
    list_filter = ("provider", "model", "status", "price_status", "is_cached")
    search_fields = ("=session__id", "session__chat_id", "model")
    list_select_related = ("session",)


@admin.register(AgentEvent)
class AgentEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "session", "agent_name", "name")
    list_filter = ("name",)
    search_fields = ("=session__id", "session__chat_id", "agent_name")
    list_select_related = ("session",)


@admin.register(ToolCall)
class ToolCallAdmin(ReadOnlyAdmin):
    list_display = ("ended_at", "session", "agent_name", "name", "duration_ms", "error")
    list_filter = ("name",)
    search_fields = ("=session__id", "session__chat_id", "name")
    list_select_related = ("session",)
