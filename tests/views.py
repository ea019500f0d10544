"""Views the decorator and middleware tests drive through Django's test clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
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


# -- streamed responses: the body runs after the view returned -------------------------------------


def _chat(llm_url: str, marker: str) -> None:
    """One real classic AG2 chat against the fake server (the classic suite passes ``llm``)."""
    import autogen

    config = {"config_list": [{"model": "gpt-4o-mini", "api_key": "sk-stream", "base_url": llm_url}]}
    assistant = autogen.AssistantAgent("assistant", llm_config={**config, "cache_seed": None})
    user = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    user.initiate_chat(assistant, message=f"[[marker:{marker}]] [[terminate]]", max_turns=1, silent=True)


def _chunks(request: HttpRequest) -> Iterator[bytes]:
    """What a streamed answer does: the LLM call happens while the body streams."""
    yield b"start "
    if request.GET.get("llm"):
        _chat(request.GET["llm"], request.GET.get("marker", "stream"))
    yield json.dumps(_state()).encode()
    if request.GET.get("boom"):
        raise RuntimeError("stream exploded")


async def _achunks(request: HttpRequest) -> AsyncIterator[bytes]:
    yield b"start "
    if request.GET.get("llm"):
        await asyncio.to_thread(_chat, request.GET["llm"], request.GET.get("marker", "astream"))
    yield json.dumps(_state()).encode()
    if request.GET.get("boom"):
        raise RuntimeError("stream exploded")


@logged_view(workflow_name="mw_stream")
def mw_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_chunks(request))


@logged_view(workflow_name="mw_astream")
async def mw_astream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_achunks(request))


@ag2_logged(workflow_name="deco_stream")
def deco_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_chunks(request))


@ag2_logged(workflow_name="deco_astream")
async def deco_astream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_achunks(request))
