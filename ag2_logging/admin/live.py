"""The live dashboard page of the admin (:class:`LiveViewsMixin`, on the daily rollup admin
beside the reports: the same *view* permission).

``live/`` renders the page; ``live/data.json`` answers the snapshot
(:func:`ag2_logging.live.snapshot.snapshot`) the page polls under WSGI. Under ASGI with Django
Channels the page opens a WebSocket to ``live_websocket_path`` instead
(:mod:`ag2_logging.live.routing`) and falls back to polling when it cannot connect.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _

from ag2_logging.admin.views import ReportViewsMixin
from ag2_logging.conf import conf
from ag2_logging.live import views as live
from ag2_logging.live.views import WEBSOCKET_PATH


class LiveViewsMixin(ReportViewsMixin):
    """The live dashboard and its JSON endpoint (the reports' permission)."""

    live_template = "admin/ag2_logging/live/dashboard.html"
    #: Where the page opens its WebSocket (the path of ``ag2_logging.live.routing``).
    live_websocket_path = "/" + WEBSOCKET_PATH

    def get_live_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("live/", wrap(self.live_view), name="ag2_logging_live"),
            path("live/data.json", wrap(self.live_data_view), name="ag2_logging_live_data"),
        ]

    def live_context(self, request: HttpRequest) -> dict[str, Any]:
        transport = live.transport(request)
        config = {
            "transport": transport,
            "dataUrl": reverse("admin:ag2_logging_live_data"),
            "websocketPath": self.live_websocket_path,
            "seconds": conf.resolved.live_seconds or 2,
        }
        return {
            **self.admin_site.each_context(request),
            "title": _("Live"),
            "subtitle": None,
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
            "transport": transport,
            "live_config": json.dumps(config),
            "live_seconds": config["seconds"],
            "live_enabled": conf.resolved.live_seconds > 0,
        }

    def live_view(self, request: HttpRequest) -> HttpResponseBase:
        self.check_report_permission(request)
        return TemplateResponse(request, self.live_template, self.live_context(request))

    def live_data_view(self, request: HttpRequest) -> HttpResponseBase:
        self.check_report_permission(request)
        return live.snapshot_response()
