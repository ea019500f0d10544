"""manage.py ag2_logging_recover: ingest what crashes and outages left behind (idempotent)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging.recovery import recover_sessions


class Command(BaseCommand):
    help = (
        "Mark sessions whose process died as interrupted and ingest their journals; ingest journals the "
        "database or broker never got; roll up what is finished. Safe to run at any time, repeatedly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stale-after",
            type=float,
            help="Seconds without a heartbeat before a running session counts as dead "
            "(default: AG2_LOGGING['RECOVERY_AFTER_SECONDS']).",
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["stale_after"] is not None and options["stale_after"] < 0:
            raise CommandError("--stale-after must be >= 0")
        result = recover_sessions(stale_after=options["stale_after"])
        summary = result.as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.stdout.write(
                f"Interrupted {summary['interrupted']} sessions, ingested {summary['ingested']} finished ones "
                f"and {summary['orphan_journals']} journals without a row, read {summary['unattributed_files']} "
                f"unattributed journals, rolled up {summary['summarized']} sessions."
            )
        if result.failures:
            self.stderr.write(
                f"{len(result.failures)} item(s) could not be recovered: {result.failures[:10]}"
            )
