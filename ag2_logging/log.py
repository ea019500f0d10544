"""``logging`` integration: session context on every log record emitted inside a session.

    LOGGING = {
        "filters": {"ag2_session": {"()": "ag2_logging.log.SessionContextFilter"}},
        "handlers": {"console": {..., "filters": ["ag2_session"]}},
    }

Records then carry ``session_id``, ``chat_id``, ``workflow_name`` and ``enterprise_id``
(empty strings outside a session), for formatters such as ``%(session_id)s`` or JSON formatters.
"""

from __future__ import annotations

import logging

from ag2_logging.capture.context import get_current_recorder

FIELDS = ("session_id", "chat_id", "workflow_name", "enterprise_id")


class SessionContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        recorder = get_current_recorder()
        if recorder is None:
            for name in FIELDS:
                if not hasattr(record, name):
                    setattr(record, name, "")
            return True
        record.session_id = str(recorder.session_id)
        record.chat_id = recorder.chat_id
        record.workflow_name = recorder.workflow_name
        record.enterprise_id = recorder.enterprise_id
        return True
