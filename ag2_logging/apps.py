from __future__ import annotations

import sys
from typing import Any

from django.apps import AppConfig

#: Where the cached price overrides live.
_OVERRIDE_MODULES = ("ag2_logging.pricing.cache",)


def _invalidate_price_overrides(**kwargs: Any) -> None:
    """A ``ModelPrice`` was saved or deleted: the next session reloads the overrides.

    Only a process that has loaded them (logging on) has a cache to drop; looking the module up
    instead of importing it keeps start-up with logging off free of genai-prices."""
    for name in _OVERRIDE_MODULES:
        module = sys.modules.get(name)
        if module is not None:
            module.invalidate()


def _attach_before_fork(**kwargs: Any) -> None:
    """A Celery worker starts (in its main process, before the pool): AG2 is imported and attached
    now, so a prefork worker's children inherit it instead of each importing it (seconds of CPU
    and tens of MB per child)."""
    from ag2_logging.integrations import install_integrations

    install_integrations()


def _install_integrations() -> None:
    from ag2_logging.integrations import install_integrations_on_import

    install_integrations_on_import()


class Ag2LoggingConfig(AppConfig):
    name = "ag2_logging"
    verbose_name = "AG2 logging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from ag2_logging import checks  # noqa: F401 - registers the system checks
        from ag2_logging.conf import conf
        from ag2_logging.pipeline import db

        db.install()

        # A string sender: no import of the pricing code (and genai-prices) at start-up.
        for signal, uid in ((post_save, "saved"), (post_delete, "deleted")):
            signal.connect(
                _invalidate_price_overrides,
                sender="ag2_logging.ModelPrice",
                dispatch_uid=f"ag2_logging.prices.{uid}",
            )
        from ag2_logging import capture

        if _install_integrations not in capture.before_session:
            capture.before_session.append(_install_integrations)
        if conf.quietly().enabled:
            self._start_recording()

    @staticmethod
    def _start_recording() -> None:
        """Logging on: what recording needs, imported now rather than on the first call."""
        from celery.signals import before_task_publish, worker_init

        from ag2_logging.capture import recorder
        from ag2_logging.decorators import add_session_header
        from ag2_logging.pricing import cache as price_overrides

        recorder.set_overrides_provider(price_overrides.current)
        # A task enqueued inside a session carries the session's ids (see @ag2_logged(join=True)).
        before_task_publish.connect(add_session_header, dispatch_uid="ag2_logging.add_session_header")
        worker_init.connect(_attach_before_fork, dispatch_uid="ag2_logging.attach_before_fork")
        # Attached as soon as the project imports AG2, before it builds its agents, so AG2 reports
        # agents, wrappers and clients to us as they are created; a process that never imports
        # AG2 (migrate, check) does not pay for importing it. No queries here.
        from ag2_logging.integrations import install_integrations_on_import

        install_integrations_on_import()
