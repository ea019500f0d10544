from __future__ import annotations

from django.apps import AppConfig


class Ag2LoggingConfig(AppConfig):
    name = "ag2_logging"
    verbose_name = "AG2 logging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import before_task_publish

        from ag2_logging import (
            checks,  # noqa: F401 - registers the system checks
            price_overrides,
            recorder,
        )
        from ag2_logging.conf import conf
        from ag2_logging.decorators import add_session_header

        price_overrides.connect()
        recorder.set_overrides_provider(price_overrides.current)

        # A task enqueued inside a session carries the session's ids (see @ag2_logged(join=True)).
        before_task_publish.connect(add_session_header, dispatch_uid="ag2_logging.add_session_header")

        if conf.enabled:
            # Installed now, before the project builds its agents, so AG2 reports agents, wrappers
            # and clients to us as they are created. No queries here.
            from ag2_logging.integrations import install_integrations

            install_integrations()
