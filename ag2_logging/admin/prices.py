"""The price overrides, edited by people and read by pricing: :class:`ModelPriceAdmin` and its
form (periods that end after they start, no negative prices)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ag2_logging.models import ModelPrice


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
