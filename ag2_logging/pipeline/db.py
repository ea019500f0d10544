"""Database habits of the app's own threads (the database thread and the pipeline thread)."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError

P = ParamSpec("P")
R = TypeVar("R")

#: Failures worth another attempt later (the database or the network came back).
TRANSIENT = (OperationalError, InterfaceError, DatabaseError, ConnectionError, TimeoutError)
#: The names of the app's own threads start with this.
THREAD_PREFIX = "ag2_logging-"
#: The database thread's name starts with this (``capture.db_thread``).
DB_THREAD_PREFIX = THREAD_PREFIX + "db"
#: The pipeline thread's name (``pipeline.handoff``).
PIPELINE_THREAD_PREFIX = THREAD_PREFIX + "pipeline"


def _immediate_on_our_threads(sender: Any, connection: Any, **kwargs: Any) -> None:
    """On SQLite, the app's own threads start their transactions with ``BEGIN IMMEDIATE``.

    SQLite's default ``BEGIN`` (deferred) takes the write lock only at the first write; when
    another connection wrote in between (the database thread and the pipeline thread write side
    by side, and other processes too), the upgrade fails at once with "database is locked"
    instead of waiting for the busy timeout. ``IMMEDIATE`` takes the lock up front, so writers
    take turns. Only connections opened by the app's threads are changed (Django connections
    are per thread), and a project that sets ``OPTIONS["transaction_mode"]`` keeps its choice.
    """
    if connection.vendor != "sqlite":
        return
    name = threading.current_thread().name
    if not name.startswith(THREAD_PREFIX):
        return
    if getattr(connection, "transaction_mode", "") is None:
        connection.transaction_mode = "IMMEDIATE"
    if name.startswith(PIPELINE_THREAD_PREFIX):
        _no_commit_flush_in_wal(connection)


def _no_commit_flush_in_wal(connection: Any) -> None:
    """The pipeline thread's commits skip the WAL's fsync (``synchronous = NORMAL``) when the
    database is in WAL mode, as its ingest does on PostgreSQL (``synchronous_commit = off``).

    Each step of a chain is a small commit (lease, sanitized, published, summarized), and with
    ``FULL`` each waited for a flush of the disk while holding SQLite's single write lock, which
    the callers' Session rows then waited for. In WAL mode ``NORMAL`` keeps the database
    consistent; a power cut can only take back the last commits, and every one of them is a step
    that marks itself done on the session's row together with its work, which recovery runs again
    from the journal. In SQLite's other journal modes the setting is left alone.
    """
    raw = connection.connection
    mode = raw.execute("PRAGMA journal_mode").fetchone()
    if mode and str(mode[0]).lower() == "wal":
        raw.execute("PRAGMA synchronous = NORMAL")


def install() -> None:
    """Connect the habit above (from ``AppConfig.ready``; cheap, nothing is imported)."""
    from django.db.backends.signals import connection_created

    connection_created.connect(_immediate_on_our_threads, dispatch_uid="ag2_logging.sqlite_immediate")


# -- callers first ------------------------------------------------------------------------------
#
# A caller leaving ``with ag2_logging_session(...)`` waits for its Session row, written on the
# database thread. The pipeline thread (inline mode) writes in the same process at the same time:
# on SQLite it holds the single write lock, and SQLite's own busy handler then sleeps in steps of
# up to 100 ms, so the caller woke long after the lock was free (p99 ~88 ms against ~20 ms with
# Celery); on other databases the two threads share the GIL, and the database thread waited for
# it after every round trip. So the pipeline thread gives way: before each step it waits while the
# database thread has work (``give_way``), and the database thread's row writes take SQLite's lock
# the moment it is free (``take_lock_promptly``).

_callers = 0
_callers_done = threading.Condition()
#: How long the pipeline thread waits for the database thread at most before each step (the
#: database thread's jobs are single-row writes; a longer wait means it is stuck, and the
#: pipeline goes on).
GIVE_WAY_SECONDS = 0.25
#: How often a database-thread row write tries SQLite's write lock again (for as long as the
#: connection's ``timeout`` option says, as SQLite's busy handler would).
LOCK_POLL_SECONDS = 0.0005


def _after_fork_in_child() -> None:
    # The parent's queued jobs belong to its database thread, which the child does not have (a
    # count carried over would never fall, and the child's pipeline would wait before every query).
    global _callers, _callers_done
    _callers = 0
    _callers_done = threading.Condition()


os.register_at_fork(after_in_child=_after_fork_in_child)


def caller_job_queued() -> None:
    """A database-thread job was submitted (``capture.db_thread``)."""
    global _callers
    with _callers_done:
        _callers += 1


def caller_job_done() -> None:
    """A database-thread job finished, whatever its outcome."""
    global _callers
    with _callers_done:
        _callers -= 1
        if _callers <= 0:
            _callers = 0
            _callers_done.notify_all()


def give_way(timeout: float | None = None) -> None:
    """Wait (at most ``timeout`` seconds, default ``GIVE_WAY_SECONDS``) until the database thread
    has nothing queued: called by
    the pipeline thread between steps, outside any transaction. On the database thread itself
    (Celery's eager mode runs the chain there) it returns at once."""
    if not _callers or threading.current_thread().name.startswith(DB_THREAD_PREFIX):
        return
    with _callers_done:
        _callers_done.wait_for(lambda: _callers == 0, GIVE_WAY_SECONDS if timeout is None else timeout)


def give_way_before_queries() -> contextlib.AbstractContextManager[Any]:
    """For the block, every query of this thread first gives way (``give_way``) while the
    database thread has work: on SQLite only outside a transaction (inside one, this thread holds
    the write lock the database thread waits for), on other databases before any query. Costs a
    check of one integer per query when there is nothing to wait for."""
    from django.db import connections

    stack = contextlib.ExitStack()
    for connection in connections.all(initialized_only=False):
        stack.enter_context(connection.execute_wrapper(_giving_way))
    return stack


def _giving_way(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    if _callers:
        connection = context["connection"]
        if connection.vendor != "sqlite" or not connection.in_atomic_block:
            give_way()
    return execute(sql, params, many, context)


def database_busy(exc: BaseException) -> bool:
    """SQLite's single writer was taken by another connection ("database is locked")."""
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


def take_lock_promptly(fn: Callable[P, R]) -> Callable[P, R]:
    """On SQLite, run ``fn`` (a database-thread write that can run again: its transaction either
    committed or left nothing; it must not run other work, such as a session's chain, whose
    writes would then fail at once on a taken lock) with SQLite's busy handler off, retrying every
    ``LOCK_POLL_SECONDS`` while another writer holds the lock, for the connection's ``timeout``
    option (5 s by default) at most; other databases run it as it is."""

    @functools.wraps(fn)
    def promptly(*args: P.args, **kwargs: P.kwargs) -> R:
        from django.db import connection

        if connection.vendor != "sqlite" or connection.in_atomic_block:
            return fn(*args, **kwargs)
        connection.ensure_connection()
        timeout_ms = int(float(connection.settings_dict.get("OPTIONS", {}).get("timeout", 5)) * 1000)
        deadline = time.monotonic() + timeout_ms / 1000
        connection.connection.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    return fn(*args, **kwargs)
                except OperationalError as exc:
                    if not database_busy(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(LOCK_POLL_SECONDS)
        finally:
            if connection.connection is not None:
                connection.connection.execute(f"PRAGMA busy_timeout = {timeout_ms}")

    return promptly


#: Attempts of a transaction the database ended to break a deadlock (``retry_deadlocks``).
DEADLOCK_ATTEMPTS = 5


def deadlocked(exc: BaseException) -> bool:
    """Did the database end this transaction to break a deadlock? MySQL and MariaDB error 1213
    (``ER_LOCK_DEADLOCK``), PostgreSQL SQLSTATE 40P01 (``deadlock_detected``)."""
    cause = exc.__cause__ or exc
    if getattr(cause, "sqlstate", None) == "40P01" or getattr(cause, "pgcode", None) == "40P01":
        return True
    args: tuple[Any, ...] = tuple(getattr(cause, "args", ()))
    return bool(args) and args[0] == 1213


def retry_deadlocks(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` (one whole transaction of the app's own, which takes its row locks in one
    order but may still meet another writer's locks in a cycle: InnoDB's next-key locks, a
    project's own transaction) again when the database chose it as a deadlock's victim, up to
    ``DEADLOCK_ATTEMPTS`` times, after a short random pause; the rolled-back attempt left
    nothing. Inside an outer transaction (which the deadlock ended too) the error propagates."""

    @functools.wraps(fn)
    def retried(*args: P.args, **kwargs: P.kwargs) -> R:
        import logging
        import random

        from django.db import connection

        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return fn(*args, **kwargs)
            except OperationalError as exc:
                if attempt == DEADLOCK_ATTEMPTS or not deadlocked(exc) or connection.in_atomic_block:
                    raise
                logging.getLogger("ag2_logging.pipeline").warning(
                    "ag2_logging: %s was ended by a deadlock (attempt %d of %d); trying again",
                    fn.__qualname__,
                    attempt,
                    DEADLOCK_ATTEMPTS,
                )
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    return retried
