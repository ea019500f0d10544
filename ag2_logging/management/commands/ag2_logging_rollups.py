"""manage.py ag2_logging_rollups --rebuild: recompute the daily rollups from the raw rows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging.pipeline.rollups import rebuild_rollups


class Command(BaseCommand):
    help = "Daily rollups (cost reports read them). --rebuild recomputes them from every finished session."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="Delete and recompute every rollup row.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["rebuild"]:
            raise CommandError("Nothing to do: pass --rebuild to recompute the rollups.")
        rows = rebuild_rollups()
        self.stdout.write(f"Rebuilt {rows} rollup rows.")
