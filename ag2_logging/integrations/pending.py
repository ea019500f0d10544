"""Generations whose attach waits for their integration module to finish loading.

An integration module imports its AG2 package at its top. When that import is the one the
on-import finder sees (``ag2_logging.integrations``), the module is still half-loaded: the
attach is noted here, and the module runs its own ``install()`` at its end.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_waiting: set[str] = set()


def wait(generation: str) -> None:
    with _lock:
        _waiting.add(generation)


def take(generation: str) -> bool:
    """True once if ``generation`` was waiting (it no longer is)."""
    with _lock:
        if generation in _waiting:
            _waiting.discard(generation)
            return True
        return False
