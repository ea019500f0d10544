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
from ag2_logging.admin.base import visible_response
from ag2_logging.admin.exports import MixinBase, csv_filename, wants_csv
from ag2_logging.models import LLMCall
from ag2_logging.reports import charts, csv_response
from ag2_logging.reports.folding import call_text, fold_steps, session_tree

#: The step links of the timeline, by kind.
STEP_URLS = {
    "llm": "admin:ag2_logging_llmcall_change",
    "tool": "admin:ag2_logging_toolcall_change",
    "event": "admin:ag2_logging_agentevent_change",
}


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
        everything = request.GET.get("show") == "all"
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
            "steps": report.steps,
            "rows": _rows(report.steps, everything=everything),
            "everything": everything,
            "tree": session_tree(session),
            "csv_url": f"{request.path}?format=csv",
            "links": _session_links(session),
        }
        request.current_app = self.admin_site.name
        return visible_response(TemplateResponse(request, self.session_timeline_template, context))


def _rows(steps: list[Any], *, everything: bool) -> list[dict[str, Any]]:
    """The table's rows: each step with its link (an LLM call with its prompt and response, read
    in one query), or a run of folded events with theirs."""
    bodies = {
        row["pk"]: call_text(row["request"], row["response"])
        for row in LLMCall.objects.filter(pk__in=[s.obj.pk for s in steps if s.kind == "llm"]).values(
            "pk", "request", "response"
        )
    }

    def link(step: Any) -> str:
        return reverse(STEP_URLS[step.kind], args=[step.obj.pk])

    rows: list[dict[str, Any]] = []
    for row in fold_steps(steps, everything=everything):
        if row.step is None:
            rows.append({"row": row, "folded": [(s, link(s)) for s in row.folded]})
        else:
            prompt, response = bodies.get(row.step.obj.pk, ("", "")) if row.step.kind == "llm" else ("", "")
            rows.append(
                {"row": row, "step": row.step, "url": link(row.step), "prompt": prompt, "response": response}
            )
    return rows


def _session_links(session: Any) -> dict[str, str]:
    q = f"?session__id__exact={session.pk}"
    return {
        "change": reverse("admin:ag2_logging_session_change", args=[session.pk]),
        "calls": reverse("admin:ag2_logging_llmcall_changelist") + q,
        "tools": reverse("admin:ag2_logging_toolcall_changelist") + q,
        "events": reverse("admin:ag2_logging_agentevent_changelist") + q,
        "timeline": reverse("admin:ag2_logging_session_timeline", args=[session.pk]),
    }
