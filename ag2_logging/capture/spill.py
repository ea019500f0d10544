"""When the disk refuses a journal line (full, read-only), the database takes it instead.

The recorder calls ``spill_line`` (injected by ``capture.scope.open_session``, so the recorder imports
neither this module's database side nor ``sessions``) with the line it could not write. Lines
wait in a bounded queue and are stored as ``SpilledEvent`` rows by the app's database thread, in
batches and in order: a spill submitted before the session's closing work (``_persist_end``,
the ingest it starts) is stored before it runs. Ingest reads them after the journal file.

Only when both fail is an event dropped: the queue is full (``MAX_PENDING_SPILLS``) or the
database refuses the rows. The recorder counts it in ``dropped_events``.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

logger = logging.getLogger("ag2_logging.spill")

#: Lines per process waiting for the database thread. A line is a few KB (bodies are cut to
#: MAX_BODY_CHARS), so this bounds the memory a failing disk can take to a few MB; past it, a
#: line is dropped and counted.
MAX_PENDING_SPILLS = 1_000
#: How long ``settle`` waits for pending spills at session end (their outcome goes in the totals).
SETTLE_SECONDS = 10.0

_Pending = tuple[uuid.UUID, int, bytes, Callable[[], None]]

_lock = threading.Lock()
_queue: list[_Pending] = []
_in_flight = 0  # queued or being stored
_drain: Future[None] | None = None  # the batch not started yet


def _after_fork_in_child() -> None:
    # The database thread does not survive fork; neither do lines queued for it.
    global _lock, _in_flight, _drain
    _lock = threading.Lock()
    _queue.clear()
    _in_flight = 0
    _drain = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def spill_line(
    session_id: uuid.UUID, seq: int, data: bytes, on_fail: Callable[[], None]
) -> Future[None] | None:
    """Queue one journal line for the database; None when the queue is full (drop it).

    ``on_fail`` is called on the database thread if the row cannot be stored. The returned
    future is done once the line's batch has been handled (stored or failed).
    """
    global _in_flight, _drain
    from ag2_logging.capture.db_thread import submit_db

    with _lock:
        if _in_flight >= MAX_PENDING_SPILLS:
            return None
        _in_flight += 1
        _queue.append((session_id, seq, data, on_fail))
        if _drain is None:
            _drain = submit_db(_store_batch)
        return _drain


def _store_batch() -> None:
    """Store every queued line (on the database thread, in one transaction)."""
    global _in_flight, _drain
    with _lock:
        batch = list(_queue)
        _queue.clear()
        _drain = None  # lines queued from now on go in the next batch
    try:
        _store(batch)
    except Exception:
        logger.exception("ag2_logging could not store %d journal line(s) in the database", len(batch))
        for *_, on_fail in batch:
            on_fail()
    finally:
        with _lock:
            _in_flight -= len(batch)


def _store(batch: list[_Pending]) -> None:
    from ag2_logging.pipeline.handoff import store_spilled

    store_spilled([(session_id, seq, data) for session_id, seq, data, _ in batch])


def settle(last: Future[Any] | None) -> None:
    """Wait until the spills up to ``last`` are handled, so a session's totals say how they went.

    Not on an event loop (it would stall it) nor on the database thread itself (it would wait
    for its own queue); there the totals may still count a spill that later fails.
    """
    if last is None or last.done() or threading.current_thread().name.startswith("ag2_logging-db"):
        return
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return
    try:
        last.result(timeout=SETTLE_SECONDS)
    except Exception:
        logger.warning("ag2_logging: spilled journal lines still pending after %ss", SETTLE_SECONDS)
