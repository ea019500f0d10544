"""The session timeline page (:class:`TimelineViewMixin`, on the session admin: it takes the *view
session* permission), with its ``?format=csv``."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _

from ag2_logging import reports
from ag2_logging.admin.exports import MixinBase, csv_filename, wants_csv
from ag2_logging.reports import charts, csv_response


class TimelineViewMixin(MixinBase):
    """The session timeline (on the session admin: it takes the *view session* permission)."""

    session_timeline_template = "admin/ag2_logging/session/timeline.html"

    def get_timeline_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/timeline/",
                self.admin_site.admin_view(self.timeline_view),
                name="ag2_logging_session_timeline",
            )
        ]

    def timeline_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        session = self.get_object(request, unquote(object_id))
        if session is None:
            raise Http404(_("No session with id “%(id)s”.") % {"id": object_id})
        if not self.has_view_permission(request, session):
            raise PermissionDenied
        report = reports.timeline(session)
        if wants_csv(request):
            header, rows = reports.timeline_table(report)
            return csv_response(csv_filename(f"session_{session.pk}"), header, rows)
        step_urls = {
            "llm": "admin:ag2_logging_llmcall_change",
            "tool": "admin:ag2_logging_toolcall_change",
            "event": "admin:ag2_logging_agentevent_change",
        }
        context = {
            **self.admin_site.each_context(request),
            "title": _("Session timeline"),
            "subtitle": str(session),
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
            "original": session,
            "report": report,
            "session": session,
            "chart": charts.lanes(
                title=_("Steps per agent over time"),
                agents=report.agents,
                steps=report.steps,
                span_s=report.span_s,
            ),
            "steps": [(step, reverse(step_urls[step.kind], args=[step.obj.pk])) for step in report.steps],
            "csv_url": f"{request.path}?format=csv",
            "links": _session_links(session),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.session_timeline_template, context)


def _session_links(session: Any) -> dict[str, str]:
    q = f"?session__id__exact={session.pk}"
    return {
        "change": reverse("admin:ag2_logging_session_change", args=[session.pk]),
        "calls": reverse("admin:ag2_logging_llmcall_changelist") + q,
        "tools": reverse("admin:ag2_logging_toolcall_changelist") + q,
        "events": reverse("admin:ag2_logging_agentevent_changelist") + q,
        "timeline": reverse("admin:ag2_logging_session_timeline", args=[session.pk]),
    }
