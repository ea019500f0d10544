"""What the app could not do, counted per process (for health checks, the doctor and tests).

``stats["db_failures"]`` and the like read as a dict; ``stats.incr(name)`` adds under a lock,
since AG2 calls the hooks that count from several threads at once.
"""

from __future__ import annotations

import threading


class Counters(dict[str, int]):
    """A dict of counters whose ``incr`` is safe from any thread."""

    def __init__(self, *names: str) -> None:
        super().__init__(dict.fromkeys(names, 0))
        self._lock = threading.Lock()

    def incr(self, name: str, n: int = 1) -> None:
        with self._lock:
            self[name] = self.get(name, 0) + n


#: ``db_failures`` (writes the database thread could not make), ``hook_failures`` (AG2 hooks and
#: session API calls that failed inside the app), ``unattributed_calls`` (calls outside any session,
#: late ones included), ``late_events`` (events routed to a session that had ended).
stats = Counters("db_failures", "hook_failures", "unattributed_calls", "late_events")
