"""Which pipeline mode is in effect, and whether its broker can be reached.

The rule for ``PIPELINE="auto"`` (the README states it word for word): the chain goes to Celery
only when the project has created a Celery app (Celery's own fallback app, which exists only when
nobody created one, does not count) **and** that app has a broker configured (``broker_url`` in
its configuration, e.g. ``CELERY_BROKER_URL`` read with ``config_from_object(...,
namespace="CELERY")``) or runs tasks eagerly (``task_always_eager``). Otherwise it runs inline.
"""

from __future__ import annotations

import importlib
from typing import Any

from ag2_logging.conf import conf

INLINE = "inline"
CELERY = "celery"


def project_celery_app() -> Any | None:
    """The Celery app the project created, or None (Celery's fallback app does not count)."""
    try:
        state: Any = importlib.import_module("celery._state")
    except ImportError:  # pragma: no cover - celery is a dependency
        return None
    # The public ``current_app`` would create Celery's fallback app as a side effect; the list of
    # apps that exist does not. The fallback is the one named "default" with no fixups.
    apps = [app for app in list(state._apps) if not (app.main == "default" and isinstance(app.fixups, list))]
    if not apps:
        return None
    current = state._tls.current_app or state.default_app
    return current if current in apps else apps[-1]


def _has_broker(app: Any) -> bool:
    conf_ = app.conf
    return bool(conf_.get("broker_url") or conf_.get("task_always_eager"))


def effective_mode() -> str:
    """``"inline"`` or ``"celery"``: the mode the next session's chain will use."""
    mode = conf.resolved.pipeline
    if mode != "auto":
        return mode
    app = project_celery_app()
    return CELERY if app is not None and _has_broker(app) else INLINE


def describe_mode() -> str:
    """One sentence: the mode in effect and why (for the system check and the doctor)."""
    mode = conf.resolved.pipeline
    effective = effective_mode()
    if mode != "auto":
        return f"{effective} (AG2_LOGGING['PIPELINE'] = {mode!r})"
    app = project_celery_app()
    if app is None:
        return "inline (PIPELINE 'auto': the project has not created a Celery app)"
    if effective == INLINE:
        return f"inline (PIPELINE 'auto': Celery app {app.main!r} has no broker_url configured)"
    eager = " (tasks run eagerly)" if app.conf.get("task_always_eager") else ""
    return f"celery (PIPELINE 'auto': Celery app {app.main!r} with a broker{eager})"


def broker_status(timeout: float = 1.0) -> tuple[bool, str]:
    """``(reachable, detail)`` for the broker the Celery app would send the chain to."""
    app = project_celery_app()
    if app is None:
        from celery import current_app

        app = current_app
    if app.conf.get("task_always_eager"):
        return True, "tasks run eagerly (task_always_eager): no broker is used"
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=int(max(1, timeout))
            )
            return True, connection.as_uri()
    except Exception as exc:  # kombu raises many kinds (OperationalError, socket errors, ...)
        return False, f"{type(exc).__name__}: {exc}"


def worker_status(timeout: float = 2.0) -> tuple[bool, str]:
    """``(a worker answers, detail)``: Celery's ``inspect().ping()`` and the queues they consume."""
    app = project_celery_app()
    if app is None:
        return False, "no Celery app"
    queue = conf.resolved.celery_queue or app.conf.get("task_default_queue") or "celery"
    try:
        inspector = app.control.inspect(timeout=timeout)
        replies = inspector.active_queues() or {}
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    consuming = sorted(
        name for name, queues in replies.items() if any(q.get("name") == queue for q in queues)
    )
    if consuming:
        return True, f"queue {queue!r} consumed by {', '.join(consuming)}"
    if replies:
        return False, f"{len(replies)} worker(s) answered, none consumes queue {queue!r}"
    return False, f"no worker answered within {timeout:g}s"
