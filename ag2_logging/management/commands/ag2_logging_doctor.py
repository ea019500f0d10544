"""manage.py ag2_logging_doctor: is logging on, and does the record reach the reports here? One line
per check, the first saying whether logging is on or off and which setting or variable says so."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging.conf import conf

Check = tuple[str, bool | None, str]  # (what, ok: True / False / None = not applicable, detail)


def _enabled() -> Check:
    """Whether this process records: ok when on, not applicable (``--``) when off."""
    source = conf.resolved.enabled_source
    if conf.resolved.enabled:
        return "AG2 logging", True, f"on ({source})"
    return "AG2 logging", None, f"off ({source}): nothing is recorded in this process"


def _mode() -> Check:
    from ag2_logging.pipeline import modes

    return "pipeline mode", True, modes.describe_mode()


def _broker(timeout: float) -> Check:
    from ag2_logging.pipeline import modes

    if modes.effective_mode() != modes.CELERY:
        return "broker reachable", None, "not used (inline)"
    ok, detail = modes.broker_status(timeout=timeout)
    return "broker reachable", ok, detail


def _worker(timeout: float) -> Check:
    from ag2_logging.pipeline import modes

    app = modes.project_celery_app()
    if modes.effective_mode() != modes.CELERY:
        return "worker consuming the queue", None, "not used (inline)"
    if app is not None and app.conf.get("task_always_eager"):
        return "worker consuming the queue", None, "not used (task_always_eager)"
    ok, detail = modes.worker_status(timeout=timeout)
    return "worker consuming the queue", ok, detail


def _journal_dir() -> Check:
    from ag2_logging.checks import _writable_dir

    path = conf.resolved.journal_dir
    return "journal directory writable", _writable_dir(path), str(path)


def _journal_storage() -> Check:
    from ag2_logging.pipeline import store

    if conf.resolved.journal_storage is None:
        return "journal storage reachable", None, "not set: journals stay on each host's disk"
    ok, detail = store.reachable()
    return "journal storage reachable", ok, detail


def _pending() -> Check:
    from django.db.models import Q

    from ag2_logging.models import Session

    threshold = conf.resolved.pipeline_pending_alert_seconds
    missing = Session.objects.missing_from_reports(threshold)
    count = missing.count()
    failed = Session.objects.pipeline_failed().count()
    retrying = missing.filter(pipeline_failed_at__isnull=True).exclude(pipeline_error="").count()
    detail = (
        f"{count} finished session(s) not in the reports ({failed} failed, {retrying} retrying after an "
        f"error, {count - failed - retrying} pending for more than {threshold:g}s)"
    )
    reasons = list(missing.exclude(pipeline_error="").values_list("pipeline_error", flat=True)[:3])
    if reasons:
        detail += "; e.g. " + " | ".join(_whole_words(r, 300) for r in reasons)
    if count:
        detail += ". Fix the cause, then run manage.py ag2_logging_recover (--local on the writing host)."
    waiting = (
        Session.objects.finished()
        .filter(Q(ingested_at__isnull=True) | Q(summarized_at__isnull=True))
        .exclude(pk__in=missing.values("pk"))
        .count()
    )
    if waiting:
        detail += f" {waiting} more just ended and are on their way."
    return "sessions in the reports", count == 0, detail


def _whole_words(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, cut at a word's end with an ellipsis when longer."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " \u2026"


class Command(BaseCommand):
    help = (
        "Say whether AG2 logging is on (and which setting says so), and check that recorded sessions "
        "reach the reports: pipeline mode, broker, a worker on the queue, "
        "journal directory and storage, and finished sessions that are not in the reports. Exits 1 on a problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=2.0, help="Seconds to wait for the broker and workers."
        )
        parser.add_argument("--json", action="store_true", help="Print the checks as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        timeout = options["timeout"]
        probes: list[Callable[[], Check]] = [
            _enabled,
            _mode,
            lambda: _broker(timeout),
            lambda: _worker(timeout),
            _journal_dir,
            _journal_storage,
            _pending,
        ]
        checks = [probe() for probe in probes]
        if options["json"]:
            self.stdout.write(
                json.dumps([{"check": c, "ok": ok, "detail": d} for c, ok, d in checks], indent=2)
            )
        else:
            for what, ok, detail in checks:
                mark = {True: self.style.SUCCESS("ok  "), False: self.style.ERROR("FAIL"), None: "--  "}[ok]
                self.stdout.write(f"{mark} {what}: {detail}")
        failed = [what for what, ok, _ in checks if ok is False]
        if failed:
            raise CommandError("problems found: " + ", ".join(failed))
