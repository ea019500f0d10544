"""``manage.py ag2_logging_report``: the admin's cost reports in a terminal or a pipe.

manage.py ag2_logging_report enterprise --start 2026-01-01 --end 2026-01-31
manage.py ag2_logging_report models --enterprise acme --format csv > models.csv
manage.py ag2_logging_report day --days 7 --format json
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging import reports
from ag2_logging.reports import csv_lines

REPORTS = ("overview", *reports.DIMENSIONS, "models")

#: Columns of the terminal table per report (all columns go to CSV and JSON).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "breakdown": ("sessions", "calls", "errors", "total_tokens", "cost", "unpriced_calls", "cost_share"),
    "overview": ("calls", "total_tokens", "cost", "unpriced_calls", "cost_share"),
    "models": (
        "calls",
        "sessions",
        "total_tokens",
        "cost",
        "cost_per_1k_tokens",
        "cost_per_session",
        "mean_latency_ms",
        "p95_latency_ms",
        "error_rate",
        "cache_hit_rate",
    ),
}
NUMERIC_PREFIXES = (
    "cost",
    "calls",
    "sessions",
    "errors",
    "total",
    "unpriced",
    "mean",
    "p95",
    "error",
    "cache",
    "retr",
)


class Command(BaseCommand):
    help = "Print the cost reports of the admin: totals per enterprise, workflow, model, agent or day, or the model comparison."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "report", nargs="?", default="overview", choices=REPORTS, help="default: overview"
        )
        parser.add_argument("--start", help="first UTC day, YYYY-MM-DD (default: 30 days before --end)")
        parser.add_argument("--end", help="last UTC day, YYYY-MM-DD, inclusive (default: today)")
        parser.add_argument("--days", type=int, help="the last N days up to --end (instead of --start)")
        parser.add_argument("--enterprise", default="", help="only this enterprise id")
        parser.add_argument("--workflow", default="", help="only this workflow")
        parser.add_argument(
            "--sort", default="-cost", help="models: column to sort by, '-' for descending (--sort=-calls)"
        )
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")

    def handle(self, *args: Any, **options: Any) -> None:
        flt, errors = reports.ReportFilter.from_params(_report_params(options))
        for error in errors:
            self.stderr.write(error)
        name: str = options["report"]
        header, rows, key_columns, kind = _report_table(name, flt, options["sort"])
        fmt = options["format"]
        if fmt == "csv":
            for line in csv_lines(header, rows):
                self.stdout.write(line, ending="")
            return
        records = reports.as_records(header, rows)
        if fmt == "json":
            self._write_json(name, flt, records)
            return
        self._write_table(name, flt, [*key_columns, *TABLE_COLUMNS[kind]], records)

    def _write_json(self, name: str, flt: reports.ReportFilter, records: list[dict[str, Any]]) -> None:
        """The report's rows and its filter as one indented JSON document."""
        self.stdout.write(
            json.dumps(
                {
                    "report": name,
                    "start": flt.start.isoformat(),
                    "end": flt.end.isoformat(),
                    "enterprise": flt.enterprise,
                    "workflow": flt.workflow,
                    "rows": records,
                },
                indent=2,
                default=str,
            )
        )

    def _write_table(
        self, name: str, flt: reports.ReportFilter, columns: list[str], records: list[dict[str, Any]]
    ) -> None:
        """A title line with the period and scope, the text table, and a note on unpriced calls."""
        scope = " ".join(
            part
            for part in (
                f"enterprise={flt.enterprise}" if flt.enterprise else "",
                f"workflow={flt.workflow}" if flt.workflow else "",
            )
            if part
        )
        self.stdout.write(f"{name}: {flt.start} .. {flt.end} (UTC){' ' + scope if scope else ''}")
        self.stdout.write(render_table(columns, ([_cell(r.get(c)) for c in columns] for r in records)))
        if any(r.get("unpriced_calls") for r in records):
            self.stdout.write("cost: priced calls only; unpriced calls have no cost (unknown), never 0.")


def _report_params(options: dict[str, Any]) -> dict[str, Any]:
    """The filter parameters of the options (``--days`` resolved); CommandError on a bad date."""
    params = {key: options[key] for key in ("start", "end", "enterprise", "workflow") if options.get(key)}
    if options.get("days") is not None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        end = reports._parse_date(options.get("end")) or reports._utc_today()
        params["start"] = (end - dt.timedelta(days=options["days"] - 1)).isoformat()
        params["end"] = end.isoformat()
    for key in ("start", "end"):
        if key in params and reports._parse_date(params[key]) is None:
            raise CommandError(f"--{key} must be a date, YYYY-MM-DD (got {params[key]!r})")
    return params


def _report_table(
    name: str, flt: reports.ReportFilter, sort: str
) -> tuple[list[str], Iterator[list[Any]], tuple[str, ...], str]:
    """Header, rows, key columns and kind (a ``TABLE_COLUMNS`` key) of the named report."""
    if name == "models":
        if sort.lstrip("-") not in reports.MODEL_COLUMNS:
            raise CommandError(f"--sort must be one of {', '.join(reports.MODEL_COLUMNS)}")
        header, rows = reports.model_table(reports.model_comparison(flt, sort=sort))
        return header, rows, ("model", "provider"), "models"
    if name == "overview":
        header, rows = reports.overview_table(reports.overview(flt))
        return header, rows, ("dimension", "value"), "overview"
    report = reports.breakdown(name, flt)
    header, rows = reports.breakdown_table(report)
    return header, rows, report.dimension.fields, "breakdown"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return str(value)


def render_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain text table: numbers right-aligned, an underline under the header."""
    body = [list(row) for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in body)]) for i, c in enumerate(columns)]
    numeric = [c.startswith(NUMERIC_PREFIXES) for c in columns]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if num else cell.ljust(w)
            for cell, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in body]
    return "\n".join(out) if body else "\n".join([*out, "(nothing recorded in this period)"])
