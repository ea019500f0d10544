"""The price overrides, edited by people and read by pricing: :class:`ModelPriceAdmin` and its
form (periods that end after they start, no negative prices).

Saving an override prices the calls recorded from then on; calls already recorded keep their
price until they are repriced. The override's page says so, and offers to reprice the calls it
covers (``<id>/reprice/``, and the list's action): in the pipeline's mode, one Celery task per
model name, or here and now (:func:`ag2_logging.pipeline.reprice.reprice_override`). The calls
covered are the override's: its model names, its provider (any when empty) and its period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ag2_logging.admin.base import VisibleControlsMixin, time_column, visible_response
from ag2_logging.formats import show
from ag2_logging.models import ModelPrice
from ag2_logging.pipeline import reprice as repricing

#: What the override's page says about calls already recorded.
PAST_CALLS_NOTE = _(
    "Saving prices the calls recorded from now on. Calls already recorded keep the price they "
    "were recorded with until they are repriced: use “Reprice the calls it covers” on this page "
    "(or the list's action, or manage.py ag2_logging_reprice). Failed calls and AG2 cache hits "
    "cost 0 whatever the price, and calls without usage stay unknown."
)


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
class ModelPriceAdmin(VisibleControlsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    form = ModelPriceForm
    #: Fits a 1366 px window with the nav sidebar open: the provider is written beneath the
    #: model and the period in one column (the last update is on the override's page).
    list_display = (
        "model_and_provider",
        "input_price",
        "cached_input_price",
        "output_price",
        "reasoning_price",
        "in_force",
    )
    list_display_links = ("model_and_provider",)
    list_filter = ("provider", "effective_from")
    search_fields = ("model", "provider", "currency_note")
    fieldsets = (
        (None, {"fields": ("provider", "model", "currency_note"), "description": PAST_CALLS_NOTE}),
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
    actions = ("reprice_covered_calls",)
    change_form_template = "admin/ag2_logging/modelprice/change_form.html"
    reprice_template = "admin/ag2_logging/modelprice/reprice.html"

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/reprice/", wrap(self.reprice_view), name="ag2_logging_modelprice_reprice"),
            *super().get_urls(),
        ]

    # -- saving says what happens to past calls ------------------------------------------------

    def _saved_note(self, request: HttpRequest, obj: ModelPrice) -> None:
        scope = repricing.override_scope(obj)
        count = scope.calls().count()
        url = reverse("admin:ag2_logging_modelprice_reprice", args=[obj.pk])
        text = ngettext(
            "The %(n)s call already recorded that this override covers keeps its old price.",
            "The %(n)s calls already recorded that this override covers keep their old price.",
            count,
        ) % {"n": count}
        messages.info(
            request, format_html('{} <a href="{}">{}</a>', text, url, _("Reprice the calls it covers"))
        )

    def response_add(
        self, request: HttpRequest, obj: ModelPrice, post_url_continue: str | None = None
    ) -> HttpResponse:
        self._saved_note(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: ModelPrice) -> HttpResponse:
        self._saved_note(request, obj)
        return super().response_change(request, obj)

    # -- repricing -------------------------------------------------------------------------------

    def reprice_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """GET: what repricing would examine, and a button; POST: reprice, then back to the page."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        change_url = reverse("admin:ag2_logging_modelprice_change", args=[obj.pk])
        if request.method == "POST":
            self._reprice(request, [obj])
            return HttpResponseRedirect(change_url)
        scope = repricing.override_scope(obj)
        from ag2_logging.pipeline import modes

        context = {
            **self.admin_site.each_context(request),
            "title": _("Reprice the calls “%(model)s” covers") % {"model": obj.model},
            "opts": self.model._meta,
            "original": obj,
            "scope": scope,
            "calls": scope.calls().count(),
            "mode": modes.describe_mode(),
            "change_url": change_url,
        }
        request.current_app = self.admin_site.name
        return visible_response(TemplateResponse(request, self.reprice_template, context))

    @admin.action(description=_("Reprice the calls the selected overrides cover"), permissions=["change"])
    def reprice_covered_calls(self, request: HttpRequest, queryset: QuerySet[ModelPrice]) -> None:
        self._reprice(request, queryset)

    def _reprice(self, request: HttpRequest, prices: Iterable[ModelPrice]) -> None:
        for price in prices:
            outcome = repricing.reprice_override(price)
            messages.success(request, reprice_message(price, outcome))

    @admin.display(description=_("provider"), ordering="provider")
    def provider_display(self, obj: ModelPrice) -> str:
        return obj.provider or "*"

    updated = time_column("updated_at", _("updated at"))

    @admin.display(description=_("model"), ordering="model")
    def model_and_provider(self, obj: ModelPrice) -> SafeString:
        return format_html(
            '<div class="ag2-two">{}<br><small class="ag2-quiet">{}</small></div>',
            obj.model,
            self.provider_display(obj),
        )

    @admin.display(description=_("in force"), ordering="effective_from")
    def in_force(self, obj: ModelPrice) -> str:
        start = obj.effective_from.isoformat() if obj.effective_from else _("always")
        end = obj.effective_to.isoformat() if obj.effective_to else _("open")
        return f"{start} → {end}"

    @admin.display(description=_("input / 1M"), ordering="input_per_mtok")
    def input_price(self, obj: ModelPrice) -> str:
        return show(obj.input_per_mtok, money=True)

    @admin.display(description=_("cached / 1M"), ordering="cached_input_per_mtok")
    def cached_input_price(self, obj: ModelPrice) -> str:
        return show(obj.cached_input_per_mtok, money=True)

    @admin.display(description=_("output / 1M"), ordering="output_per_mtok")
    def output_price(self, obj: ModelPrice) -> str:
        return show(obj.output_per_mtok, money=True)

    @admin.display(description=_("reasoning / 1M"), ordering="reasoning_per_mtok")
    def reasoning_price(self, obj: ModelPrice) -> str:
        return show(obj.reasoning_per_mtok, money=True)


def reprice_message(price: ModelPrice, outcome: repricing.OverrideReprice) -> str:
    """The success message of a repricing: what was queued, or what changed (unknown costs as
    "unknown", lower bounds with "≥", never 0 for calls without a price)."""
    parts = []
    if outcome.queued:
        parts.append(
            str(
                ngettext(
                    "Sent %(n)s reprice task to Celery; the costs change once a worker has run it.",
                    "Sent %(n)s reprice tasks to Celery (one per model); the costs change once a worker has run them.",
                    outcome.queued,
                )
                % {"n": outcome.queued}
            )
        )
    result = outcome.result
    if result is not None:
        parts.append(
            str(
                _(
                    "Repriced here: examined %(examined)s call(s), changed %(changed)s in %(sessions)s "
                    "session(s); cost %(before)s -> %(after)s."
                )
                % {
                    "examined": result.examined,
                    "changed": result.changed,
                    "sessions": len(result.sessions),
                    "before": repricing.cost_text(result.cost_before, result.unpriced_before),
                    "after": repricing.cost_text(result.cost_after, result.unpriced_after),
                }
            )
        )
    head = _("Override “%(model)s” (%(provider)s, %(period)s):") % {
        "model": price.model,
        "provider": price.provider or "*",
        "period": period_text(price),
    }
    return " ".join([str(head), *parts])


def period_text(price: ModelPrice) -> str:
    """The days an override covers, as the success message shows them: "2026-01-01 to 2026-01-30"
    (UTC, both inclusive: ``effective_to`` is exclusive), "…" for an open end, "any day" for none."""
    scope_until = price.effective_to - dt.timedelta(days=1) if price.effective_to else None
    if price.effective_from is None and scope_until is None:
        return str(_("any day"))
    start = price.effective_from.isoformat() if price.effective_from else "…"
    end = scope_until.isoformat() if scope_until else "…"
    return str(_("%(start)s to %(end)s") % {"start": start, "end": end})
