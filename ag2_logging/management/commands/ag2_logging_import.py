"""manage.py ag2_logging_import PATH...: sanitize, summarize and ingest old AG2 logs (idempotent)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging.pipeline.legacy import import_log


class Command(BaseCommand):
    help = (
        "Import old AG2 logs as imported sessions: classic AG2's FileLogger runtime log, its SqliteLogger "
        "database, or the replaced system's log ('Started new session with Session ID: ...', '# MOZAIKS "
        "SESSION START: {...}'). Each file is sanitized first: a sanitized copy is written beside it "
        "(<name>.sanitized) unless --in-place rewrites the original. Importing a file again adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="Log files or SqliteLogger databases.")
        parser.add_argument(
            "--in-place",
            action="store_true",
            help="Rewrite each original with its sanitized version instead of writing a copy beside it.",
        )
        parser.add_argument(
            "--enterprise", help="enterprise_id of the imported sessions (default: from the log)."
        )
        parser.add_argument(
            "--workflow", help="workflow_name of the imported sessions (default: from the log)."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")
        parser.add_argument("--json", action="store_true", help="Print one JSON summary per file.")

    def handle(self, *args: Any, **options: Any) -> None:
        paths = [Path(p) for p in options["paths"]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise CommandError(f"not a file: {', '.join(missing)}")
        for path in paths:
            result = import_log(
                path,
                in_place=options["in_place"],
                enterprise_id=options["enterprise"],
                workflow_name=options["workflow"],
                progress=not options["no_progress"],
                stream=cast(IO[str], self.stderr._out),
            )
            summary = result.summary
            if options["json"]:
                self.stdout.write(
                    json.dumps(
                        {
                            "path": result.path,
                            "format": result.format,
                            "sanitized_path": result.sanitized_path,
                            "sessions": result.sessions,
                            "sessions_created": result.sessions_created,
                            "calls": result.calls,
                            "calls_created": result.calls_created,
                            "redactions": result.redactions,
                            "bad_lines": result.bad_lines,
                            "summary": summary,
                        },
                        default=lambda o: str(o) if isinstance(o, Decimal) else repr(o),
                    )
                )
            else:
                self.stdout.write(
                    f"{path}: {result.format} log, {result.sessions} session(s) ({result.sessions_created} new), "
                    f"{result.calls} call(s) ({result.calls_created} new), {summary['total_tokens']} tokens, "
                    f"cost {summary['cost']} (AG2 said {summary['ag2_cost']}), "
                    f"{summary['unpriced_calls']} unpriced"
                )
                if result.sanitized_path:
                    removed = ", ".join(f"{k}={v}" for k, v in sorted(result.redactions.items())) or "nothing"
                    self.stdout.write(f"  sanitized ({removed} removed): {result.sanitized_path}")
            if result.bad_lines:
                shown = ", ".join(str(n) for n in result.bad_lines[:20])
                more = f" (+{len(result.bad_lines) - 20} more)" if len(result.bad_lines) > 20 else ""
                self.stderr.write(f"{path}: {len(result.bad_lines)} malformed line(s) skipped: {shown}{more}")
