"""manage.py ag2_logging_prune: apply RETENTION_DAYS and JOURNAL_RETENTION_DAYS now."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging.conf import conf
from ag2_logging.management.progress import ProgressBar
from ag2_logging.pipeline.retention import apply_retention


class Command(BaseCommand):
    help = (
        "Delete finished sessions and their rows older than AG2_LOGGING['RETENTION_DAYS'] and journals "
        "older than JOURNAL_RETENTION_DAYS (archived first to JOURNAL_ARCHIVE_STORAGE); rollups are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="Sessions (or rows) per transaction (default 1000)."
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        settings = conf.resolved
        if settings.retention_days is None and settings.journal_retention_days is None:
            self.stdout.write(
                "Retention is off: AG2_LOGGING['RETENTION_DAYS'] and ['JOURNAL_RETENTION_DAYS'] are None."
            )
            return
        progress: Callable[[str], Callable[[int, int], None]] | None = None
        if options["verbosity"] > 0 and not options["json"]:
            stream = cast(TextIO, self.stderr._out)

            def progress(label: str) -> Callable[[int, int], None]:
                return ProgressBar(
                    f"{'checking' if options['dry_run'] else 'deleting'} {label}", stream=stream
                )

        result = apply_retention(
            dry_run=options["dry_run"], batch_size=options["batch_size"], progress=progress
        )
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        verb = "Would delete" if result.dry_run else "Deleted"
        if result.rows_cutoff is not None:
            self.stdout.write(
                f"{verb} {result.sessions} sessions, {result.llm_calls} LLM calls "
                f"({result.unattributed_calls} unattributed), {result.agent_events} agent events and "
                f"{result.tool_calls} tool calls that ended before {result.rows_cutoff:%Y-%m-%d %H:%M} UTC"
                + ("" if result.dry_run else f", in {result.batches} batches")
                + "; daily rollups are kept."
            )
            if result.summarized:
                self.stdout.write(
                    f"{'Would roll' if result.dry_run else 'Rolled'} up {result.summarized} sessions first."
                )
            if result.not_ingested:
                self.stdout.write(f"Kept {result.not_ingested} sessions whose journal is not ingested yet.")
        if result.journals_cutoff is not None:
            archived = f" ({result.archived} archived first)" if result.archived else ""
            self.stdout.write(
                f"{verb} {result.journals} journals{archived} of sessions that ended before "
                f"{result.journals_cutoff:%Y-%m-%d %H:%M} UTC; kept {result.journals_kept} "
                "(running, not ingested, or ended later)"
                + ("" if result.dry_run else f"; removed {result.directories} empty date directories")
                + "."
            )
            if result.archive_failures:
                self.stderr.write(
                    f"{result.archive_failures} journals could not be archived and were kept (see the log)."
                )
