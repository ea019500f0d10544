"""Heartbeats: a running session's row is touched every ``HEARTBEAT_SECONDS``, so recovery can
tell a live session from one whose process died on another host.

The same thread hands the live counters over every ``LIVE_SECONDS`` (the live dashboard): what
each running session of this process counted since the last hand-over and its newest calls
(``live_deltas``), stored by :func:`ag2_logging.live.counters.hand_over` (in Redis from this
thread when ``BUDGET_REDIS_URL`` is set, else in the database on the database thread). A session
that ended is handed over once more, so its last calls count in the per-minute figures too.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ag2_logging.capture.db_thread import submit_db
from ag2_logging.conf import conf
from ag2_logging.events import SESSION_COUNTERS

#: Running sessions of this process, by id (their recorders).
live: dict[uuid.UUID | None, Any] = {}
_thread: threading.Thread | None = None
_lock = threading.Lock()
#: What a heartbeat runs on the database thread (``pipeline.handoff.beat``, handed in by the pipeline).
_beat: Callable[[list[uuid.UUID]], None] | None = None
#: Sessions whose live counters were handed over: (recorder, the totals handed over last).
_handed: dict[uuid.UUID, tuple[Any, dict[str, Any]]] = {}
_hand_over_lock = threading.Lock()
#: Set to end the loop's sleep early (a session opened with a shorter interval configured).
_wake = threading.Event()
#: How long the loop is sleeping now.
_sleeping = [0.0]
#: The figures of a session's totals the live counters carry: the session's own counters.
LIVE_FIGURES = SESSION_COUNTERS


def _after_fork_in_child() -> None:
    global _thread
    _thread = None
    live.clear()
    _handed.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _step() -> float:
    """Seconds between two turns of the loop: the heartbeat's, or the live counters' if shorter."""
    every, live_every = conf.resolved.heartbeat_seconds, conf.resolved.live_seconds
    return min(every, live_every) if live_every > 0 else every


def _loop() -> None:
    next_beat = time.monotonic() + conf.resolved.heartbeat_seconds
    while True:
        _sleeping[0] = _step()
        _wake.wait(_sleeping[0])
        _wake.clear()
        every = conf.resolved.heartbeat_seconds
        if conf.resolved.live_seconds > 0:
            _hand_over_live()
        if time.monotonic() < next_beat:
            continue
        next_beat = time.monotonic() + every
        ids = [key for key in live if key is not None]
        if ids and _beat is not None:
            submit_db(_beat, ids)


def _track_new() -> None:
    """Track the sessions of ``live`` not tracked yet (a session that ends before the next
    hand-over is still handed over, from its recorder kept here)."""
    for key, recorder in list(live.items()):
        if key is not None and key not in _handed:
            _handed[key] = (recorder, dict.fromkeys(LIVE_FIGURES, 0))


def live_deltas() -> list[dict[str, Any]]:
    """What each session of this process counted since the last call, one dict per session that
    counted anything: ``session_id``, ``enterprise_id``, ``workflow_name``, ``running`` (False
    once it ended: this is its last hand-over), ``totals`` (``LIVE_FIGURES``: ints, and
    ``total_cost`` a Decimal in USD), ``delta`` (the same figures since the last hand-over) and
    ``calls`` (the newest calls since then, at most ``recorder.LATEST_KEPT``, oldest first, as
    :func:`call_summary` gives them)."""
    with _hand_over_lock:  # one caller at a time: a delta is handed over once
        return _deltas()


def _deltas() -> list[dict[str, Any]]:
    _track_new()
    found: list[dict[str, Any]] = []
    for key, (recorder, last) in list(_handed.items()):
        running = key in live
        with recorder._lock:
            totals = {name: getattr(recorder.totals, name) for name in LIVE_FIGURES}
            events = list(recorder.latest)
            recorder.latest.clear()
        if not running:
            _handed.pop(key, None)
        if totals == last:
            continue
        if running:
            _handed[key] = (recorder, totals)
        found.append(
            {
                "session_id": key,
                "enterprise_id": recorder.enterprise_id,
                "workflow_name": recorder.workflow_name,
                "running": running,
                "totals": totals,
                "delta": {name: totals[name] - last[name] for name in LIVE_FIGURES},
                "calls": [call_summary(event, key, recorder) for event in events],
            }
        )
    return found


#: What the live counters keep of a call: no bodies, no error text (``call_summary``).
CALL_FIELDS = (
    "id",
    "agent_name",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
    "price_status",
    "latency_ms",
    "status",
    "started_at",
    "ended_at",
)


def call_summary(event: dict[str, Any], session_id: uuid.UUID, recorder: Any) -> dict[str, Any]:
    """The live dashboard's line for one ``llm_call`` journal event: ``CALL_FIELDS`` (``cost`` a
    decimal string in USD or None, ``latency_ms`` a float or None, times ISO 8601) plus
    ``session_id`` (a string), ``enterprise_id`` and ``workflow_name``. Never a body or an error
    text: only names and figures the recorder already redacted or computed."""
    found = {name: event.get(name) for name in CALL_FIELDS}
    found["session_id"] = str(session_id)
    found["enterprise_id"] = recorder.enterprise_id
    found["workflow_name"] = recorder.workflow_name
    return found


def _hand_over_live() -> None:
    deltas = live_deltas()
    if deltas:
        from ag2_logging.live.counters import hand_over

        hand_over(deltas, submit_db)


def hand_over_ended() -> None:
    """Hand the live counters over now, through the database thread (a session just ended: the
    heartbeat may not turn again before the process exits, and the database thread's queue is
    run to its end at exit). Redis is written from that thread too, never from the caller's."""
    if conf.resolved.live_seconds <= 0:
        return
    deltas = live_deltas()
    if deltas:
        from ag2_logging.live.counters import write_quietly

        submit_db(write_quietly, deltas)


def ensure_started(beat: Callable[[list[uuid.UUID]], None]) -> None:
    """Start the heartbeat thread once per process; ``beat(ids)`` touches the rows."""
    global _thread, _beat
    _beat = beat
    if conf.resolved.live_seconds > 0:
        _track_new()
    if _thread is not None and _thread.is_alive():
        if _step() < _sleeping[0]:
            _wake.set()  # the settings changed (a test, a reload): do not wait out the old interval
        return
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="ag2_logging-heartbeat", daemon=True)
            _thread.start()
