"""``@ag2_logged``: one session around a view, a Celery task body or any function.

Works on sync and async views, class-based view methods, Celery task functions (put it under
``@shared_task``: ``@shared_task`` / ``@ag2_logged`` / ``def task(...)``, also with
``bind=True``) and plain sync or async functions. Follows the shape of Django's own view
decorators (``never_cache``): an ``iscoroutinefunction`` branch with an ``async def`` wrapper,
``functools.wraps``, and no state on the decorator.

Where the ids come from, first match wins:

1. the decorator's arguments: a string, or a callable given the wrapped function's arguments;
2. the wrapped function's keyword arguments ``enterprise_id`` / ``chat_id``;
3. the request's headers (``X-Enterprise-ID`` / ``X-Chat-ID``; ``ENTERPRISE_HEADER`` and
   ``CHAT_HEADER`` rename them) when the first argument (or the second, for methods) is a request;
4. with ``join=True`` inside a Celery task, the session that enqueued the task (its ids travel in
   the task's headers); the task's session becomes a child of it;
5. a generated chat id.

The workflow name defaults to the function's qualified name.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from ag2_logging.capture.scope import ag2_logging_session
from ag2_logging.conf import conf

F = TypeVar("F", bound=Callable[..., Any])
IdSource = str | Callable[..., Any] | None

#: The Celery task header carrying the enqueuing session's ids.
CELERY_HEADER = "ag2_session"


def _request_in(args: tuple[Any, ...]) -> Any:
    for candidate in args[:2]:
        if hasattr(candidate, "headers") and hasattr(candidate, "META"):
            return candidate
    return None


def _celery_parent() -> dict[str, Any] | None:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - celery is a dependency
        return None
    task = current_task
    if task is None:
        return None
    request = task.request
    header = request.get(CELERY_HEADER) if hasattr(request, "get") else None
    if header is None:
        header = (getattr(request, "headers", None) or {}).get(CELERY_HEADER)
    return header if isinstance(header, dict) else None


def _positions(fn: Callable[..., Any]) -> dict[str, int]:
    """Where ``enterprise_id`` / ``chat_id`` / ``workflow_name`` sit among positional parameters."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return {}
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return {
        p.name: i for i, p in enumerate(positional) if p.name in {"enterprise_id", "chat_id", "workflow_name"}
    }


def _pick(
    source: IdSource,
    name: str,
    header: str | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    positions: dict[str, int],
) -> Any:
    if callable(source):
        return source(*args, **kwargs)
    if source is not None:
        return source
    value = kwargs.get(name)
    if value is None and name in positions and positions[name] < len(args):
        value = args[positions[name]]
    if value is not None:
        return value
    if header is not None:
        request = _request_in(args)
        if request is not None:
            return request.headers.get(header) or None
    return None


def _session_for(
    fn: Callable[..., Any],
    positions: dict[str, int],
    workflow_name: IdSource,
    enterprise_id: IdSource,
    chat_id: IdSource,
    join: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> ag2_logging_session:
    settings = conf.resolved
    enterprise = _pick(enterprise_id, "enterprise_id", settings.enterprise_header, args, kwargs, positions)
    chat = _pick(chat_id, "chat_id", settings.chat_header, args, kwargs, positions)
    workflow = _pick(workflow_name, "workflow_name", None, args, kwargs, positions)
    parent_id = None
    if join:
        parent = _celery_parent()
        if parent is not None:
            parent_id = parent.get("session_id")
            enterprise = enterprise if enterprise is not None else parent.get("enterprise_id")
            chat = chat if chat is not None else parent.get("chat_id")
            workflow = workflow if workflow is not None else parent.get("workflow_name")
    if workflow is None:
        workflow = fn.__qualname__
    return ag2_logging_session(
        chat_id=None if chat is None else str(chat),
        workflow_name=str(workflow),
        enterprise_id=None if enterprise is None else str(enterprise),
        parent_id=parent_id,
    )


@overload
def ag2_logged(func: F, /) -> F: ...


@overload
def ag2_logged(
    func: None = None,
    /,
    *,
    workflow_name: IdSource = None,
    enterprise_id: IdSource = None,
    chat_id: IdSource = None,
    join: bool = False,
) -> Callable[[F], F]: ...


def ag2_logged(
    func: Callable[..., Any] | None = None,
    /,
    *,
    workflow_name: IdSource = None,
    enterprise_id: IdSource = None,
    chat_id: IdSource = None,
    join: bool = False,
) -> Any:
    """Record everything AG2 does inside the decorated callable as one session.

    Works on sync and async functions, views and Celery task bodies, bare (``@ag2_logged``) or
    with arguments. Each id is a string, or a callable taking the call's arguments, or None:
    then it is read from a keyword argument of the same name (``chat_id=...``), from the
    request's ``ENTERPRISE_HEADER`` / ``CHAT_HEADER`` for views, and the workflow defaults to
    the function's name; a missing chat id is generated. ``join=True`` on a Celery task joins
    the session of the code that enqueued it (as its child) instead of opening an unrelated one.
    The decorated callable's exceptions pass through unchanged (the session ends ``failed``);
    with logging off it is called straight through.

    Example::

        @ag2_logged(workflow_name="support_triage")
        async def triage(request, enterprise_id, chat_id): ...
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        positions = _positions(fn)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if not conf.enabled:
                    return await fn(*args, **kwargs)
                async with _session_for(
                    fn, positions, workflow_name, enterprise_id, chat_id, join, args, kwargs
                ):
                    return await fn(*args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not conf.enabled:
                return fn(*args, **kwargs)
            with _session_for(fn, positions, workflow_name, enterprise_id, chat_id, join, args, kwargs):
                return fn(*args, **kwargs)

        return wrapper

    if func is not None:
        return decorate(func)
    return decorate


def add_session_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``before_task_publish`` receiver: a task enqueued inside a session carries its ids."""
    from ag2_logging.capture.context import current_session

    recorder = current_session.get()
    if recorder is None or headers is None:
        return
    headers[CELERY_HEADER] = {
        "session_id": str(recorder.session_id),
        "chat_id": recorder.chat_id,
        "workflow_name": recorder.workflow_name,
        "enterprise_id": recorder.enterprise_id,
    }
