"""Views the decorator and middleware tests drive through Django's test clients."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import View

from ag2_logging import ag2_logged, current_session_id
from ag2_logging.capture.context import current_session
from ag2_logging.middleware import logged_view


def _state() -> dict[str, str | None]:
    recorder = current_session.get()
    if recorder is None:
        return {"session_id": None}
    return {
        "session_id": str(recorder.session_id),
        "chat_id": recorder.chat_id,
        "enterprise_id": recorder.enterprise_id,
        "workflow_name": recorder.workflow_name,
        "parent_id": str(recorder.parent_id) if recorder.parent_id else None,
    }


@ag2_logged(workflow_name="sync_view")
def sync_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_state())


@ag2_logged(workflow_name="async_view")
async def async_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_state())


class ClassView(View):
    @ag2_logged(workflow_name="class_view")
    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse(_state())


@logged_view(workflow_name="mw_sync")
def mw_sync(request: HttpRequest) -> HttpResponse:
    if request.GET.get("status"):
        return HttpResponse(status=int(request.GET["status"]))
    if request.GET.get("boom"):
        raise RuntimeError("view exploded")
    return JsonResponse(_state())


@logged_view()
async def mw_async(request: HttpRequest) -> HttpResponse:
    if request.GET.get("boom"):
        raise RuntimeError("async view exploded")
    return JsonResponse(_state())


@logged_view(workflow_name="mw_nested")
@ag2_logged(workflow_name="inner")
def mw_nested(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_state())


def plain(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"session_id": str(current_session_id()) if current_session_id() else None})
