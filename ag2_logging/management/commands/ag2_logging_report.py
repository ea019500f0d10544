"""``manage.py ag2_logging_report``: the admin's cost reports in a terminal or a pipe.

manage.py ag2_logging_report enterprise --start 2026-01-01 --end 2026-01-31
manage.py ag2_logging_report models --enterprise acme --format csv > models.csv
manage.py ag2_logging_report day --days 7 --format json
manage.py ag2_logging_report trends --grain month --by model --periods 6 --json
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ag2_logging import reports
from ag2_logging.conf import conf
from ag2_logging.models import Session
from ag2_logging.reports import csv_lines
from ag2_logging.reports import trends as trend_reports
from ag2_logging.reports.tables import money, ratio

REPORTS = ("overview", *reports.DIMENSIONS, "models", "trends")

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
#: Columns of the terminal table of ``trends`` after the group's (all columns go to CSV and JSON).
TREND_COLUMNS = (
    "period",
    "calls",
    "total_tokens",
    "cost",
    "previous_cost",
    "cost_change",
    "cost_change_ratio",
)
NUMERIC_PREFIXES = (
    "previous",
    "cost",
    "calls",
    "sessions",
    "errors",
    "total",
    "unpriced",
    "mean",
    "p50",
    "p95",
    "error",
    "cache",
    "retr",
)


class Command(BaseCommand):
    help = (
        "Print the cost reports of the admin: totals per enterprise, workflow, model, agent or day, "
        "the model comparison, or the trends (cost per week or month and its change)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "report", nargs="?", default="overview", choices=REPORTS, help="default: overview"
        )
        parser.add_argument("--start", help="first UTC day, YYYY-MM-DD (default: 30 days before --end)")
        parser.add_argument("--end", help="last UTC day, YYYY-MM-DD, inclusive (default: today)")
        parser.add_argument("--days", type=int, help="the last N days up to --end (instead of --start)")
        parser.add_argument("--enterprise", default="", help="only this enterprise id")
        parser.add_argument("--workflow", default="", help="only this workflow")
        parser.add_argument("--user", default="", help="only this user's sessions (the user's primary key)")
        parser.add_argument("--tag", default="", help="only the sessions with this tag")
        parser.add_argument(
            "--sort", default="-cost", help="models: column to sort by, '-' for descending (--sort=-calls)"
        )
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
        parser.add_argument("--json", action="store_true", help="the same as --format json")
        trends = parser.add_argument_group("trends")
        trends.add_argument("--grain", choices=trend_reports.GRAINS, default="week", help="default: week")
        trends.add_argument(
            "--by", choices=trend_reports.TREND_DIMENSIONS, default="workflow", help="default: workflow"
        )
        trends.add_argument(
            "--periods",
            type=int,
            default=trend_reports.DEFAULT_PERIODS,
            help=f"weeks or months up to the one holding --end, 2 to {trend_reports.MAX_PERIODS} "
            f"(default: {trend_reports.DEFAULT_PERIODS})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["json"]:
            options["format"] = "json"
        self._warn_missing()
        if options["report"] == "trends":
            self._trends(options)
            return
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
        latency = [
            c
            for c in ("p50_latency_ms", "p95_latency_ms")
            if kind == "breakdown" and records and c in records[0]
        ]
        self._write_table(name, flt, [*key_columns, *TABLE_COLUMNS[kind], *latency], records)

    def _warn_missing(self) -> None:
        """On stderr (stdout stays the report): finished sessions these figures leave out."""
        threshold = conf.resolved.pipeline_pending_alert_seconds
        count = Session.objects.missing_from_reports(threshold).count()
        if count:
            self.stderr.write(
                f"warning: {count} finished session(s) are not in these figures (their pipeline failed, "
                f"is retrying after an error, or is pending for more than {threshold:g} s); "
                "manage.py ag2_logging_doctor says why."
            )

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

    def _trends(self, options: dict[str, Any]) -> None:
        """``trends``: one row per group and period (the total last), the change against the
        previous period on each group's last period, then the biggest movers and the anomalies."""
        if options.get("start") or options.get("days") is not None:
            raise CommandError("trends: use --end, --grain and --periods (not --start or --days)")
        end = options.get("end")
        if end and reports._parse_date(end) is None:
            raise CommandError(f"--end must be a date, YYYY-MM-DD (got {end!r})")
        if not 2 <= options["periods"] <= trend_reports.MAX_PERIODS:
            raise CommandError(f"--periods must be from 2 to {trend_reports.MAX_PERIODS}")
        flt, errors = trend_reports.TrendFilter.from_params(
            {
                key: options.get(key) or ""
                for key in ("end", "grain", "by", "periods", "enterprise", "workflow")
            }
        )
        for error in errors:
            self.stderr.write(error)
        report = trend_reports.trends(flt)
        header, rows = trend_reports.trends_table(report)
        if options["format"] == "csv":
            for line in csv_lines(header, iter(rows)):
                self.stdout.write(line, ending="")
            return
        records = reports.as_records(header, iter(rows))
        keys = list(report.dimension.fields)
        if options["format"] == "json":
            self.stdout.write(json.dumps(_trends_document(report, records), indent=2, default=str))
            return
        c = report.total.change
        compared = f"{c.days} first days of each period" if c.to_date else "whole periods"
        scope = " ".join(
            f"{name}={value}"
            for name, value in (("enterprise", flt.enterprise), ("workflow", flt.workflow))
            if value
        )
        self.stdout.write(
            f"trends by {flt.by}, per {flt.grain}: {report.periods[0].label} .. {report.periods[-1].label} "
            f"(to {flt.end}, UTC; change: {compared}){' ' + scope if scope else ''}"
        )
        columns = [*keys, *TREND_COLUMNS]
        self.stdout.write(render_table(columns, ([_cell(r.get(col)) for col in columns] for r in records)))
        if report.movers:
            self.stdout.write(
                "biggest movers: "
                + ", ".join(f"{r.label} {money(r.change.cost_delta)}" for r in report.movers)
            )
        for a in report.anomalies:
            self.stdout.write(
                f"anomaly: {a.workflow} ({a.enterprise or '-'}) on {a.day}: {money(a.cost)}, "
                f"{a.direction} (robust z {a.z_text}, median {money(a.median)} over {a.history_days} days)"
            )
        if any(r.get("cost_complete") == "no" for r in records):
            self.stdout.write(
                "cost: priced calls only; a change with unpriced calls on either side is unknown (empty)."
            )


def _trends_document(report: trend_reports.Trends, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON of ``trends``: the filter, the periods, the rows (``trends_table``'s columns), the
    movers and the anomalies (money as decimal strings in USD, '' when unknown)."""
    flt, change = report.filter, report.total.change
    return {
        "report": "trends",
        "grain": flt.grain,
        "by": flt.by,
        "end": flt.end.isoformat(),
        "enterprise": flt.enterprise,
        "workflow": flt.workflow,
        "periods": [
            {"label": p.label, "start": p.start.isoformat(), "end": p.end.isoformat()} for p in report.periods
        ],
        "to_date": change.to_date,
        "compared_days": change.days,
        "rows": records,
        "movers": [
            {
                **r.key,
                "label": r.label,
                "cost": money(r.current.cost),
                "previous_cost": money(r.change.previous.cost),
                "cost_change": money(r.change.cost_delta),
                "cost_change_ratio": ratio(r.change.cost_ratio),
            }
            for r in report.movers
        ],
        "anomalies": [
            {
                "enterprise": a.enterprise,
                "workflow": a.workflow,
                "day": a.day.isoformat(),
                "cost": money(a.cost),
                "median": money(a.median),
                "mad": money(a.mad),
                "z": a.z_text,
                "direction": a.direction,
                "history_days": a.history_days,
            }
            for a in report.anomalies
        ],
    }


def _report_params(options: dict[str, Any]) -> dict[str, Any]:
    """The filter parameters of the options (``--days`` resolved); CommandError on a bad date."""
    params = {
        key: options[key]
        for key in ("start", "end", "enterprise", "workflow", "user", "tag")
        if options.get(key)
    }
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
