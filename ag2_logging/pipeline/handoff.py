"""Session end -> one chain, in the mode the deployment has.

* ``inline``: the chain runs in the writing process on the app's own background thread
  ("ag2_logging-pipeline"), never on the request thread or an event loop. A step that cannot
  read its journal is retried on the same thread after ``chain.retry_delay`` seconds, up to
  ``PIPELINE_MAX_RETRIES`` times, then the session is marked failed. At process exit the thread
  gets ``PIPELINE_DRAIN_SECONDS`` to finish what is due; what is left (and retries scheduled
  later) is picked up by recovery at the next start (``RECOVER_ON_START``) or by
  ``manage.py ag2_logging_recover``.
* ``celery``: the writer's thread runs the steps that need the writer's disk (sanitize, then
  publish to ``JOURNAL_STORAGE``), then sends ``ag2_logging.process_session`` to
  ``CELERY_QUEUE``; the worker runs the rest. With ``task_always_eager`` the whole chain runs
  at once on the app's database thread, as Celery's eager mode means.
"""

from __future__ import annotations

import atexit
import functools
import heapq
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ag2_logging.conf import conf
from ag2_logging.pipeline import modes
from ag2_logging.pipeline.db import (
    PIPELINE_THREAD_PREFIX,
    TRANSIENT,
    database_busy,
    give_way,
    give_way_before_queries,
    take_lock_promptly,
)

logger = logging.getLogger("ag2_logging.pipeline")

#: Counters for health checks and tests (guarded by the runner's lock).
stats: dict[str, int] = {"chains": 0, "retries": 0, "failures": 0, "enqueue_failures": 0}


class _Runner:
    """One daemon thread running jobs when they are due (a heap of (due, seq, job))."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._busy = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=PIPELINE_THREAD_PREFIX, daemon=True)
                self._thread.start()

    def submit(self, job: Callable[[], None], delay: float = 0.0) -> None:
        self.start()
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), job))
            self._cond.notify_all()

    def _next(self) -> Callable[[], None]:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    self._busy = True
                    job = heapq.heappop(self._heap)[2]
                    return self._with_due_chains(job, now) if isinstance(job, _Ended) else job
                self._busy = False
                self._cond.notify_all()
                self._cond.wait(None if not self._heap else self._heap[0][0] - now)

    def _with_due_chains(self, first: _Ended, now: float) -> Callable[[], None]:
        """``first`` and the other ended sessions already due (up to ``CHAIN_BATCH``), as one job
        that runs their chains together (lock held)."""
        due = [entry for entry in self._heap if entry[0] <= now and isinstance(entry[2], _Ended)]
        if not due:
            return first
        taken = sorted(due)[: CHAIN_BATCH - 1]
        picked = {id(entry) for entry in taken}
        self._heap = [entry for entry in self._heap if id(entry) not in picked]
        heapq.heapify(self._heap)
        ids = [first.session_id] + [entry[2].session_id for entry in taken]  # type: ignore[attr-defined]
        return functools.partial(_inline_many, ids)

    def _loop(self) -> None:
        from django.db import close_old_connections

        while True:
            job = self._next()
            give_way()
            close_old_connections()
            try:
                with give_way_before_queries():
                    job()
            except Exception:
                logger.exception("ag2_logging pipeline job failed")
            finally:
                close_old_connections()

    def wait_idle(self, timeout: float, *, horizon: float = 1.0) -> bool:
        """Wait until no job is running or due within ``horizon`` seconds (retries scheduled
        later do not count; ``horizon=timeout`` waits for everything that falls due in time)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy or (self._heap and self._heap[0][0] <= time.monotonic() + horizon):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + int(self._busy)


_runner = _Runner()
_recovered_on_start = False


def _after_fork_in_child() -> None:
    global _runner, _recovered_on_start
    _runner = _Runner()  # threads do not survive fork (Celery prefork, gunicorn)
    _recovered_on_start = False


os.register_at_fork(after_in_child=_after_fork_in_child)


def ensure_started() -> None:
    """Start the pipeline thread (at the first session, so it exists before exit), and once per
    process queue the recovery of this host's unfinished journals (``RECOVER_ON_START``)."""
    global _recovered_on_start
    _runner.start()
    if not _recovered_on_start and conf.resolved.recover_on_start:
        _recovered_on_start = True
        _runner.submit(_recover_local, delay=1.0)


def _recover_local() -> None:
    from ag2_logging.pipeline.recovery import recover_sessions

    result = recover_sessions(local=True, settled_only=True)
    if any(result.as_dict()[key] for key in ("interrupted", "ingested", "orphan_journals")):
        logger.info("ag2_logging recovered on start: %s", result.as_dict())


def wait_idle(timeout: float = 60.0) -> bool:
    """Wait for the inline pipeline to finish what is due (tests, scripts, shutdown)."""
    return _runner.wait_idle(timeout)


def _drain_at_exit() -> None:
    budget = conf.resolved.pipeline_drain_seconds
    if _runner.pending() and not _runner.wait_idle(budget, horizon=budget):
        logger.warning(
            "ag2_logging: %d pipeline job(s) still pending after %.0fs at exit; recovery will finish them",
            _runner.pending(),
            budget,
        )


atexit.register(_drain_at_exit)


# -- the Session row (run on the app's database thread) ---------------------------------------


@take_lock_promptly
def persist_start(header: dict[str, Any]) -> None:
    from ag2_logging.models import Session
    from ag2_logging.pipeline import people

    Session.objects.get_or_create(
        id=uuid.UUID(header["session_id"]),
        defaults={
            **people.start_fields(header),
            "chat_id": header["chat_id"],
            "workflow_name": header["workflow_name"],
            "enterprise_id": header["enterprise_id"],
            "parent_id": uuid.UUID(header["parent_id"]) if header["parent_id"] else None,
            "started_at": header["started_at"],
            "last_heartbeat_at": header["started_at"],
            "host": header["host"],
            "pid": header["pid"],
            "journal_path": header["journal_path"],
        },
    )


def persist_end(header: dict[str, Any], end: dict[str, Any]) -> None:
    from django.db import transaction

    session_id = _save_end(header, end)
    # One chain for the session (sanitize -> publish -> ingest -> summarize), once the row is in;
    # outside _save_end, so that a chain run here (Celery's eager mode) waits for SQLite's lock
    # with the connection's own busy timeout.
    transaction.on_commit(lambda: session_ended(session_id))


@take_lock_promptly
def _save_end(header: dict[str, Any], end: dict[str, Any]) -> uuid.UUID:
    from ag2_logging.models import Session
    from ag2_logging.querysets import SESSION_TOTALS

    totals = end["totals"]
    fields = {
        "status": end["status"],
        "error": end["error"],
        "ended_at": end["ended_at"],
        "dropped_events": totals["dropped_events"],
        "redactions": totals["redactions"],
        **{key: totals[key] for key in SESSION_TOTALS},
        # What this process counted, kept beside the totals ingest recomputes from the rows.
        "recorded_totals": {key: value for key, value in totals.items() if key != "redactions"},
    }
    session_id = uuid.UUID(header["session_id"])
    Session.objects.update_or_create(
        id=session_id,
        defaults=fields,
        create_defaults={
            **fields,
            "chat_id": header["chat_id"],
            "workflow_name": header["workflow_name"],
            "enterprise_id": header["enterprise_id"],
            "parent_id": uuid.UUID(header["parent_id"]) if header["parent_id"] else None,
            "started_at": header["started_at"],
            "host": header["host"],
            "pid": header["pid"],
            "journal_path": header["journal_path"],
        },
    )
    return session_id


def store_spilled(lines: list[tuple[uuid.UUID, int, bytes]]) -> None:
    """Journal lines the disk refused, as ``SpilledEvent`` rows (``capture.spill``, on the
    database thread); ingest reads them after the journal file."""
    from ag2_logging.models import SpilledEvent

    if lines:
        SpilledEvent.objects.bulk_create(
            [
                SpilledEvent(session_id=session_id, seq=seq, line=data.rstrip(b"\n").decode())
                for session_id, seq, data in lines
            ]
        )


@take_lock_promptly
def beat(session_ids: list[uuid.UUID]) -> None:
    """Touch the running sessions' rows (the heartbeat, on the database thread). Its own query:
    importing the recovery modules here cost the database thread, which session start and end
    wait on, a 35 ms pause and 4 MB at the first beat."""
    import datetime as dt

    from ag2_logging.models import Session

    if session_ids:
        Session.objects.filter(pk__in=session_ids, status=Session.Status.RUNNING).update(
            last_heartbeat_at=dt.datetime.now(dt.UTC)
        )


# -- session end -----------------------------------------------------------------------------


def session_ended(session_id: uuid.UUID | str) -> None:
    """Start the session's chain (called on the database thread once its final row is saved)."""
    if not conf.resolved.ingest_on_session_end:
        return
    if modes.effective_mode() == modes.CELERY:
        app = modes.project_celery_app()
        if app is not None and app.conf.get("task_always_eager"):
            enqueue_chain(session_id)  # eager: the whole chain, here and now
            return
        _runner.submit(lambda: _local_then_enqueue(session_id))
        return
    _runner.submit(_Ended(session_id), delay=CHAIN_DEBOUNCE_SECONDS)


#: Ended sessions whose chains run together at most (one ingest transaction, one COPY per table).
CHAIN_BATCH = 32
#: A session's chain starts this long after its end, so sessions ending close together (a busy
#: web process) are ingested as one batch and the pipeline thread wakes once for all of them.
CHAIN_DEBOUNCE_SECONDS = 0.05


class _Ended:
    """The first run of an ended session's chain (inline): ``_Runner`` takes such jobs that are
    due at the same time together (``_inline_many``)."""

    __slots__ = ("session_id",)

    def __init__(self, session_id: uuid.UUID | str) -> None:
        self.session_id = session_id

    def __call__(self) -> None:
        _inline(self.session_id, attempt=1)


def _inline_many(session_ids: list[uuid.UUID | str]) -> None:
    """The chains of several ended sessions: together (``chain.process_sessions``), then each
    one that did not finish on its own with ``_inline`` (its retries and failures its own)."""
    from ag2_logging.pipeline.chain import process_sessions

    try:
        done = set(process_sessions(session_ids))
    except Exception:  # the database, most likely: each chain again, with its own retries
        logger.debug("ag2_logging: a batch of %d chains failed", len(session_ids), exc_info=True)
        done = set()
    stats["chains"] += len(done)
    for session_id in session_ids:
        if uuid.UUID(str(session_id)) not in done:
            _inline(session_id, attempt=1)


def _inline(session_id: uuid.UUID | str, attempt: int, busy_waits: int = 0) -> None:
    from ag2_logging.pipeline.chain import mark_failed, process_session, record_attempt, retry_delay
    from ag2_logging.pipeline.store import JournalUnavailable

    stats["chains"] += 1
    try:
        result = process_session(session_id)
    except (JournalUnavailable, *TRANSIENT) as exc:
        if database_busy(exc) and busy_waits < BUSY_RETRIES:
            # SQLite's single writer was taken by another process: take turns, soon.
            _runner.submit(lambda: _inline(session_id, attempt, busy_waits + 1), delay=0.2)
            return
        if not isinstance(exc, JournalUnavailable):
            _quietly(record_attempt, session_id, f"{type(exc).__name__}: {exc}")
        if attempt > conf.resolved.pipeline_max_retries:
            stats["failures"] += 1
            _quietly(mark_failed, session_id, f"{exc} (after {attempt} attempts)")
            return
        stats["retries"] += 1
        _runner.submit(lambda: _inline(session_id, attempt + 1), delay=retry_delay(attempt))
        return
    if result.skipped.startswith("leased") and attempt <= conf.resolved.pipeline_max_retries:
        # Another chain (recovery in another process) holds it; look again later in case it died.
        _runner.submit(lambda: _inline(session_id, attempt + 1), delay=LEASE_RECHECK_SECONDS)


#: Quick retries of a chain that found SQLite's write lock taken ("database is locked").
BUSY_RETRIES = 50
#: When another chain holds a session's lease, look again this much later.
LEASE_RECHECK_SECONDS = 30.0


def _quietly(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # the database is what failed: the next attempt or recovery records it
        logger.exception("ag2_logging could not record a pipeline failure")


def _local_then_enqueue(session_id: uuid.UUID | str) -> None:
    from ag2_logging.pipeline.chain import retry_delay

    done = _local_steps(session_id, attempt=1)
    if not enqueue_chain(session_id):
        # No broker: the record still reaches the reports, from this process.
        _inline(session_id, attempt=1)
    elif not done:
        # The worker's ingest waits for the published copy (its own retries); publish it here.
        _runner.submit(lambda: _retry_local_steps(session_id, 2), delay=retry_delay(1))


def _local_steps(session_id: uuid.UUID | str, attempt: int) -> bool:
    """The steps that need this host's disk (sanitize, publish to ``JOURNAL_STORAGE``); the worker
    does the rest (and these again, if this process dies before they are done and the worker
    shares the disk). False when they failed (a storage or database fault), logged."""
    from ag2_logging.pipeline.chain import process_session

    try:
        process_session(session_id, until="publish")
    except Exception as exc:
        if attempt == 1:
            logger.exception(
                "ag2_logging could not sanitize/publish session %s before enqueueing", session_id
            )
        else:
            logger.warning(
                "ag2_logging could not sanitize/publish session %s (attempt %d): %s: %s",
                session_id,
                attempt,
                type(exc).__name__,
                exc,
            )
        return False
    return True


def _retry_local_steps(session_id: uuid.UUID | str, attempt: int) -> None:
    """``_local_steps`` again, ``retry_delay`` apart, at most ``PIPELINE_MAX_RETRIES`` times in
    all; past that, ``ag2_logging_recover --local`` on this host publishes what is left."""
    from ag2_logging.pipeline.chain import retry_delay

    if _local_steps(session_id, attempt):
        return
    if attempt >= conf.resolved.pipeline_max_retries:
        stats["failures"] += 1
        logger.error(
            "ag2_logging gave up publishing session %s after %d attempts; "
            "run manage.py ag2_logging_recover --local on this host",
            session_id,
            attempt,
        )
        return
    stats["retries"] += 1
    _runner.submit(lambda: _retry_local_steps(session_id, attempt + 1), delay=retry_delay(attempt))


PROCESS_SESSION_TASK = "ag2_logging.process_session"
_warned_enqueue = False


def enqueue_chain(session_id: uuid.UUID | str) -> bool:
    """Send the session's chain to Celery (``CELERY_QUEUE``) by task name, or, when the app runs
    tasks eagerly, run it here and now as Celery's eager mode means. False when the broker
    refused the message (counted and warned about once; the caller runs the chain itself)."""
    from celery import current_app

    app = modes.project_celery_app() or current_app
    if app.conf.get("task_always_eager"):
        _run_now(session_id)
        return True
    try:
        app.send_task(PROCESS_SESSION_TASK, args=(str(session_id),), queue=conf.resolved.celery_queue)
    except Exception as exc:
        stats["enqueue_failures"] += 1
        _warn_enqueue(exc)
        return False
    return True


def _run_now(session_id: uuid.UUID | str) -> None:
    """The chain in this thread; a journal no retry could bring back fails the session at once."""
    from ag2_logging.pipeline.chain import mark_failed, process_session
    from ag2_logging.pipeline.store import JournalUnavailable

    try:
        process_session(session_id)
    except (JournalUnavailable, *TRANSIENT) as exc:
        _quietly(mark_failed, session_id, f"{exc} (after 1 attempt(s))")


def _warn_enqueue(exc: BaseException) -> None:
    global _warned_enqueue
    if _warned_enqueue:
        return
    _warned_enqueue = True
    logger.warning(
        "ag2_logging could not send %s to Celery (%s: %s); running it in this process instead. "
        "Check the broker, or set AG2_LOGGING['PIPELINE'] = 'inline' (manage.py ag2_logging_doctor).",
        PROCESS_SESSION_TASK,
        type(exc).__name__,
        exc,
    )


def describe() -> dict[str, Any]:
    """The state of this process's pipeline (for the doctor)."""
    return {"mode": modes.effective_mode(), "pending_jobs": _runner.pending(), **stats}
