"""Capture: what runs in the caller's process while AG2 works, and never the ORM.

``context`` (the current session, AG2 objects bound to it), ``scope`` (``ag2_logging_session``
and the runtime-logger API), ``recorder`` (one event -> redacted, priced, one journal line),
``journal`` (append-only files), ``runtime_log`` (the process-wide log people tail), ``spill``
(journal lines the disk refused, handed to the database thread), ``db_thread`` (the app's own
thread that writes Session rows), ``heartbeat``, ``unattributed``, ``counters``. (``ag2_logging.serialize``, shared with redaction
and the pipeline, turns AG2 objects into JSON.)
"""

from __future__ import annotations

from collections.abc import Callable

#: Run (in order) before each session opens. ``AppConfig.ready`` hands in the installer of the AG2
#: integrations here, so that capture never imports AG2 and logging turned on after start-up
#: (``override_settings``) still installs them. Each hook must be cheap once done.
before_session: list[Callable[[], None]] = []
