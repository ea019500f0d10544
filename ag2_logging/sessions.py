"""Deprecated: split into :mod:`ag2_logging.capture` (``scope``, ``db_thread``, ``heartbeat``,
``unattributed``, ``counters``) and :mod:`ag2_logging.pipeline.handoff`; this alias goes in the
next release. The public API is importable from :mod:`ag2_logging` itself."""

from __future__ import annotations

import warnings
from typing import Any

from ag2_logging.capture import counters, db_thread, heartbeat, scope, unattributed

warnings.warn(
    "ag2_logging.sessions is deprecated: import from ag2_logging (the public API) or ag2_logging.capture",
    DeprecationWarning,
    stacklevel=2,
)

_HOMES = (scope, db_thread, unattributed, counters, heartbeat)


def __getattr__(name: str) -> Any:
    for module in _HOMES:
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module 'ag2_logging.sessions' has no attribute {name!r}")
