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
import threading
import uuid
from concurrent.futures import Future
from contextvars import Token
from types import TracebackType
from typing import Any

from ag2_logging import signals
from ag2_logging.capture import before_session, db_thread, heartbeat, runtime_log
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
    """Wait until every pending Session write has run, and the inline pipeline has finished what
    is due (sanitize, ingest and rollups of ended sessions; retries scheduled later excepted).

    For scripts and tests that read the rows right after a session (a process's exit waits on
    its own). ``timeout`` in seconds per stage; raises ``TimeoutError`` when the database thread
    does not answer in time. Not for an event loop (it blocks).
    """
    db_thread.drain(timeout)
    handoff.wait_idle(timeout)
    db_thread.drain(timeout)


def _json(obj: Any) -> str:
    return dumps(obj).decode()


# -- open / close ----------------------------------------------------------------------------


def open_session(
    chat_id: str | None = None,
    workflow_name: str | None = None,
    enterprise_id: str | None = None,
    *,
    wait: bool = True,
    parent_id: uuid.UUID | str | None = None,
) -> tuple[SessionRecorder, Future[None]] | None:
    """Start recording a session (journal, runtime log line, Session row); None when disabled."""
    settings = conf.resolved
    if not settings.enabled:
        return None
    for hook in before_session:
        hook()
    if parent_id is None:
        parent = current_session.get()
        parent_id = parent.session_id if parent is not None else None
    elif not isinstance(parent_id, uuid.UUID):
        parent_id = uuid.UUID(str(parent_id))
    recorder = SessionRecorder(
        settings=settings,
        chat_id=str(chat_id) if chat_id else uuid.uuid4().hex,
        workflow_name=str(workflow_name or ""),
        enterprise_id=str(enterprise_id or ""),
        parent_id=parent_id,
        spill=spill_line,  # lines the disk refuses go to the database thread
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
    recorder.finish(status, redact_text(error)[:10_000])
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
    if exc is None:
        return "completed", ""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return "cancelled", text
    return "failed", text


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
    """

    __slots__ = ("_recorder", "_token", "chat_id", "enterprise_id", "parent_id", "workflow_name")

    def __init__(
        self,
        chat_id: str | None = None,
        workflow_name: str | None = None,
        enterprise_id: str | None = None,
        *,
        parent_id: uuid.UUID | str | None = None,
    ) -> None:
        self.chat_id = chat_id
        self.workflow_name = workflow_name
        self.enterprise_id = enterprise_id
        self.parent_id = parent_id
        self._recorder: SessionRecorder | None = None
        self._token: Token[SessionRecorder | None] | None = None

    def __enter__(self) -> SessionRecorder | None:
        opened = open_session(self.chat_id, self.workflow_name, self.enterprise_id, parent_id=self.parent_id)
        if opened is None:
            return None
        self._recorder = opened[0]
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
        opened = open_session(
            self.chat_id, self.workflow_name, self.enterprise_id, wait=False, parent_id=self.parent_id
        )
        if opened is None:
            return None
        self._recorder, future = opened
        self._token = current_session.set(self._recorder)
        await asyncio.wrap_future(future)
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
            await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            pass  # the row is still written by the database thread

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
        self, chat_id: str | None = None, workflow_name: str | None = None, enterprise_id: str | None = None
    ) -> bool:
        """Open a session in the current context; True when logging started. Never raises."""
        try:
            opened = open_session(chat_id, workflow_name, enterprise_id)
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
        recorder = current_session.get()
        return recorder.session_id if recorder is not None else None

    def session_totals(self) -> dict[str, Any] | None:
        return session_totals()


_runtime_logger = AG2RuntimeLogger()


def get_ag2_runtime_logger() -> AG2RuntimeLogger:
    """The process's runtime logger: the replaced system's API.

    ``logger.start_session(chat_id, workflow_name, enterprise_id)`` returns True when a session
    started (False with logging off, or when it could not; it never raises), and
    ``logger.stop_session(status="completed", error="")`` ends the session this context started.
    Prefer ``ag2_logging_session`` in new code: it also ends the session on an exception.
    """
    return _runtime_logger


def session_totals() -> dict[str, Any] | None:
    """Live totals of the current session, or None outside one (or with logging off).

    A dict of ``events.SESSION_COUNTERS`` and ``events.PROCESS_COUNTERS``: counts of calls,
    errors, retries, unpriced calls, tokens (prompt, completion, cached, reasoning, total), tool
    calls and agent events; ``total_cost`` as a decimal string in dollars (calls without a
    known price are left out and counted in ``unpriced_calls``); ``redactions`` by kind; and
    ``session_id``. What the process counted so far, before ingest.

    Example: ``if (t := session_totals()) and Decimal(t["total_cost"]) > limit: ...``
    """
    recorder = current_session.get()
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
    recorder = current_session.get()
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
