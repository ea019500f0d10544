"""What every log-row admin shares: :class:`ReadOnlyAdmin` (no add, change or delete; CSV export
of the filtered list; control characters shown escaped) and the column helpers
(:func:`session_link`, :func:`pretty_json`).

Control characters (NUL, C0/C1, the bidi controls such as U+202E) in ids, names and content are
shown as escapes (:mod:`ag2_logging.reports.text`): the rows a list or a page shows have their
text fields escaped in memory (tab and newline kept in text fields, escaped in single-line
ones; the rows are never saved), and every page rendered goes through a last pass
(:func:`visible_response`) that escapes what any other template or widget let through.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db import models
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ag2_logging.admin.exports import ExportViewMixin, MixinBase
from ag2_logging.admin.pagination import EstimatedCountPaginator
from ag2_logging.formats import show
from ag2_logging.models import Session
from ag2_logging.reports.text import html_visible, visible
from ag2_logging.templatetags.ag2_reports import moment

EXPORT_CHANGE_LIST = "admin/ag2_logging/export_change_list.html"


def visible_instance(obj: models.Model, depth: int = 1) -> models.Model:
    """Escape the control characters of ``obj``'s loaded text fields in memory (``CharField``:
    all of them; ``TextField``: all but tab and newline), and of the related rows already
    loaded with it (``select_related``), ``depth`` levels down. Deferred fields are left alone
    (no query). Returns ``obj``, which must not be saved afterwards."""
    for f in obj._meta.concrete_fields:
        if isinstance(f, models.CharField | models.TextField) and isinstance(
            obj.__dict__.get(f.attname), str
        ):
            setattr(
                obj, f.attname, visible(obj.__dict__[f.attname], multiline=isinstance(f, models.TextField))
            )
    if depth > 0:
        for related in obj._state.fields_cache.values():
            if isinstance(related, models.Model):
                visible_instance(related, depth - 1)
    return obj


def visible_response(response: HttpResponseBase) -> HttpResponseBase:
    """Have a page's HTML go through :func:`~ag2_logging.reports.text.html_visible` once
    rendered (a ``TemplateResponse``; other responses are returned as they are)."""
    if isinstance(response, TemplateResponse):

        def escape(rendered: HttpResponseBase) -> None:
            content = getattr(rendered, "content", b"")
            charset = getattr(rendered, "charset", None) or "utf-8"
            rendered.content = html_visible(content.decode(charset)).encode(charset)  # type: ignore[attr-defined]

        response.add_post_render_callback(escape)
    return response


class _VisibleResults:
    """A change list's page of rows, evaluated once, each row through :func:`visible_instance`."""

    def __init__(self, rows: Any) -> None:
        self._source = rows
        self._rows: list[models.Model] | None = None

    def _list(self) -> list[models.Model]:
        if self._rows is None:
            self._rows = [visible_instance(row) for row in self._source]
        return self._rows

    def __iter__(self) -> Iterator[models.Model]:
        return iter(self._list())

    def __len__(self) -> int:
        return len(self._list())

    def __getitem__(self, index: Any) -> Any:
        return self._list()[index]

    def __bool__(self) -> bool:
        return bool(self._list())


class VisibleChangeList(ChangeList):
    """The change list whose rows are shown with their control characters escaped."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = _VisibleResults(self.result_list)


class VisibleControlsMixin(MixinBase):
    """Change lists, change pages and history pages with control characters escaped."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return VisibleChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        return visible_response(super().changelist_view(request, extra_context))

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> Any:
        return visible_response(super().history_view(request, object_id, extra_context))


class ReadOnlyAdmin(VisibleControlsMixin, ExportViewMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Log rows are evidence: nobody adds, edits or deletes them in the admin. Their text is
    shown with its control characters escaped (see the module's docstring)."""

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        return visible_instance(obj) if obj is not None else None

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        return visible_response(super().change_view(request, object_id, form_url, extra_context))

    show_full_result_count = False
    #: The listed rows counted exactly up to 10,000, estimated past that (never a full scan).
    paginator = EstimatedCountPaginator
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
    # Long lines wrap inside the page (a prompt is one long line); the style is inline because
    # the change pages do not load the app's stylesheet.
    return format_html(
        '<pre class="ag2-json" style="white-space: pre-wrap; overflow-wrap: anywhere; max-width: 100%;">{}</pre>',
        text,
    )


def time_column(
    field: str, description: Any, *, millis: bool = False, stacked: bool = False
) -> Callable[[Any, Any], SafeString | str]:
    """A list or page column showing ``field`` through :func:`moment` (sortable by it)."""

    @admin.display(description=description, ordering=field)
    def column(self: Any, obj: Any) -> SafeString | str:
        return moment(getattr(obj, field), millis=millis, stacked=stacked)

    return column


def count_column(field: str, description: Any) -> Callable[[Any, Any], str]:
    """A column showing the count ``field`` with thousands separators (``9,000``)."""

    @admin.display(description=description, ordering=field)
    def column(self: Any, obj: Any) -> str:
        return show(getattr(obj, field))

    return column


def pipeline_banner(request: HttpRequest) -> str | None:
    """The warning the sessions list and every report page show while finished sessions are left
    out of the reports (``Session.objects.missing_from_reports``); None when there are none."""
    from ag2_logging.conf import conf

    threshold = conf.resolved.pipeline_pending_alert_seconds
    count = Session.objects.missing_from_reports(threshold).count()
    if not count:
        return None
    return str(
        _(
            "%(n)s finished session(s) are not in the cost reports (their pipeline failed, is retrying "
            "after an error, or is pending for more than %(s)s s). Filter the sessions by \u201cin the "
            "reports\u201d to see why; fix the cause, then run manage.py ag2_logging_recover (with "
            "--local on the host that wrote them). manage.py ag2_logging_doctor checks the whole pipeline."
        )
        % {"n": count, "s": f"{threshold:g}"}
    )
