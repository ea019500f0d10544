"""Database habits of the app's own threads (the database thread and the pipeline thread)."""

from __future__ import annotations

from django.db import DatabaseError, InterfaceError, OperationalError, connections, router

#: Failures worth another attempt later (the database or the network came back).
TRANSIENT = (OperationalError, InterfaceError, DatabaseError, ConnectionError, TimeoutError)


def prefer_immediate_transactions() -> None:
    """On SQLite, start this thread's transactions with ``BEGIN IMMEDIATE``.

    SQLite's default ``BEGIN`` (deferred) takes the write lock only at the first write; when
    another connection wrote in between (the database thread and the pipeline thread write side
    by side), the upgrade fails at once with "database is locked" instead of waiting for the busy
    timeout. ``IMMEDIATE`` takes the lock up front, so the threads take turns. Only the app's own
    threads' connections are changed (Django connections are per thread, and the mode is read
    again at each connect, so this runs at the start of each job); a project that sets
    ``OPTIONS["transaction_mode"]`` itself keeps its choice.
    """
    from ag2_logging.models import Session

    connection = connections[router.db_for_write(Session)]
    if connection.vendor != "sqlite":
        return
    connection.ensure_connection()
    if connection.transaction_mode is None:  # type: ignore[attr-defined]
        connection.transaction_mode = "IMMEDIATE"  # type: ignore[attr-defined]
