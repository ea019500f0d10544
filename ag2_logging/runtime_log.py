"""The process-wide runtime log (``LOG_FILE``): a line when each session starts and ends.

The format is the seed system's (``Started new session with Session ID: ...`` and
``# AG2 SESSION START: {json}`` / ``# AG2 SESSION END: {json}``), so existing greps keep working.
"""

from __future__ import annotations

import logging
import threading

from ag2_logging.conf import conf

logger = logging.getLogger("ag2_logging.sessions")

_lock = threading.Lock()
_failed = False


def write(*lines: str) -> None:
    """Append lines to the runtime log; failures are logged once, never raised."""
    global _failed
    path = conf.resolved.log_file
    text = "".join(line + "\n" for line in lines)
    try:
        with _lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(text)
    except OSError:
        if not _failed:
            _failed = True
            logger.exception("ag2_logging cannot write the runtime log %s", path)
