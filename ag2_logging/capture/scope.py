"""Opening and closing sessions: the ``with``/``async with`` scope and the runtime-logger API.

The journal gets the session's lines; the Session row is written by the app's database thread
(``capture.db_thread``) through the pipeline's hand-off (``pipeline.handoff``: the row at start,
the final row and the session's chain at the end). Sync callers outside an event loop wait for
the row (so it exists when ``with`` returns); callers on an event loop never block (``flush()``
waits, for tests and scripts).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from contextvars import Token
from decimal import Decimal
from types import TracebackType
from typing import Any

from ag2_logging import signals
from ag2_logging.capture import before_session, db_thread, heartbeat, people, runtime_log, unattributed
from ag2_logging.capture.context import bindings, current_session
from ag2_logging.capture.counters import stats
from ag2_logging.capture.recorder import SessionRecorder
from ag2_logging.capture.spill import spill_line
from ag2_logging.conf import conf
from ag2_logging.pipeline import handoff
from ag2_logging.pricing import cache as price_overrides
from ag2_logging.redaction import redact_text
from ag2_logging.serialize import dumps

logger = logging.getLogger("ag2_logging.sessions")

#: How long a sync caller waits for the Session row before going on without it.
DB_WAIT_SECONDS = db_thread.DB_WAIT_SECONDS
submit_db = db_thread.submit_db


def flush(timeout: float = DB_WAIT_SECONDS) -> None:
    """Wait until every pending Session write has run, the inline pipeline has finished what
    is due (sanitize, ingest and rollups of ended sessions; retries scheduled later excepted) and
    the budgets' ledgers hold the spend of every ended session.

    For scripts and tests that read the rows right after a session (a process's exit waits on
    its own). ``timeout`` in seconds per stage; raises ``TimeoutError`` when the database thread
    does not answer in time. Not for an event loop (it blocks).
    """
    db_thread.drain(timeout)
    handoff.wait_idle(timeout)
    db_thread.drain(timeout)
    # The budgets' ledgers: only when a budget was checked in this process (else not imported).
    enforce = sys.modules.get("ag2_logging.budgets.enforce")
    if enforce is not None:
        enforce.drain(timeout)


def _json(obj: Any) -> str:
    return dumps(obj).decode()


# -- open / close ----------------------------------------------------------------------------


def _parent_and_user(
    parent_id: uuid.UUID | str | None, user_id: str | None
) -> tuple[uuid.UUID | None, str | None]:
    """The parent session (the one recording here unless given) and the user (the parent's
    when it is the session recording here and none is given)."""
    current = current_session.get()
    if parent_id is None:
        parent_id = current.session_id if current is not None else None
    elif not isinstance(parent_id, uuid.UUID):
        parent_id = uuid.UUID(str(parent_id))
    if user_id is None and current is not None and current.session_id == parent_id:
        user_id = current.user_id
    return parent_id, user_id


def open_session(
    chat_id: str | None = None,
    workflow_name: str | None = None,
    enterprise_id: str | None = None,
    *,
    wait: bool = True,
    parent_id: uuid.UUID | str | None = None,
    user: Any = None,
    tags: Any = None,
    metadata: Any = None,
) -> tuple[SessionRecorder, Future[None]] | None:
    """Start recording a session (journal, runtime log line, Session row); None when disabled.
    ``user``, ``tags``, ``metadata``: see ``ag2_logging_session`` (a child gets its parent's user).
    """
    settings = conf.resolved
    if not settings.enabled:
        return None
    user_id, checked_tags, checked_metadata = people.checked(user, tags, metadata)
    for hook in before_session:
        hook()
    parent_id, user_id = _parent_and_user(parent_id, user_id)
    recorder = SessionRecorder(
        settings=settings,
        chat_id=str(chat_id) if chat_id else uuid.uuid4().hex,
        workflow_name=str(workflow_name or ""),
        enterprise_id=str(enterprise_id or ""),
        parent_id=parent_id,
        spill=spill_line,  # lines the disk refuses go to the database thread
        late=unattributed.record_late,  # calls that arrive after the end: unattributed, warned once
        user_id=user_id,
        tags=checked_tags,
        metadata=checked_metadata,
    )
    header = recorder.header()
    if price_overrides.is_stale():
        # Loaded on the database thread, before this session's row, so its calls see them.
        db_thread.submit_db(price_overrides.refresh_if_stale)
    runtime_log.write(
        f"Started new session with Session ID: {recorder.session_id}",
        "# AG2 SESSION START: " + _json({"event_type": "session_start", "session_info": header}),
    )
    heartbeat.live[recorder.session_id] = recorder
    heartbeat.ensure_started(handoff.beat)
    handoff.ensure_started()
    future = db_thread.submit_db(handoff.persist_start, header)
    if wait:
        db_thread.wait(future)
    if signals.session_started.receivers:
        signals.session_started.send_robust(
            sender=SessionRecorder,
            session_id=recorder.session_id,
            chat_id=recorder.chat_id,
            workflow_name=recorder.workflow_name,
            enterprise_id=recorder.enterprise_id,
            parent_id=recorder.parent_id,
        )
    return recorder, future


def close_session(
    recorder: SessionRecorder, status: str, error: str = "", *, wait: bool = True
) -> Future[None]:
    """End a session: closing journal line, runtime log line, Session row, ingest."""
    if recorder.status != "running":
        done: Future[None] = Future()
        done.set_result(None)
        return done
    recorder.finish(status, redact_text(error, recorder.totals.redactions)[:10_000])
    heartbeat.live.pop(recorder.session_id, None)
    bindings.release(recorder)
    header = recorder.header()
    totals = recorder.totals.as_dict()
    end = {
        "status": status,
        "error": recorder.error,
        "ended_at": recorder.ended_at.isoformat() if recorder.ended_at else None,
        "totals": totals,
    }
    runtime_log.write(
        "# AG2 SESSION END: "
        + _json(
            {
                "event_type": "session_end",
                "session_id": header["session_id"],
                "chat_id": header["chat_id"],
                "workflow_name": header["workflow_name"],
                "enterprise_id": header["enterprise_id"],
                "status": status,
                "totals": totals,
            }
        )
    )
    future = db_thread.submit_db(handoff.persist_end, header, end)
    # Queued after the row the caller waits for, not before it: the live counters' write is a
    # second transaction (on SQLite, behind the same write lock) that the caller need not wait on.
    heartbeat.hand_over_ended()
    if wait:
        db_thread.wait(future)
    if signals.session_finished.receivers:
        signals.session_finished.send_robust(
            sender=SessionRecorder,
            session_id=recorder.session_id,
            status=status,
            error=recorder.error,
            totals=totals,
        )
    return future


def status_for(exc: BaseException | None) -> tuple[str, str]:
    """``(status, error text)`` for a block that ended with ``exc`` (None: it returned).

    ``completed``; ``cancelled`` for ``CancelledError``, ``KeyboardInterrupt`` and
    ``GeneratorExit`` (a generator or stream closed before its last item); ``retried`` for
    Celery's ``Retry`` (the attempt asked for another); ``failed`` for anything else.
    """
    if exc is None:
        return "completed", ""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | GeneratorExit):
        return "cancelled", text
    if _is_celery_retry(exc):
        return "retried", text
    if getattr(exc, "session_status", None) == "blocked":  # budgets.BudgetExceeded
        return "blocked", text
    return "failed", text


def _is_celery_retry(exc: BaseException) -> bool:
    # Only a process that imported Celery can raise its Retry: no import here (start-up cost).
    exceptions = sys.modules.get("celery.exceptions")
    retry = getattr(exceptions, "Retry", None) if exceptions is not None else None
    return retry is not None and isinstance(exc, retry)


def running(recorder: SessionRecorder | None) -> SessionRecorder | None:
    """``recorder`` if its session is still recording, else None (ended, or none)."""
    return recorder if recorder is not None and not recorder.ended else None


#: ``finish(exc)``: ends a session handed over to work that runs in steps (None: completed).
Finish = Callable[[BaseException | None], None]


def _finisher(recorder: SessionRecorder, wait: bool) -> Finish:
    def finish(exc: BaseException | None) -> None:
        # A sync stream may end on an event loop's thread (ASGI): never block the loop there.
        close_session(recorder, *status_for(exc), wait=wait and not _on_event_loop())

    return finish


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# -- public scope ----------------------------------------------------------------------------


class ag2_logging_session:
    """Record everything AG2 does inside the block as one session.

    ``with ag2_logging_session(chat_id, workflow_name, enterprise_id) as session:`` and the same
    with ``async with`` (a plain ``with`` around ``await`` works too). Ids are strings (a
    missing ``chat_id`` is generated; each is cut to 255 characters on the row); ``parent_id``
    (a session UUID) makes this session a child, which otherwise is the session the block runs
    in, if any. ``session`` is the recorder (``session.session_id``, live ``session.totals``:
    tokens as counts, cost as a ``Decimal`` in dollars), or None when logging is off.

    The session ends ``completed``, ``failed`` (an exception, re-raised) or ``cancelled``
    (``CancelledError`` / ``KeyboardInterrupt``). Nothing here raises into your code: a full
    disk or an unreachable database is counted and recorded later (see the README, Durability).

    Example::

        with ag2_logging_session("c1", workflow_name="nightly", enterprise_id="acme"):
            user_proxy.initiate_chat(assistant, message="...")

    ``user`` (a user object, or its primary key) is recorded as ``Session.user``; ``tags`` (a list
    of up to ``capture.people.MAX_TAGS`` strings of up to ``MAX_TAG_LENGTH`` characters) and
    ``metadata`` (a JSON object of up to ``MAX_METADATA_BYTES`` bytes, redacted before it is
    written) describe the session in the reports. They are checked here: ``TypeError`` /
    ``ValueError`` before anything is recorded.
    """

    __slots__ = (
        "_recorder",
        "_token",
        "budget",
        "chat_id",
        "enterprise_id",
        "metadata",
        "parent_id",
        "tags",
        "user",
        "workflow_name",
    )

    def __init__(
        self,
        chat_id: str | None = None,
        workflow_name: str | None = None,
        enterprise_id: str | None = None,
        *,
        parent_id: uuid.UUID | str | None = None,
        budget: Decimal | None = None,
        user: Any = None,
        tags: list[str] | tuple[str, ...] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.chat_id = chat_id
        self.workflow_name = workflow_name
        self.enterprise_id = enterprise_id
        self.parent_id = parent_id
        people.user_key(user)  # a wrong type raises here, not at the block's start
        self.user = user
        self.tags = people.check_tags(tags)
        self.metadata = people.check_metadata(metadata)
        #: A per-session cost limit in USD (``block``): see ``ag2_logging.budgets``.
        self.budget = budget
        self._recorder: SessionRecorder | None = None
        self._token: Token[SessionRecorder | None] | None = None

    def __enter__(self) -> SessionRecorder | None:
        opened = self._open(wait=True)
        if opened is None:
            return None
        self._recorder = opened[0]
        self._recorder.budget_limit = self.budget
        self._token = current_session.set(self._recorder)
        return self._recorder

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        recorder = self._recorder
        if recorder is None:
            return
        self._reset()
        close_session(recorder, *status_for(exc))

    async def __aenter__(self) -> SessionRecorder | None:
        opened = self._open(wait=False)
        if opened is None:
            return None
        self._recorder, future = opened
        self._recorder.budget_limit = self.budget
        self._token = current_session.set(self._recorder)
        try:
            await db_thread.wait_async(future)
        except BaseException as exc:
            # Cancelled while the row was being written: ``async with`` calls no __aexit__ when
            # __aenter__ raises, so the session ends here (the row is still written).
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self._recorder

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        recorder = self._recorder
        if recorder is None:
            return
        self._reset()
        future = close_session(recorder, *status_for(exc), wait=False)
        try:
            await db_thread.wait_async(future)
        except asyncio.CancelledError:
            pass  # the row is still written by the database thread

    def detached(self, *, wait: bool = True) -> tuple[SessionRecorder, Finish] | None:
        """Open the session without binding it here: ``(recorder, finish)``, None when off.

        For work that runs in steps (``streams.iterate``): the caller binds the recorder where
        the work runs and calls ``finish(exc)`` once at its end (``exc`` None: completed).
        ``wait=False`` on an event loop (the rows are written without blocking).
        """
        opened = self._open(wait=wait)
        if opened is None:
            return None
        opened[0].budget_limit = self.budget
        return opened[0], _finisher(opened[0], wait)

    def hand_over(self, *, wait: bool = True) -> tuple[SessionRecorder, Finish] | None:
        """Unbind the session this block entered and leave it open: ``(recorder, finish)``.

        For a view that returns a streamed response: the body streams after the block, and
        ``finish(exc)`` ends the session when it has. The block's own exit then does nothing.
        None when no session was opened (logging off).
        """
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        self._reset()
        return recorder, _finisher(recorder, wait)

    def _open(self, *, wait: bool) -> tuple[SessionRecorder, Future[None]] | None:
        return open_session(
            self.chat_id,
            self.workflow_name,
            self.enterprise_id,
            wait=wait,
            parent_id=self.parent_id,
            user=self.user,
            tags=self.tags,
            metadata=self.metadata,
        )

    def _reset(self) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        try:
            current_session.reset(token)
        except ValueError:
            # Exited in another context than it was entered in (a different task): clear ours.
            current_session.set(None)


class AG2RuntimeLogger:
    """The seed system's API: ``start_session()`` / ``stop_session()`` around AG2 work."""

    def __init__(self) -> None:
        self._manual: list[tuple[SessionRecorder, Token[SessionRecorder | None]]] = []
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return conf.enabled

    def start_session(
        self,
        chat_id: str | None = None,
        workflow_name: str | None = None,
        enterprise_id: str | None = None,
        *,
        user: Any = None,
        tags: list[str] | tuple[str, ...] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Open a session in the current context; True when logging started.

        ``user``, ``tags`` and ``metadata`` as for ``ag2_logging_session``. Invalid ones raise
        ``TypeError`` / ``ValueError`` (a caller's mistake); nothing else raises.
        """
        people.user_key(user)
        tags, metadata = people.check_tags(tags), people.check_metadata(metadata)
        try:
            opened = open_session(
                chat_id, workflow_name, enterprise_id, user=user, tags=tags, metadata=metadata
            )
        except Exception:
            stats.incr("hook_failures")
            logger.exception("ag2_logging could not start a session")
            return False
        if opened is None:
            return False
        recorder = opened[0]
        with self._lock:
            self._manual.append((recorder, current_session.set(recorder)))
        return True

    def stop_session(self, status: str = "completed", error: str = "") -> None:
        """End the session this context started with ``start_session()``. Never raises."""
        current = current_session.get()
        with self._lock:
            index = next((i for i, (rec, _) in enumerate(self._manual) if rec is current), None)
            if index is None:
                if not self._manual:
                    return
                index = len(self._manual) - 1
            recorder, token = self._manual.pop(index)
        try:
            current_session.reset(token)
        except ValueError:
            current_session.set(None)
        try:
            close_session(recorder, status, error)
        except Exception:
            stats.incr("hook_failures")
            logger.exception("ag2_logging could not stop session %s", recorder.session_id)

    @property
    def current_session_id(self) -> uuid.UUID | None:
        """The id of the session recording in this context (None outside one, or once it ended)."""
        return current_session_id()

    def session_totals(self) -> dict[str, Any] | None:
        return session_totals()


_runtime_logger = AG2RuntimeLogger()


def get_ag2_runtime_logger() -> AG2RuntimeLogger:
    """The process's runtime logger: the replaced system's API.

    ``logger.start_session(chat_id, workflow_name, enterprise_id, user=..., tags=[...],
    metadata={...})`` returns True when a session
    started (False with logging off, or when it could not; it never raises), and
    ``logger.stop_session(status="completed", error="")`` ends the session this context started.
    Prefer ``ag2_logging_session`` in new code: it also ends the session on an exception.
    """
    return _runtime_logger


def session_totals() -> dict[str, Any] | None:
    """Live totals of the current session, or None outside one (or once it ended, or with logging off).

    A dict of ``events.SESSION_COUNTERS`` and ``events.PROCESS_COUNTERS``: counts of calls,
    errors, retries, unpriced calls, tokens (prompt, completion, cached, reasoning, total), tool
    calls and agent events; ``total_cost`` as a decimal string in dollars (calls without a
    known price are left out and counted in ``unpriced_calls``); ``redactions`` by kind; and
    ``session_id``. What the process counted so far, before ingest.

    Example: ``if (t := session_totals()) and Decimal(t["total_cost"]) > limit: ...``
    """
    recorder = running(current_session.get())
    if recorder is None:
        return None
    with recorder._lock:
        totals = recorder.totals.as_dict()
    totals["session_id"] = str(recorder.session_id)
    return totals


def live_session(session_id: uuid.UUID | str) -> SessionRecorder | None:
    """The recorder of a session running in this process, by id (None when not running here)."""
    try:
        key = session_id if isinstance(session_id, uuid.UUID) else uuid.UUID(str(session_id))
    except ValueError:
        return None
    return heartbeat.live.get(key)


def is_enabled() -> bool:
    """Whether AG2 logging is on (``AG2_LOGGING["ENABLED"]`` / ``AG2_RUNTIME_LOGGING``)."""
    return conf.enabled


def current_session_id() -> uuid.UUID | None:
    """The id of the session recording in this context, or None: outside any session, and in a
    context that still names a session that has ended (a task or thread that outlived its block,
    ``stop_session()`` called from another thread)."""
    recorder = running(current_session.get())
    return recorder.session_id if recorder is not None else None


__all__ = [
    "AG2RuntimeLogger",
    "ag2_logging_session",
    "close_session",
    "current_session_id",
    "flush",
    "get_ag2_runtime_logger",
    "is_enabled",
    "live_session",
    "open_session",
    "session_totals",
]
