"""manage.py ag2_logging_recover: finish what crashes and outages left behind (idempotent)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging.pipeline.recovery import recover_sessions


class Command(BaseCommand):
    help = (
        "Mark sessions whose process died as interrupted and ingest their journals; ingest journals the "
        "database or broker never got; roll up what is finished. Safe to run at any time, repeatedly. "
        "Exits 1 when something could not be recovered."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stale-after",
            type=float,
            help="Seconds without a heartbeat before a running session counts as dead "
            "(default: AG2_LOGGING['RECOVERY_AFTER_SECONDS']).",
        )
        parser.add_argument(
            "--local",
            action="store_true",
            help="Only this host's sessions and journals: sanitize, publish (JOURNAL_STORAGE) and ingest "
            "what crashed processes on this host left (run it from cron on every host that writes journals).",
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["stale_after"] is not None and options["stale_after"] < 0:
            raise CommandError("--stale-after must be >= 0")
        result = recover_sessions(stale_after=options["stale_after"], local=options["local"])
        summary = result.as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.stdout.write(
                f"Interrupted {summary['interrupted']} sessions, ingested {summary['ingested']} finished ones "
                f"and {summary['orphan_journals']} journals without a row, read {summary['unattributed_files']} "
                f"unattributed journals, rolled up {summary['summarized']} sessions."
            )
            if result.waiting:
                self.stdout.write(
                    f"{len(result.waiting)} session(s) wait for their host to publish the journal "
                    "(run ag2_logging_recover --local there): " + ", ".join(result.waiting[:10])
                )
            if result.unreadable:
                self.stdout.write(f"{len(result.unreadable)} journal(s) have no readable session header:")
                for path in result.unreadable[:20]:
                    self.stdout.write(f"  {path}")
        if result.failures:
            raise CommandError(
                f"{len(result.failures)} item(s) could not be recovered (see the log and each session's "
                f"pipeline error in the admin): {', '.join(result.failures[:10])}"
            )
