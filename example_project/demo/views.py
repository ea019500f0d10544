"""Run a demo workflow per request and answer with what ag2_logging recorded for it.

``GET /demo/run/?enterprise=acme&workflow=support_triage`` (or a form POST with the same fields)
runs the group chat in a sync view; ``/demo/run-async/`` runs it with ``a_initiate_chat`` in an
async view. Optional fields: ``chat_id``, ``model``, ``sku``. The JSON answer holds the session id
and the session's live totals, read with ``session_totals()`` before the session ends; the
Session row and its LLM calls are in the admin once the session is ingested.

These endpoints spend LLM tokens on every call and are CSRF-exempt (for ``curl -X POST``): they
are for local demos against the fake LLM server, not for a public deployment.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from ag2_logging import ag2_logging_session, session_totals
from example_project.demo.teams import GroupChatTeam, build_group_chat, task_message

logger = logging.getLogger("example_project.demo")

MAX_FIELD = 255  # the Session model's CharField length


class BadRequest(ValueError):
    pass


def _params(request: HttpRequest) -> dict[str, str]:
    data = request.POST if request.method == "POST" else request.GET
    params = {
        "enterprise": data.get("enterprise", "acme").strip(),
        "workflow": data.get("workflow", "support_triage").strip(),
        "chat_id": data.get("chat_id", "").strip() or f"web-{uuid.uuid4().hex[:12]}",
        "model": data.get("model", "").strip(),
        "sku": data.get("sku", "SKU-1001").strip(),
    }
    for name, value in params.items():
        if len(value) > MAX_FIELD:
            raise BadRequest(f"{name} is longer than {MAX_FIELD} characters")
    if not params["enterprise"] or not params["workflow"]:
        raise BadRequest("enterprise and workflow must not be empty")
    return params


def _message(params: dict[str, str]) -> str:
    return task_message(
        f"{params['enterprise']} needs help with {params['workflow']}: what does {params['sku']} cost "
        "and what should we do next?",
        sku=params["sku"],
        marker=params["workflow"].replace(" ", "_")[:40] or None,
    )


def _answer(
    params: dict[str, str], session: Any, totals: dict[str, Any] | None, team: GroupChatTeam, mode: str
) -> JsonResponse:
    # The group chat's own transcript: in async runs AG2's ChatResult.chat_history can miss the
    # final message, the GroupChat's list never does.
    transcript = team.groupchat.messages
    last = transcript[-1] if transcript else {}
    return JsonResponse(
        {
            "mode": mode,
            "logging_enabled": session is not None,
            "session_id": str(session.session_id) if session is not None else None,
            "chat_id": params["chat_id"],
            "workflow_name": params["workflow"],
            "enterprise_id": params["enterprise"],
            "totals": totals,
            "messages": len(transcript),
            "last_message": {"name": last.get("name", ""), "content": last.get("content") or ""},
        }
    )


def _failure(params: dict[str, str], session: Any, exc: Exception) -> JsonResponse:
    # The session is recorded as failed (with the error) by ag2_logging_session itself. We are
    # outside it now, so pass its context to the log record ourselves (SessionContextFilter keeps it).
    logger.exception(
        "demo workflow %s for %s failed",
        params["workflow"],
        params["enterprise"],
        extra={
            "session_id": str(session.session_id) if session is not None else "",
            "enterprise_id": params["enterprise"],
        },
    )
    return JsonResponse(
        {
            "error": f"the workflow failed ({type(exc).__name__}); see the server log",
            "session_id": str(session.session_id) if session is not None else None,
        },
        status=502,
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def run_workflow(request: HttpRequest) -> JsonResponse:
    """Run the group chat synchronously inside ``with ag2_logging_session(...)``."""
    try:
        params = _params(request)
    except BadRequest as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    session = None
    try:
        with ag2_logging_session(params["chat_id"], params["workflow"], params["enterprise"]) as session:
            team = build_group_chat(model=params["model"] or None)
            team.run(_message(params))  # user.initiate_chat(manager, ...) on classic AG2
            # Inside the session: SessionContextFilter adds its id and enterprise to this record.
            logger.info("demo workflow %s finished", params["workflow"])
            totals = session_totals()
    except Exception as exc:
        return _failure(params, session, exc)
    return _answer(params, session, totals, team, "sync")


@csrf_exempt
@require_http_methods(["GET", "POST"])
async def run_workflow_async(request: HttpRequest) -> JsonResponse:
    """Run the group chat with ``await user.a_initiate_chat(...)`` inside ``async with``."""
    try:
        params = _params(request)
    except BadRequest as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    session = None
    try:
        async with ag2_logging_session(
            params["chat_id"], params["workflow"], params["enterprise"]
        ) as session:
            team = build_group_chat(model=params["model"] or None)
            await team.a_run(_message(params))  # user.a_initiate_chat(manager, ...) on classic AG2
            # Inside the session: SessionContextFilter adds its id and enterprise to this record.
            logger.info("demo workflow %s finished", params["workflow"])
            totals = session_totals()
    except Exception as exc:
        return _failure(params, session, exc)
    return _answer(params, session, totals, team, "async")
