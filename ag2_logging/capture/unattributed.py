"""Calls made outside any session: recorded in a journal of their own, warned about once."""

from __future__ import annotations

import logging
import os
import threading

from ag2_logging.capture.counters import stats
from ag2_logging.capture.recorder import UnattributedRecorder
from ag2_logging.conf import conf

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
