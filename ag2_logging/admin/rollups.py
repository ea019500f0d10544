"""The daily rollup admin (:class:`DailyRollupAdmin`, read-only), which hosts the report pages:
they read rollups, so they take its *view* permission."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ag2_logging.admin.base import ReadOnlyAdmin
from ag2_logging.admin.filters import DateRangeFilter
from ag2_logging.admin.live import LiveViewsMixin
from ag2_logging.admin.trends import TrendViewsMixin
from ag2_logging.models import DailyRollup
from ag2_logging.templatetags.ag2_reports import call_cost, format_money


@admin.register(DailyRollup)
class DailyRollupAdmin(LiveViewsMixin, TrendViewsMixin, ReadOnlyAdmin):
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
        return self.get_report_urls() + self.get_trend_urls() + self.get_live_urls() + super().get_urls()

    @admin.display(description=_("cost"), ordering="cost")
    def cost_display(self, obj: DailyRollup) -> SafeString | str:
        if obj.call_count and (obj.unpriced_calls >= obj.call_count or (obj.unpriced_calls and not obj.cost)):
            return call_cost(None)  # a lower bound of $0 says nothing: unknown
        text = format_money(obj.cost)
        return format_html('<span class="ag2-partial">≥ {}</span>', text) if obj.unpriced_calls else text
