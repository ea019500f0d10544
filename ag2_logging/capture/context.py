"""The current session, per thread and per asyncio task, and the fallback for threads without it."""

from __future__ import annotations

import logging
import threading
import weakref
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ag2_logging.capture.recorder import SessionRecorder

logger = logging.getLogger("ag2_logging.context")

#: The session recording in this context (thread or asyncio task).
current_session: ContextVar[SessionRecorder | None] = ContextVar("ag2_logging_session", default=None)


#: The session an AG2 callback was routed to while it runs, on threads without the ContextVar
#: (AG2's executor threads): what the log filter falls back to.
routed = threading.local()


def get_current_recorder() -> SessionRecorder | None:
    """The session of this context, else the one the AG2 callback running here was routed to."""
    recorder = current_session.get()
    if recorder is None:
        recorder = getattr(routed, "recorder", None)
    return recorder


class Bindings:
    """Objects AG2 hands back to us (agents, wrappers, clients) -> the live session that used them.

    AG2 classic calls ``log_chat_completion`` from an executor thread in every async chat; that
    thread does not carry the ContextVar. Objects seen inside a session are bound to it, so the
    call can still be attributed. Keys are ``id()`` values, which CPython reuses after an object
    dies: each binding keeps a weak reference (where the type allows one) and is dropped when its
    session ends. An object used by two live sessions at once is ambiguous and attributes nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, tuple[Any, list[SessionRecorder]]] = {}
        self._by_session: dict[int, set[int]] = {}

    def bind(self, obj: object, recorder: SessionRecorder) -> None:
        key = id(obj)
        entry = self._by_id.get(key)
        if entry is not None and recorder in entry[1] and self._alive(entry[0], obj):
            return  # the common case: already bound, no lock needed
        try:
            ref: Any = weakref.ref(obj)
        except TypeError:
            ref = None
        with self._lock:
            if recorder.status != "running":
                # An ended session (a late call in a context that still names it): its bindings
                # were released at its end, and a new one would never be.
                return
            entry = self._by_id.get(key)
            if entry is None or not self._alive(entry[0], obj):
                self._by_id[key] = (ref, [recorder])
            elif recorder not in entry[1]:
                entry[1].append(recorder)
                logger.warning(
                    "ag2_logging: %s is used by %d live sessions at once; calls it makes outside a session "
                    "context cannot be attributed and are recorded as unattributed.",
                    type(obj).__qualname__,
                    len(entry[1]),
                )
            self._by_session.setdefault(id(recorder), set()).add(key)

    @staticmethod
    def _alive(ref: Any, obj: object | None) -> bool:
        if ref is None:
            return True
        target = ref()
        return target is not None and (obj is None or target is obj)

    def lookup(self, obj: object | None = None, *, key: int | None = None) -> SessionRecorder | None:
        """The one live session bound to ``obj`` (or to the ``id()`` value ``key``), else None."""
        if obj is not None:
            key = id(obj)
        if key is None:
            return None
        entry = self._by_id.get(key)
        if entry is None:
            return None
        ref, recorders = entry
        if not self._alive(ref, obj):
            return None
        if len(recorders) == 1:
            return recorders[0]
        return None

    def release(self, recorder: SessionRecorder) -> None:
        with self._lock:
            for key in self._by_session.pop(id(recorder), ()):
                entry = self._by_id.get(key)
                if entry is None:
                    continue
                recorders = entry[1]
                if recorder in recorders:
                    recorders.remove(recorder)
                if not recorders:
                    del self._by_id[key]

    def __len__(self) -> int:
        return len(self._by_id)


bindings = Bindings()
