"""The budgets' admin: edit limits; see each budget's spend this period, its reservations, a
forecast to the period's end and the sessions it blocked. A save or delete moves the budgets'
version on, so every process applies it from its next session (and within a second)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ag2_logging.budgets import figures as budget_figures
from ag2_logging.formats import show
from ag2_logging.models import Budget, bump_budget_version


class BudgetForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Budget
        fields = (
            "name",
            "scope",
            "enterprise_id",
            "workflow_name",
            "period",
            "window_hours",
            "limit",
            "soft_percent",
            "action",
            "unknown_model",
            "active",
        )

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if data.get("period") == Budget.Period.ROLLING_HOURS and not data.get("window_hours"):
            self.add_error("window_hours", _("A rolling period needs its window in hours."))
        limit = data.get("limit")
        if limit is not None and limit <= 0:
            self.add_error("limit", _("The limit must be more than 0."))
        soft = data.get("soft_percent")
        if soft is not None and not 0 < soft <= 100:
            self.add_error("soft_percent", _("Between 0 and 100."))
        return data


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = BudgetForm
    #: Compact enough for a 1366 px window with the nav sidebar open (scope and target share a
    #: column, as do action and active; reservations are on the budget's page).
    list_display = (
        "__str__",
        "applies_to",
        "period",
        "limit_display",
        "enforcement",
        "spent",
        "forecast",
        "blocked",
    )
    list_filter = ("scope", "period", "action", "active")
    search_fields = ("name", "enterprise_id", "workflow_name")
    readonly_fields = ("spent", "reserved", "forecast", "blocked", "created_at", "updated_at")

    @admin.display(description=_("enterprise / workflow"))
    def target(self, obj: Budget) -> str:
        return (
            " / ".join(v or "each" for v in (obj.enterprise_id, obj.workflow_name))
            if obj.scope != "global"
            else "-"
        )

    @admin.display(description=_("applies to"), ordering="scope")
    def applies_to(self, obj: Budget) -> str:
        scope = obj.get_scope_display()
        return scope if obj.scope == "global" else f"{scope}: {self.target(obj)}"

    @admin.display(description=_("limit"), ordering="limit")
    def limit_display(self, obj: Budget) -> str:
        return show(obj.limit, money=True)

    @admin.display(description=_("action"), ordering="action")
    def enforcement(self, obj: Budget) -> str:
        action = obj.get_action_display()
        return action if obj.active else gettext("%(action)s (inactive)") % {"action": action}

    def _figures(self, obj: Budget) -> budget_figures.Figures | None:
        if obj.pk is None:
            return None
        cache: dict[int, budget_figures.Figures] = self.__dict__.setdefault("_figures_cache", {})
        if obj.pk not in cache:
            cache[obj.pk] = budget_figures.figures(obj)
        return cache[obj.pk]

    @admin.display(description=_("spent"))
    def spent(self, obj: Budget) -> str:
        found = self._figures(obj)
        return "-" if found is None or found.spent is None else show(found.spent, money=True)

    @admin.display(description=_("reserved"))
    def reserved(self, obj: Budget) -> str:
        found = self._figures(obj)
        return "-" if found is None or found.reserved is None else show(found.reserved, money=True)

    @admin.display(description=_("forecast"))
    def forecast(self, obj: Budget) -> str:
        found = self._figures(obj)
        return "-" if found is None or found.forecast is None else show(found.forecast, money=True)

    @admin.display(description=_("blocked"))
    def blocked(self, obj: Budget) -> str:
        if obj.pk is None:
            return "-"
        count = budget_figures.blocked_sessions(obj).count()
        query = urlencode(
            {"status__exact": "blocked", "error__startswith": f"BudgetExceeded: budget #{obj.pk} ("}
        )
        url = reverse("admin:ag2_logging_session_changelist") + "?" + query
        return format_html('<a href="{}">{}</a>', url, count)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        self.__dict__.pop("_figures_cache", None)  # figures are read once per page
        return super().changelist_view(request, extra_context)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Budget]) -> None:
        super().delete_queryset(request, queryset)
        bump_budget_version()  # a bulk delete calls no Budget.delete()
