"""``Ag2LoggingMiddleware``: a session per request, for the views and paths that opt in.

    MIDDLEWARE = [..., "ag2_logging.middleware.Ag2LoggingMiddleware"]

A request gets a session when its view is decorated with :func:`logged_view` or its path matches
one of ``AG2_LOGGING["MIDDLEWARE_PATHS"]``. Ids come from the ``X-Enterprise-ID`` / ``X-Chat-ID``
headers (renamed by ``ENTERPRISE_HEADER`` / ``CHAT_HEADER``); the workflow name from the view
decorator, else the URL name, else the view's qualified name. A 5xx response or an exception
marks the session failed. Sync and async capable, the mode decided once (django-cors-headers'
shape); both branches are thin over shared helpers. A streamed response's session lasts until its
body has streamed (an LLM call made while streaming an answer is the request's), under WSGI and
ASGI: it ends ``completed``, ``failed`` (the body raised, or a 5xx) or ``cancelled`` (the server
closed the stream early: the client went away).

The request's authenticated user is recorded as ``Session.user`` (NULL for anonymous requests):
put the middleware after ``django.contrib.auth.middleware.AuthenticationMiddleware``. Tags and
metadata come from :func:`logged_view`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, resolve

from ag2_logging.capture import db_thread, people
from ag2_logging.capture.context import current_session
from ag2_logging.capture.recorder import SessionRecorder
from ag2_logging.capture.scope import close_session, open_session, status_for
from ag2_logging.capture.streams import is_stream, stream_in_session
from ag2_logging.conf import conf

F = TypeVar("F", bound=Callable[..., Any])
MARKER = "ag2_logging_view"
_ERROR_ATTR = "_ag2_logging_error"


def logged_view(
    workflow_name: str | None = None,
    *,
    tags: list[str] | tuple[str, ...] | Callable[[HttpRequest], Any] | None = None,
    metadata: dict[str, Any] | Callable[[HttpRequest], Any] | None = None,
) -> Callable[[F], F]:
    """Opt a view into a per-request session from ``Ag2LoggingMiddleware``.

    ``tags`` (a list of strings) and ``metadata`` (a small JSON object, redacted before it is
    written) are values, checked here, or callables taking the request, checked per request
    (``TypeError`` / ``ValueError``: see ``ag2_logging_session``).
    """
    marker = {
        "workflow_name": workflow_name,
        "tags": tags if callable(tags) else people.check_tags(tags),
        "metadata": metadata if callable(metadata) else people.check_metadata(metadata),
    }

    def decorate(view: F) -> F:
        setattr(view, MARKER, marker)
        return view

    return decorate


def session_args(request: HttpRequest) -> dict[str, Any] | None:
    """The session to open for ``request`` (ids and workflow), or None when it does not opt in."""
    settings = conf.resolved
    if not settings.enabled:
        return None
    path = request.path_info
    marker: dict[str, Any] | None = None
    workflow = None
    try:
        match = resolve(path)
    except Resolver404:
        match = None
    if match is not None:
        view = match.func
        marker = getattr(view, MARKER, None) or getattr(getattr(view, "view_class", None), MARKER, None)
        workflow = match.url_name or getattr(view, "__qualname__", None)
    if marker is None and not any(p.search(path) for p in settings.middleware_paths):
        return None
    if marker is not None and marker.get("workflow_name"):
        workflow = marker["workflow_name"]
    tags = marker.get("tags") if marker is not None else None
    metadata = marker.get("metadata") if marker is not None else None
    return {
        "chat_id": request.headers.get(settings.chat_header) or None,
        "enterprise_id": request.headers.get(settings.enterprise_header) or None,
        "workflow_name": workflow or path,
        "tags": tags(request) if callable(tags) else tags,
        "metadata": metadata(request) if callable(metadata) else metadata,
    }


def _finish(
    recorder: SessionRecorder, request: HttpRequest, response: HttpResponseBase, *, wait: bool
) -> Any:
    if response.status_code >= 500:
        error = getattr(request, _ERROR_ATTR, "") or f"HTTP {response.status_code}"
        return close_session(recorder, "failed", error, wait=wait)
    return close_session(recorder, "completed", wait=wait)


def _end(recorder: SessionRecorder, request: HttpRequest, response: HttpResponseBase, *, wait: bool) -> Any:
    """End the session at the response; a streamed one keeps it until its body has streamed."""
    if not is_stream(response):
        return _finish(recorder, request, response, wait=wait)

    def finish(exc: BaseException | None) -> None:
        if exc is None:
            _finish(recorder, request, response, wait=wait)
        else:
            close_session(recorder, *status_for(exc), wait=wait)

    stream_in_session(response, recorder, finish)
    return None


class Ag2LoggingMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        args = session_args(request)
        opened = open_session(**args, user=people.request_user(request)) if args is not None else None
        if opened is None:
            return self.get_response(request)
        recorder = opened[0]
        token = current_session.set(recorder)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            current_session.reset(token)
            close_session(recorder, *status_for(exc))
            raise
        current_session.reset(token)
        _end(recorder, request, response, wait=True)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        args = session_args(request)
        if args is not None:
            args["user"] = await people.arequest_user(request)
        opened = open_session(**args, wait=False) if args is not None else None
        if opened is None:
            return await get_response(request)
        recorder, started = opened
        token = current_session.set(recorder)
        # A cancelled request (the client went away) does not cancel its row writes.
        try:
            await db_thread.wait_async(started)
            response = await get_response(request)
        except BaseException as exc:
            current_session.reset(token)
            await db_thread.wait_async(close_session(recorder, *status_for(exc), wait=False))
            raise
        current_session.reset(token)
        ended = _end(recorder, request, response, wait=False)
        if ended is not None:
            await db_thread.wait_async(ended)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if current_session.get() is not None:
            setattr(request, _ERROR_ATTR, f"{type(exception).__name__}: {exception}")
