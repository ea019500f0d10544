"""manage.py ag2_logging_import PATH...: sanitize, summarize and ingest old AG2 logs (idempotent).

A file that is not an AG2 log (another SQLite database, random bytes, an empty or compressed
file, a directory, a FIFO, a symbolic link without ``--follow-symlinks``) is named on stderr with
the reason, nothing is written for it, the other files are still imported, and the command exits
non-zero (CommandError)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging.pipeline.legacy import ImportResult, NotAnAG2Log, import_log


class Command(BaseCommand):
    help = (
        "Import old AG2 logs as imported sessions: classic AG2's FileLogger runtime log, its SqliteLogger "
        "database, or the replaced system's log ('Started new session with Session ID: ...', '# MOZAIKS "
        "SESSION START: {...}'). Each file is sanitized first: a sanitized copy is written beside it "
        "(<name>.sanitized) unless --in-place rewrites the original. Importing a file again, or a copy of "
        "it, adds nothing. Anything that is not an AG2 log is refused (exit status 1)."
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
        parser.add_argument(
            "--follow-symlinks",
            action="store_true",
            help="Read a PATH that is a symbolic link (refused by default); --in-place then rewrites its target.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")
        parser.add_argument("--json", action="store_true", help="Print one JSON summary per file.")

    def handle(self, *args: Any, **options: Any) -> None:
        paths = [Path(p) for p in options["paths"]]
        refused = 0
        for path in paths:
            try:
                result = import_log(
                    path,
                    in_place=options["in_place"],
                    enterprise_id=options["enterprise"],
                    workflow_name=options["workflow"],
                    progress=not options["no_progress"],
                    stream=cast(IO[str], self.stderr._out),
                    follow_symlinks=options["follow_symlinks"],
                )
            except NotAnAG2Log as exc:
                refused += 1
                self.stderr.write(f"{path}: {exc}")
                continue
            self._report(path, result, as_json=options["json"])
        if refused:
            raise CommandError(f"{refused} of {len(paths)} file(s) not imported: see the reasons above")

    def _report(self, path: Path, result: ImportResult, *, as_json: bool) -> None:
        """One file's summary on stdout (a JSON object with ``--json``), its bad lines on stderr."""
        summary = result.summary
        if as_json:
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
            cost = "unknown" if summary["cost"] is None else summary["cost"]
            self.stdout.write(
                f"{path}: {result.format} log, {result.sessions} session(s) ({result.sessions_created} new), "
                f"{result.calls} call(s) ({result.calls_created} new), {summary['total_tokens']} tokens, "
                f"cost {cost} (AG2 said {summary['ag2_cost']}), {summary['unpriced_calls']} unpriced"
            )
            if result.sanitized_path:
                removed = ", ".join(f"{k}={v}" for k, v in sorted(result.redactions.items())) or "nothing"
                self.stdout.write(f"  sanitized ({removed} removed): {result.sanitized_path}")
        if result.bad_lines:
            shown = ", ".join(str(n) for n in result.bad_lines[:20])
            more = f" (+{len(result.bad_lines) - 20} more)" if len(result.bad_lines) > 20 else ""
            self.stderr.write(f"{path}: {len(result.bad_lines)} malformed line(s) skipped: {shown}{more}")
