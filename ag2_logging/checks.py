"""System checks ``ag2_logging.E0xx`` / ``W0xx`` / ``I0xx``: message, hint and id kept together.

Each id is used once. The README lists them all ("System checks").
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register

from ag2_logging.conf import JOURNAL_DIR_HINT, LOG_DIR_HINT, conf, reported_by_checks

PREFIX = "ag2_logging."


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable_dir(path: Path) -> bool:
    """True when this process can create files in ``path``, found by trying it: a probe file
    created and removed in ``path``, or, while ``path`` does not exist, a probe directory in its
    nearest existing ancestor (nothing is left behind). ``os.access`` is no answer: it says yes
    to root under ``/proc``, on a read-only mount or in sysfs."""
    try:
        existing = _nearest_existing(path)
        if not existing.is_dir():
            return False  # a regular file on the way: no directory can be made beneath it
        if existing == path:
            fd, probe = tempfile.mkstemp(prefix=".ag2-probe-", dir=path)
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".ag2-probe-", dir=existing))
    except OSError:
        return False
    return True


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    resolved = conf.reload(quiet=True)
    reported_by_checks(resolved)  # shown here: not logged again by this process
    messages: list[CheckMessage] = []
    for check_id, msg, hint in resolved.errors:
        messages.append(Error(msg, hint=hint, id=PREFIX + check_id))
    for check_id, msg, hint in resolved.warnings:
        messages.append(Warning(msg, hint=hint, id=PREFIX + check_id))
    messages += _storage_aliases(resolved)
    if resolved.enabled:
        for label, path, hint in (
            ("LOG_FILE directory", resolved.log_file.parent, LOG_DIR_HINT),
            ("JOURNAL_DIR", resolved.journal_dir, JOURNAL_DIR_HINT),
        ):
            if not _writable_dir(path):
                messages.append(
                    Error(
                        f"AG2 logging is on but its {label} {path} cannot be created or written.",
                        hint=hint,
                        id=PREFIX + "E004",
                    )
                )
        from ag2_logging.integrations import installed_generations

        if not installed_generations():
            messages.append(
                Warning(
                    "AG2 logging is on but neither AG2 generation is installed: nothing will be recorded.",
                    hint="Install django-ag2-logging[classic] (autogen 0.x) or django-ag2-logging[ag2] (ag2 1.x).",
                    id=PREFIX + "W005",
                )
            )
    return messages


def _storage_aliases(resolved: Any) -> list[CheckMessage]:
    from django.conf import settings

    aliases = getattr(settings, "STORAGES", None) or {}
    messages: list[CheckMessage] = []
    archive = resolved.journal_archive_storage
    if archive is not None and archive not in aliases:
        messages.append(
            Error(
                f"AG2_LOGGING['JOURNAL_ARCHIVE_STORAGE'] names the storage {archive!r}, which STORAGES lacks.",
                hint="Add it to settings.STORAGES, or set JOURNAL_ARCHIVE_STORAGE to None to delete old journals.",
                id=PREFIX + "E006",
            )
        )
    journals = resolved.journal_storage
    if journals is not None and journals not in aliases:
        messages.append(
            Error(
                f"AG2_LOGGING['JOURNAL_STORAGE'] names the storage {journals!r}, which STORAGES lacks.",
                hint=(
                    "Add it to settings.STORAGES (for example an S3 storage of django-storages shared by "
                    "every host), or set JOURNAL_STORAGE to None to keep journals on the writer's disk."
                ),
                id=PREFIX + "E007",
            )
        )
    return messages


@register("ag2_logging", deploy=True)
def check_pipeline_mode(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Which pipeline mode is in effect (``manage.py check --deploy``, and the doctor).

    An info message, so it is a deploy check: printed on every ``runserver`` and ``migrate`` it
    would read as a problem to whoever sees "System check identified some issues"."""
    from ag2_logging.pipeline import modes

    resolved = conf.quietly()
    if not resolved.enabled:  # a deploy check: a production that forgot the switch sees it
        return [
            Info(
                f"AG2 logging is off ({resolved.enabled_source}): nothing is recorded.",
                hint="Set AG2_RUNTIME_LOGGING=true (or AG2_LOGGING['ENABLED'] = True) to record sessions.",
                id=PREFIX + "I001",
            )
        ]
    if not resolved.ingest_on_session_end:
        return []
    return [
        Info(
            f"AG2 logging pipeline: {modes.describe_mode()}.",
            hint="Set AG2_LOGGING['PIPELINE'] to 'inline' or 'celery' to choose; see the README, Deployment.",
            id=PREFIX + "I001",
        )
    ]


@register("ag2_logging")
def check_pipeline_broker(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Celery mode with a broker that does not answer (a 1-second connection attempt)."""
    from ag2_logging.pipeline import modes

    resolved = conf.quietly()
    if not resolved.enabled or not resolved.ingest_on_session_end or modes.effective_mode() != modes.CELERY:
        return []
    ok, detail = modes.broker_status(timeout=1.0)
    if ok:
        return []
    return [
        Warning(
            f"The AG2 logging pipeline runs on Celery but its broker cannot be reached ({detail}).",
            hint=(
                "Start the broker, fix CELERY_BROKER_URL, or set AG2_LOGGING['PIPELINE'] = 'inline'. "
                "Until then each session's chain runs in the writing process. "
                "manage.py ag2_logging_doctor checks the whole pipeline."
            ),
            id=PREFIX + "W006",
        )
    ]


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@register("ag2_logging")
def check_otel(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """OpenTelemetry export switched on without its packages (E008), or with nowhere to send
    (W007: no global tracer provider at check time and no ``OTEL_ENDPOINT``)."""
    resolved = conf.quietly()
    if not resolved.otel:
        return []
    if not _importable("opentelemetry.sdk") or not _importable("opentelemetry.exporter.otlp.proto.http"):
        return [
            Error(
                "AG2_LOGGING['OTEL'] is on but the OpenTelemetry packages are not installed.",
                hint="Install django-ag2-logging[otel], or set AG2_LOGGING['OTEL'] = False.",
                id=PREFIX + "E008",
            )
        ]
    from opentelemetry import trace

    global_set = type(trace.get_tracer_provider()).__name__ not in {
        "ProxyTracerProvider",
        "NoOpTracerProvider",
    }
    if resolved.otel_endpoint or global_set:
        return []
    return [
        Warning(
            "AG2_LOGGING['OTEL'] is on but no OpenTelemetry destination is known: sessions wait unexported.",
            hint=(
                "Set AG2_LOGGING['OTEL_ENDPOINT'] to your collector's OTLP/HTTP URL (http://collector:4318), "
                "or set a global tracer provider before Django starts. Waiting sessions are sent later."
            ),
            id=PREFIX + "W007",
        )
    ]


@register("ag2_logging")
def check_live_transport(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The live dashboard is meant to be pushed over a WebSocket (``LIVE_TRANSPORT`` is
    ``"websocket"``, or ``"auto"`` in a project set up for Channels: ``ASGI_APPLICATION`` or
    ``CHANNEL_LAYERS``) but Django Channels is not installed (W008): the page polls instead."""
    from django.conf import settings

    wanted = conf.quietly().live_transport
    asgi = bool(getattr(settings, "ASGI_APPLICATION", None) or getattr(settings, "CHANNEL_LAYERS", None))
    if wanted == "polling" or (wanted == "auto" and not asgi) or _importable("channels"):
        return []
    return [
        Warning(
            "The live dashboard is set up to be pushed over a WebSocket, but Django Channels is not "
            "installed: the page polls its JSON endpoint instead.",
            hint=(
                "Install django-ag2-logging[live] and route ag2_logging.live.routing.websocket_urlpatterns "
                "in your ASGI application, or set AG2_LOGGING['LIVE_TRANSPORT'] = 'polling'."
            ),
            id=PREFIX + "W008",
        )
    ]
