"""What every log-row admin shares: :class:`ReadOnlyAdmin` (no add, change or delete; CSV export
of the filtered list) and the column helpers (:func:`session_link`, :func:`pretty_json`)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import URLPattern, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ag2_logging.admin.exports import ExportViewMixin
from ag2_logging.models import Session

EXPORT_CHANGE_LIST = "admin/ag2_logging/export_change_list.html"


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
