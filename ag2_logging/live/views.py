"""Who may see the live dashboard, how it is updated, and its JSON answer.

The permission is the reports' (:meth:`ReportViewsMixin.has_report_permission` of the daily
rollup admin: *view daily rollup*), for the page, the JSON endpoint and the WebSocket alike.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, JsonResponse

from ag2_logging.conf import conf
from ag2_logging.live.snapshot import snapshot

WEBSOCKET, POLLING = "websocket", "polling"
#: The WebSocket's path (without the leading slash), as ``ag2_logging.live.routing`` routes it.
WEBSOCKET_PATH = "ws/ag2_logging/live/"


def channels_installed() -> bool:
    return importlib.util.find_spec("channels") is not None


def transport(request: HttpRequest) -> str:
    """``"websocket"`` when the page is served over ASGI with Django Channels installed (or
    ``LIVE_TRANSPORT`` says ``"websocket"`` and Channels is installed), else ``"polling"``.
    The page falls back to polling by itself when its WebSocket cannot connect."""
    wanted = conf.resolved.live_transport
    if wanted == POLLING or not channels_installed():
        return POLLING
    if wanted == WEBSOCKET:
        return WEBSOCKET
    return WEBSOCKET if isinstance(request, ASGIRequest) else POLLING


def can_view(user: Any) -> bool:
    """Whether ``user`` may see the live dashboard: an active staff user whom the daily rollup
    admin's ``has_report_permission`` lets see the reports (sync ORM: the permission cache)."""
    if user is None or not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return False
    from django.contrib import admin

    from ag2_logging.models import DailyRollup

    model_admin = admin.site._registry.get(DailyRollup)
    request = HttpRequest()
    request.user = user
    check = getattr(model_admin, "has_report_permission", None)
    if check is not None:
        return bool(check(request))
    return bool(
        user.has_perm("ag2_logging.view_dailyrollup") or user.has_perm("ag2_logging.change_dailyrollup")
    )


def snapshot_response() -> JsonResponse:
    """The snapshot as JSON, never cached (the caller checked the permission)."""
    response = JsonResponse(snapshot())
    response["Cache-Control"] = "no-store"
    return response
