"""Heartbeats: a running session's row is touched every ``HEARTBEAT_SECONDS``, so recovery can
tell a live session from one whose process died on another host."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ag2_logging.capture.db_thread import submit_db
from ag2_logging.conf import conf

#: Running sessions of this process, by id (their recorders).
live: dict[uuid.UUID | None, Any] = {}
_thread: threading.Thread | None = None
_lock = threading.Lock()
#: What a heartbeat runs on the database thread (``recovery.beat``, handed in by the pipeline).
_beat: Callable[[list[uuid.UUID]], None] | None = None


def _after_fork_in_child() -> None:
    global _thread
    _thread = None
    live.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _loop() -> None:
    while True:
        time.sleep(conf.resolved.heartbeat_seconds)
        ids = [key for key in live if key is not None]
        if ids and _beat is not None:
            submit_db(_beat, ids)


def ensure_started(beat: Callable[[list[uuid.UUID]], None]) -> None:
    """Start the heartbeat thread once per process; ``beat(ids)`` touches the rows."""
    global _thread, _beat
    _beat = beat
    if _thread is not None and _thread.is_alive():
        return
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="ag2_logging-heartbeat", daemon=True)
            _thread.start()
