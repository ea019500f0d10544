"""manage.py ag2_logging_export: send the summarized sessions not yet exported to OpenTelemetry."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging import export


class Command(BaseCommand):
    help = (
        "Send summarized sessions that were never exported (recorded while export was off or the "
        "collector down) to OpenTelemetry, oldest first; stops at the first failure and exits 1. "
        "Each session is sent once: safe to run repeatedly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="At most this many sessions.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, limit: int | None = None, **options: Any) -> None:
        if limit is not None and limit < 0:
            raise CommandError("--limit must be 0 or more.")
        if not export.enabled():
            raise CommandError(
                "AG2_LOGGING['OTEL'] is off: nothing is exported (see the README, OpenTelemetry)."
            )
        report = export.export_pending(limit=limit)
        waiting = len(export.pending())
        if options["json"]:
            self.stdout.write(json.dumps({**report.as_dict(), "waiting": waiting}))
        else:
            self.stdout.write(
                f"exported {len(report.exported)} session(s), skipped {report.skipped}; {waiting} waiting"
            )
        if report.failed:
            raise CommandError(f"stopped at {report.failed}; the rest waits for the next run")
