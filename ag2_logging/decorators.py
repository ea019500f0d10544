"""``@ag2_logged``: one session around a view, a Celery task body or any callable.

Works on sync and async views, class-based view methods, Celery task functions (put it under
``@shared_task``: ``@shared_task`` / ``@ag2_logged`` / ``def task(...)``, also with
``bind=True``), plain functions, methods, class and static methods, ``functools.partial``
objects, callable objects, coroutine functions, generators and async generators: one wrapper per
kind (``_kind``), each of the same kind as what it wraps, with ``functools.wraps`` and no state on
the decorator. The session lasts as long as the work: a generator's from its first to its last
item, a view's streamed response until its body has streamed (``capture.streams``).

Where the ids come from, first match wins:

1. the decorator's arguments: a string, or a callable given the wrapped function's arguments;
2. the wrapped function's arguments ``enterprise_id`` / ``chat_id`` / ``workflow_name`` (by
   keyword or position, or bound in a ``functools.partial``);
3. the request's headers (``X-Enterprise-ID`` / ``X-Chat-ID``; ``ENTERPRISE_HEADER`` and
   ``CHAT_HEADER`` rename them) when the first argument (or the second, for methods) is a request;
4. with ``join=True`` inside a Celery task, the session that enqueued the task: its ids travel in
   the task's headers on a worker; run eagerly, the task runs where that session is current. The
   task's session becomes a child of it, and so does each retry of it;
5. a generated chat id.

The workflow name defaults to the qualified name of the function that runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar, overload

from asgiref.sync import iscoroutinefunction as marked_coroutine

from ag2_logging.capture import people
from ag2_logging.capture.context import current_session
from ag2_logging.capture.recorder import SessionRecorder
from ag2_logging.capture.scope import ag2_logging_session
from ag2_logging.capture.streams import AsyncSteps, Finish, Opener, is_stream, iterate, stream_in_session
from ag2_logging.conf import conf

F = TypeVar("F", bound=Callable[..., Any])
IdSource = str | Callable[..., Any] | None
#: Tags: a list of strings, or a callable taking the call's arguments that returns one.
TagSource = list[str] | tuple[str, ...] | Callable[..., Any] | None
#: Metadata: a JSON object, or a callable taking the call's arguments that returns one.
MetadataSource = dict[str, Any] | Callable[..., Any] | None
#: ``(Celery task id, the ids the attempt joined)`` of a task's session, or None.
Attempt = tuple[str, dict[str, Any] | None] | None
#: The arguments an id can be read from.
ID_NAMES = frozenset({"enterprise_id", "chat_id", "workflow_name"})

#: The Celery task header carrying the enqueuing session's ids.
CELERY_HEADER = "ag2_session"


def _request_in(args: tuple[Any, ...]) -> Any:
    for candidate in args[:2]:
        if hasattr(candidate, "headers") and hasattr(candidate, "META"):
            return candidate
    return None


def _celery_task() -> Any:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - celery is a dependency
        return None
    return current_task


def _celery_parent(task: Any) -> dict[str, Any] | None:
    """The ids the task joins: its ``ag2_session`` header, else (run eagerly, or called in-process)
    the session recording where it runs, which is the one that enqueued it."""
    request = task.request
    header = request.get(CELERY_HEADER) if hasattr(request, "get") else None
    if header is None:
        header = (getattr(request, "headers", None) or {}).get(CELERY_HEADER)
    if isinstance(header, dict):
        return header
    # apply() and always-eager delay() send no message, so before_task_publish never adds the
    # header: the task runs in the enqueuer's context instead (eager retries too, after the
    # attempt's session ended), where the enqueuing session is the current one.
    return _header_of(current_session.get())


def _header_of(recorder: SessionRecorder | None) -> dict[str, Any] | None:
    if recorder is None:
        return None
    header = {
        "session_id": str(recorder.session_id),
        "chat_id": recorder.chat_id,
        "workflow_name": recorder.workflow_name,
        "enterprise_id": recorder.enterprise_id,
    }
    if recorder.user_id is not None:
        header["user_id"] = recorder.user_id  # the task's session records the same user
    return header


def _unwrap_partial(fn: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """``(function, bound positional args, bound keywords)`` of a (nested) ``functools.partial``."""
    args: tuple[Any, ...] = ()
    keywords: dict[str, Any] = {}
    while isinstance(fn, functools.partial):
        args = fn.args + args
        keywords = {**fn.keywords, **keywords}
        fn = fn.func
    return fn, args, keywords


def _positions(fn: Callable[..., Any]) -> dict[str, int]:
    """Where ``enterprise_id`` / ``chat_id`` / ``workflow_name`` sit among positional parameters."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return {}
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return {p.name: i for i, p in enumerate(positional) if p.name in ID_NAMES}


def _bound_ids(fn: Any) -> dict[str, Any]:
    """Ids a ``functools.partial`` binds (as keywords or positionally): they count as arguments."""
    inner, args, keywords = _unwrap_partial(fn)
    if inner is fn:
        return {}
    positions = _positions(inner)
    bound = {name: args[i] for name, i in positions.items() if i < len(args)}
    bound.update({name: keywords[name] for name in ID_NAMES if name in keywords})
    return bound


def _name_of(fn: Any) -> str:
    """The default workflow name: the qualified name of what runs (a partial's function, a callable
    object's class)."""
    inner = _unwrap_partial(fn)[0]
    name = getattr(inner, "__qualname__", None)
    if not isinstance(name, str):
        name = type(inner).__qualname__
    return name


def _kind(fn: Any) -> str:
    """``coroutine``, ``asyncgen``, ``generator`` or ``sync``: what calling ``fn`` gives.

    Partials are seen through (``inspect`` does); for a callable object, its ``__call__``."""
    targets = [fn]
    if not inspect.isroutine(_unwrap_partial(fn)[0]):
        targets.append(getattr(_unwrap_partial(fn)[0], "__call__", None))  # noqa: B004
    for target in targets:
        if inspect.iscoroutinefunction(target) or marked_coroutine(target):
            return "coroutine"
        if inspect.isasyncgenfunction(target):
            return "asyncgen"
        if inspect.isgeneratorfunction(target):
            return "generator"
    return "sync"


class _Spec:
    """What one decorated callable needs to open its session (no per-call state)."""

    __slots__ = (
        "bound",
        "budget",
        "chat_id",
        "enterprise_id",
        "fn",
        "join",
        "metadata",
        "name",
        "positions",
        "tags",
        "workflow_name",
    )

    def __init__(
        self,
        fn: Any,
        workflow_name: IdSource,
        enterprise_id: IdSource,
        chat_id: IdSource,
        join: bool,
        budget: Decimal | None = None,
        tags: Any = None,
        metadata: Any = None,
    ):
        self.fn = fn
        self.budget = budget
        # Checked now when given as values (a mistake shows at import); callables at each call.
        self.tags = tags if callable(tags) else people.check_tags(tags)
        self.metadata = metadata if callable(metadata) else people.check_metadata(metadata)
        self.positions = _positions(fn)
        self.bound = _bound_ids(fn)
        self.name = _name_of(fn)
        self.workflow_name, self.enterprise_id, self.chat_id, self.join = (
            workflow_name,
            enterprise_id,
            chat_id,
            join,
        )

    def pick(
        self, source: IdSource, name: str, header: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if callable(source):
            return source(*args, **kwargs)
        if source is not None:
            return source
        value = kwargs.get(name)
        if value is None and name in self.positions and self.positions[name] < len(args):
            value = args[self.positions[name]]
        if value is None:
            value = self.bound.get(name)
        if value is not None:
            return value
        if header is not None:
            request = _request_in(args)
            if request is not None:
                return request.headers.get(header) or None
        return None

    def session(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], user: Any = None
    ) -> tuple[ag2_logging_session, Attempt]:
        """The session to open for one call, and the Celery attempt it records (join=True).
        ``user``: the request's user, read by the wrapper (sync or async)."""
        settings = conf.resolved
        enterprise = self.pick(self.enterprise_id, "enterprise_id", settings.enterprise_header, args, kwargs)
        chat = self.pick(self.chat_id, "chat_id", settings.chat_header, args, kwargs)
        workflow = self.pick(self.workflow_name, "workflow_name", None, args, kwargs)
        parent_id = None
        task = _celery_task() if self.join else None
        parent = _celery_parent(task) if task is not None else None
        if parent is not None:
            parent_id = parent.get("session_id")
            enterprise = enterprise if enterprise is not None else parent.get("enterprise_id")
            chat = chat if chat is not None else parent.get("chat_id")
            workflow = workflow if workflow is not None else parent.get("workflow_name")
            user = user if user is not None else parent.get("user_id")
        tags = self.tags(*args, **kwargs) if callable(self.tags) else self.tags
        metadata = self.metadata(*args, **kwargs) if callable(self.metadata) else self.metadata
        scope = ag2_logging_session(
            chat_id=None if chat is None else str(chat),
            workflow_name=str(workflow if workflow is not None else self.name),
            enterprise_id=None if enterprise is None else str(enterprise),
            parent_id=parent_id,
            budget=self.budget,
            user=user,
            tags=tags,
            metadata=metadata,
        )
        attempt = (str(getattr(task.request, "id", "") or ""), parent) if task is not None else None
        return scope, attempt


def _mark(recorder: SessionRecorder | None, attempt: Attempt) -> None:
    if recorder is not None and attempt is not None and attempt[0]:
        recorder.celery_attempt = attempt


def _sync_wrapper(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not conf.enabled:
            return fn(*args, **kwargs)
        scope, attempt = spec.session(args, kwargs, people.request_user(_request_in(args)))
        with scope as recorder:
            _mark(recorder, attempt)
            result = fn(*args, **kwargs)
            if recorder is not None and is_stream(result):
                # A streamed response: its body runs after this returns, in the session.
                handed = scope.hand_over()
                if handed is not None:
                    stream_in_session(result, *handed)
            return result

    return wrapper


def _async_wrapper(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not conf.enabled:
            return await fn(*args, **kwargs)
        scope, attempt = spec.session(args, kwargs, await people.arequest_user(_request_in(args)))
        async with scope as recorder:
            _mark(recorder, attempt)
            result = await fn(*args, **kwargs)
            if recorder is not None and is_stream(result):
                handed = scope.hand_over(wait=False)
                if handed is not None:
                    stream_in_session(result, *handed)
            return result

    return wrapper


def _opener(spec: _Spec, args: tuple[Any, ...], kwargs: dict[str, Any], *, wait: bool) -> Opener:
    """Opens the session at a generator's first step (None with logging off)."""

    def open_() -> tuple[SessionRecorder, Finish] | None:
        if not conf.enabled:
            return None
        # A generator's user is read here (sync); an async generator's is not (no sync ORM on
        # the event loop, and no await before its first step).
        user = people.request_user(_request_in(args)) if wait else None
        scope, attempt = spec.session(args, kwargs, user)
        opened = scope.detached(wait=wait)
        _mark(opened[0] if opened is not None else None, attempt)
        return opened

    return open_


def _generator_wrapper(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # A generator function still: the session spans the first to the last item.
        return (yield from iterate(fn(*args, **kwargs), _opener(spec, args, kwargs, wait=True)))

    return wrapper


def _asyncgen_wrapper(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        steps = AsyncSteps(fn(*args, **kwargs), _opener(spec, args, kwargs, wait=False))
        while True:
            try:
                item = await steps.next()
            except StopAsyncIteration:
                return
            try:
                steps.sent = yield item
            except BaseException as exc:
                await steps.thrown_in(exc)

    return wrapper


_WRAPPERS = {
    "sync": _sync_wrapper,
    "coroutine": _async_wrapper,
    "generator": _generator_wrapper,
    "asyncgen": _asyncgen_wrapper,
}


def _decorate(
    fn: Any,
    workflow_name: IdSource,
    enterprise_id: IdSource,
    chat_id: IdSource,
    join: bool,
    budget: Decimal | None = None,
    tags: Any = None,
    metadata: Any = None,
) -> Any:
    if isinstance(fn, classmethod | staticmethod):
        # Decorated above @classmethod / @staticmethod: wrap the function, keep the descriptor.
        return type(fn)(
            _decorate(fn.__func__, workflow_name, enterprise_id, chat_id, join, budget, tags, metadata)
        )
    spec = _Spec(fn, workflow_name, enterprise_id, chat_id, join, budget, tags, metadata)
    return _WRAPPERS[_kind(fn)](fn, spec)


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
    budget: Decimal | None = None,
    tags: TagSource = None,
    metadata: MetadataSource = None,
) -> Callable[[F], F]: ...


def ag2_logged(
    func: Callable[..., Any] | None = None,
    /,
    *,
    workflow_name: IdSource = None,
    enterprise_id: IdSource = None,
    chat_id: IdSource = None,
    join: bool = False,
    budget: Decimal | None = None,
    tags: TagSource = None,
    metadata: MetadataSource = None,
) -> Any:
    """Record everything AG2 does inside the decorated callable as one session.

    Works on any callable, bare (``@ag2_logged``) or with arguments, and behaves the same with
    logging on and off: functions, methods, classmethods and staticmethods (either side of the
    decorator), ``functools.partial`` objects, callable objects, coroutine functions (the wrapper
    is one too), generator and async generator functions (the wrapper is one too; the session
    lasts from the first to the last item, or until closed: ``cancelled``), views and Celery task
    bodies. A view's streamed response (``StreamingHttpResponse``) keeps the session open until
    its body has streamed.

    Each id is a string, or a callable taking the call's arguments, or None: then it is read
    from an argument of the same name (``chat_id=...``, positional too, or bound in a partial),
    from the request's ``ENTERPRISE_HEADER`` / ``CHAT_HEADER`` for views, and the workflow
    defaults to the qualified name of the function (a partial's function, a callable object's
    class); a missing chat id is generated. ``join=True`` on a Celery task joins the session
    that enqueued it (as its child, with its ids), the same whether the task runs on a worker
    or eagerly; a retried task's attempts are siblings under that session, and an attempt that
    retries ends ``retried``. The decorated callable's exceptions pass through unchanged (the
    session ends ``failed``). ``budget`` (a ``Decimal``, USD) is a per-session cost limit: the
    call that would pass it is not sent, ``ag2_logging.BudgetExceeded`` is raised and the session
    ends ``blocked``.

    On a view (a request among the first two arguments), the request's authenticated user is
    recorded as ``Session.user`` (with ``join=True``, the enqueuing session's user). ``tags`` (a
    list of strings) and ``metadata`` (a small JSON object, redacted before it is written) are
    values, checked when decorating, or callables taking the call's arguments, checked at each
    call (``TypeError`` / ``ValueError``: see ``ag2_logging_session``).

    Example::

        @ag2_logged(workflow_name="support_triage")
        async def triage(request, enterprise_id, chat_id): ...
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        wrapped: Callable[..., Any] = _decorate(
            fn, workflow_name, enterprise_id, chat_id, join, budget, tags, metadata
        )
        return wrapped

    if func is not None:
        return decorate(func)
    return decorate


def add_session_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``before_task_publish`` receiver: a task enqueued inside a session carries its ids.

    A retry (the same task id, published from inside the attempt's session) carries the ids the
    attempt joined, not the attempt's: attempts are siblings under the enqueuing session.
    """
    if headers is None:
        return
    recorder = current_session.get()
    attempt = recorder.celery_attempt if recorder is not None else None
    if attempt is not None and attempt[0] == headers.get("id"):
        if attempt[1] is None:
            headers.pop(CELERY_HEADER, None)
        else:
            headers[CELERY_HEADER] = attempt[1]
        return
    header = _header_of(recorder)
    if header is not None:
        headers[CELERY_HEADER] = header
