"""The app's own database thread ("ag2_logging-db"): Session rows written in order, off the caller.

A session's record lives in its journal first. The ``Session`` row is written on this thread, on
its own connection and outside the caller's transaction: a request that rolls back
(``ATOMIC_REQUESTS``) cannot erase the record of what it spent, and a sync ``with`` inside async
code never runs the ORM on the event loop. This module runs callables; the functions that touch
the ORM live with the pipeline (``ag2_logging.pipeline.handoff``) and are handed in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ag2_logging.capture.counters import stats
from ag2_logging.pipeline import db as db_habits

logger = logging.getLogger("ag2_logging.sessions")

#: How long a sync caller waits for the Session row before going on without it.
DB_WAIT_SECONDS = 30.0

_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _after_fork_in_child() -> None:
    # Threads do not survive fork (Celery prefork, gunicorn): start afresh in the child.
    global _executor
    _executor = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _db_executor() -> ThreadPoolExecutor:
    global _executor
    executor = _executor
    if executor is None:
        with _executor_lock:
            executor = _executor
            if executor is None:
                executor = _executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=db_habits.DB_THREAD_PREFIX
                )
    return executor


def in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _guarded(fn: Callable[..., Any], *args: Any) -> None:
    from django.db import close_old_connections

    try:
        close_old_connections()
        try:
            fn(*args)
        except Exception:
            stats.incr("db_failures")
            logger.exception("ag2_logging could not write to the database; the journal keeps the record")
        finally:
            close_old_connections()
    finally:
        db_habits.caller_job_done()


def submit_db(fn: Callable[..., Any], *args: Any) -> Future[None]:
    """Run ``fn(*args)`` on the app's database thread, in order, never raising. The pipeline
    thread gives way while such jobs are queued (``pipeline.db.give_way``)."""
    db_habits.caller_job_queued()
    try:
        future = _db_executor().submit(_guarded, fn, *args)
    except BaseException:  # not queued (the interpreter is shutting down)
        db_habits.caller_job_done()
        raise
    # A job cancelled before it ran (by its caller; ``wait_async`` never cancels one) never
    # reaches _guarded: it is no longer queued either.
    future.add_done_callback(_uncount_if_cancelled)
    return future


def _uncount_if_cancelled(future: Future[None]) -> None:
    if future.cancelled():
        db_habits.caller_job_done()


def wait(future: Future[None]) -> None:
    """Wait for ``future`` (at most ``DB_WAIT_SECONDS``), unless called on an event loop."""
    if in_event_loop():
        return
    try:
        future.result(timeout=DB_WAIT_SECONDS)
    except Exception:
        logger.warning("ag2_logging database thread did not answer within %ss", DB_WAIT_SECONDS)


async def wait_async(future: Future[None]) -> None:
    """Await ``future`` from an event loop. Shielded: a cancelled awaiting task gets its
    ``CancelledError`` while the job still runs (an unshielded ``asyncio.wrap_future`` would
    cancel the job itself, and with it a Session row write)."""
    await asyncio.shield(asyncio.wrap_future(future))


def drain(timeout: float = DB_WAIT_SECONDS) -> None:
    """Wait until everything submitted so far has run."""
    submit_db(lambda: None).result(timeout=timeout)
