"""Calls made outside any session: recorded in a journal of their own, warned about once.

Calls routed to a session that has ended (an asyncio task or a thread that outlived the block,
``stop_session()`` called from another thread) come here too, marked ``late_of`` with the
session's id, and are warned about once per session.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from ag2_logging.capture.counters import stats
from ag2_logging.capture.recorder import SessionRecorder, UnattributedRecorder
from ag2_logging.conf import conf
from ag2_logging.events import Totals

logger = logging.getLogger("ag2_logging.sessions")

_unattributed: UnattributedRecorder | None = None
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _unattributed
    _unattributed = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def reset() -> None:
    """Forget this process's unattributed journal (after the settings changed, in tests)."""
    global _unattributed
    _unattributed = None


def get_unattributed_recorder() -> UnattributedRecorder:
    global _unattributed
    recorder = _unattributed
    if recorder is None:
        with _lock:
            recorder = _unattributed
            if recorder is None:
                recorder = _unattributed = UnattributedRecorder(conf.resolved)
    return recorder


def warn_unattributed(what: str) -> None:
    recorder = get_unattributed_recorder()
    stats.incr("unattributed_calls")
    if not recorder.warned:
        recorder.warned = True
        logger.warning(
            "ag2_logging recorded %s outside any session (unattributed, journal %s). Open a session with "
            "ag2_logging_session(...) or @ag2_logged around AG2 work to attribute it.",
            what,
            recorder.journal_path,
        )


def record_late(
    session: SessionRecorder, line: bytes, count: Callable[[Totals], None] | None, what: str
) -> None:
    """Record an event of a session that has ended as unattributed, marked ``late_of``.

    ``line`` is the serialized event without its ``seq`` (``SessionRecorder``'s ``Late`` hook);
    ``count`` adds it to the unattributed journal's totals. Warns once per session. Never raises
    (it runs inside AG2's callbacks); a failure is counted in ``stats["hook_failures"]``.
    """
    try:
        recorder = get_unattributed_recorder()
        marked = b'%b,"late_of":"%b"}' % (line[:-1], str(session.session_id).encode())
        recorder.append_counted(marked, count)
        stats.incr("late_events")
        if what in ("an LLM call", "a tool call"):
            stats.incr("unattributed_calls")
        if session.late_warned:
            return
        session.late_warned = True
        logger.warning(
            "ag2_logging recorded %s after its session %s (chat %r, workflow %r) had ended: it is "
            "unattributed (journal %s, marked late_of). Await the tasks and join the threads that do "
            "AG2 work before the session's block ends, or give them a session of their own.",
            what,
            session.session_id,
            session.chat_id,
            session.workflow_name,
            recorder.journal_path,
        )
    except Exception:
        stats.incr("hook_failures")
        logger.exception("ag2_logging could not record %s of ended session %s", what, session.session_id)
