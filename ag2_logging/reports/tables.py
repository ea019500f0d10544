"""Report tables: the header and rows of each report (CSV, JSON, the terminal), and streamed CSV.

``*_table`` functions turn a report into ``(header, rows)``; :func:`csv_lines` and
:func:`csv_response` write such a table as CSV, safe to open in a spreadsheet: a cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is taken as a formula by Excel,
LibreOffice and Google Sheets (CSV injection), so such text cells get a leading ``'`` and are
shown as text; before that, control characters in text are escaped visibly (NUL as
``\\x00``, U+202E as ``\\u202e``: :mod:`ag2_logging.reports.text`). Numbers are written as
numbers (a negative number is not text and is left alone); everything the app does not compute
itself (names, ids, errors) is text.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from django.http import StreamingHttpResponse

from ag2_logging.formats import export
from ag2_logging.reports.figures import Breakdown, Figures, ModelComparison, Overview, Timeline
from ag2_logging.reports.text import visible


def money(value: Decimal | None) -> str:
    """A cost as plain text with all its precision (CSV, JSON): '' when unknown."""
    return export(value)


def ratio(value: float | None, places: int = 4) -> str:
    """A share or rate with ``places`` decimals (``0.5300``); '' when unknown."""
    return "" if value is None else f"{value:.{places}f}"


def number(value: float | None, places: int = 1) -> str:
    """A measure with ``places`` decimals (``1140.0``); '' when unknown."""
    return "" if value is None else f"{value:.{places}f}"


FIGURE_HEADER = [
    "sessions",
    "calls",
    "errors",
    "retries",
    "unpriced_calls",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost",
    "cost_complete",
    "cost_share",
    "token_share",
]


def _figure_cells(f: Figures, cost_share: float | None, token_share: float | None) -> list[Any]:
    return [
        "" if f.sessions is None else f.sessions,
        f.calls,
        f.errors,
        f.retries,
        f.unpriced,
        f.prompt_tokens,
        f.cached_tokens,
        f.completion_tokens,
        f.reasoning_tokens,
        f.total_tokens,
        money(f.cost),
        "yes" if f.cost_state in ("known", "none") else "no",
        ratio(cost_share),
        ratio(token_share),
    ]


def breakdown_table(report: Breakdown, *, with_total: bool = True) -> tuple[list[str], Iterator[list[Any]]]:
    """Header and rows of a breakdown, for CSV, JSON and the terminal (the total row last)."""
    keys = list(report.dimension.fields)
    latency = ["p50_latency_ms", "p95_latency_ms"] if report.latency else []
    named = report.dimension.slug == "user"  # the user's name beside the primary key
    header = [*keys, *(["user"] if named else []), *FIGURE_HEADER, *latency]

    def rows() -> Iterator[list[Any]]:
        for row in report.rows:
            key = [row.key[name].isoformat() if name == "day" else row.key[name] for name in keys]
            if named:
                key.append(row.label)
            cells = _figure_cells(row.figures, row.cost_share, row.token_share)
            yield [
                *key,
                *cells,
                *([number(row.p50_latency_ms), number(row.p95_latency_ms)] if latency else []),
            ]
        if with_total:
            label = ["TOTAL", *([""] * (len(keys) - 1 + named))]
            cells = _figure_cells(report.total, 1.0 if report.total.priced_cost else None, 1.0)
            yield [*label, *cells, *([""] * len(latency))]

    return header, rows()


MODEL_HEADER = [
    "model",
    "provider",
    "calls",
    "sessions",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "total_tokens",
    "unpriced_calls",
    "cost",
    "cost_share",
    "cost_per_1k_tokens",
    "cost_per_session",
    "mean_latency_ms",
    "p95_latency_ms",
    "error_rate",
    "retries_per_call",
    "cache_hit_rate",
]


def model_table(report: ModelComparison) -> tuple[list[str], Iterator[list[Any]]]:
    def rows() -> Iterator[list[Any]]:
        for r in report.rows:
            f = r.figures
            yield [
                r.model,
                r.provider,
                f.calls,
                f.sessions,
                f.prompt_tokens,
                f.cached_tokens,
                f.completion_tokens,
                f.reasoning_tokens,
                f.total_tokens,
                f.unpriced,
                money(f.cost),
                ratio(r.cost_share),
                money(_round(r.cost_per_1k_tokens)),
                money(_round(r.cost_per_session)),
                number(r.mean_latency_ms),
                number(r.p95_latency_ms),
                ratio(r.error_rate),
                ratio(r.retry_rate),
                ratio(r.cache_hit_rate),
            ]

    return MODEL_HEADER, rows()


def _round(value: Decimal | None, places: int = 10) -> Decimal | None:
    return None if value is None else value.quantize(Decimal(1).scaleb(-places))


TIMELINE_HEADER = [
    "offset_s",
    "kind",
    "seq",
    "agent",
    "name",
    "started_at",
    "ended_at",
    "duration_ms",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost",
    "error",
]


def timeline_table(report: Timeline) -> tuple[list[str], Iterator[list[Any]]]:
    def rows() -> Iterator[list[Any]]:
        for s in report.steps:
            yield [
                number(s.offset_s, 3),
                s.kind,
                s.seq,
                s.agent,
                s.name,
                s.started_at.isoformat() if s.started_at else "",
                s.at.isoformat() if s.at else "",
                number(s.duration_ms),
                s.prompt_tokens,
                s.cached_tokens,
                s.completion_tokens,
                s.reasoning_tokens,
                money(s.cost) if s.kind == "llm" else "",
                s.error,
            ]

    return TIMELINE_HEADER, rows()


def overview_table(report: Overview) -> tuple[list[str], Iterator[list[Any]]]:
    """The overview as one table: the top rows of each dimension, then the total."""
    header = ["dimension", "value", *FIGURE_HEADER]

    def rows() -> Iterator[list[Any]]:
        for slug, part in report.top.items():
            for row in part.rows:
                yield [slug, row.label, *_figure_cells(row.figures, row.cost_share, row.token_share)]
        yield ["total", "", *_figure_cells(report.total, 1.0 if report.total.priced_cost else None, 1.0)]

    return header, rows()


def as_records(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(header, row, strict=True)) for row in rows]


# ---------------------------------------------------------------------------------------------
# Streamed CSV


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: Columns whose text may span lines: tab and newline are kept in them (escaped elsewhere).
MULTILINE_COLUMNS = frozenset({"error", "pipeline_error", "result_summary"})


def safe_cell(value: Any, *, multiline: bool = False) -> str | int | float:
    """``value`` as a CSV cell. Text has its control characters escaped visibly (NUL, C0/C1,
    the bidi controls such as U+202E; tab and newline kept when ``multiline``: see
    :func:`~ag2_logging.reports.text.visible`), then, if a spreadsheet would run it as a formula
    (it starts with ``= + - @``, a tab or a carriage return), gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return export(value)  # 49.05, not 49.050000000000004
    if isinstance(value, Decimal):
        return format(value, "f")  # the stored precision, as the database holds it
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    text = visible(str(value), multiline=multiline)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


class _Echo:
    """A file-like object whose ``write`` returns what it is given (csv.writer then yields lines)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """CSV lines of ``header`` and ``rows``, every cell through :func:`safe_cell` (the columns
    named in ``MULTILINE_COLUMNS`` keep their tabs and newlines)."""
    writer = csv.writer(_Echo())
    multiline = [name in MULTILINE_COLUMNS for name in header]
    yield writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        yield writer.writerow(
            [safe_cell(value, multiline=lines) for value, lines in zip(row, multiline, strict=False)]
        )


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response
