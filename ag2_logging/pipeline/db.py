"""Database habits of the app's own threads (the database thread and the pipeline thread)."""

from __future__ import annotations

import threading
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError

#: Failures worth another attempt later (the database or the network came back).
TRANSIENT = (OperationalError, InterfaceError, DatabaseError, ConnectionError, TimeoutError)
#: The names of the app's own threads start with this.
THREAD_PREFIX = "ag2_logging-"


def _immediate_on_our_threads(sender: Any, connection: Any, **kwargs: Any) -> None:
    """On SQLite, the app's own threads start their transactions with ``BEGIN IMMEDIATE``.

    SQLite's default ``BEGIN`` (deferred) takes the write lock only at the first write; when
    another connection wrote in between (the database thread and the pipeline thread write side
    by side, and other processes too), the upgrade fails at once with "database is locked"
    instead of waiting for the busy timeout. ``IMMEDIATE`` takes the lock up front, so writers
    take turns. Only connections opened by the app's threads are changed (Django connections
    are per thread), and a project that sets ``OPTIONS["transaction_mode"]`` keeps its choice.
    """
    if connection.vendor != "sqlite" or getattr(connection, "transaction_mode", "") is not None:
        return
    if threading.current_thread().name.startswith(THREAD_PREFIX):
        connection.transaction_mode = "IMMEDIATE"


def install() -> None:
    """Connect the habit above (from ``AppConfig.ready``; cheap, nothing is imported)."""
    from django.db.backends.signals import connection_created

    connection_created.connect(_immediate_on_our_threads, dispatch_uid="ag2_logging.sqlite_immediate")
