"""Cost reports: breakdowns, the overview, the model comparison and the session timeline.

Everything here reads the daily rollups or makes one grouped query per table: the number of
queries a report makes does not depend on how many rows it shows. The admin pages, their CSV
exports and ``manage.py ag2_logging_report`` all call these functions, so they agree.

Layout (arrows point one way: ``tables`` and ``queries`` -> ``figures`` -> ``filters``;
``charts`` stands alone):

* :mod:`~ag2_logging.reports.filters`: :class:`ReportFilter`, the period and scope from a request;
* :mod:`~ag2_logging.reports.figures`: what reports return (figures, rows, steps, percentiles);
* :mod:`~ag2_logging.reports.queries`: the aggregate queries (the only module reading rows);
* :mod:`~ag2_logging.reports.tables`: each report as CSV columns and rows, and streamed CSV;
* :mod:`~ag2_logging.reports.charts`: server-rendered SVG chart geometry.

Tunables such as ``queries.EXACT_LIMIT`` and ``queries.TIMELINE_LIMIT`` are read where they live.
"""

from __future__ import annotations

from ag2_logging.reports import charts
from ag2_logging.reports.figures import (
    DIMENSIONS,
    LATENCY_BOUNDS_MS,
    MODEL_COLUMNS,
    OTHER,
    ZERO,
    Breakdown,
    BreakdownRow,
    CostState,
    DailySeries,
    Dimension,
    Figures,
    LatencyHistogram,
    ModelComparison,
    ModelRow,
    Overview,
    Step,
    Timeline,
    histogram_percentile,
    latency_bucket_labels,
    percentile,
    share,
    sort_rows,
)
from ag2_logging.reports.filters import (
    DEFAULT_DAYS,
    MAX_DAYS,
    ReportFilter,
    _parse_date,
    _utc_today,
)
from ag2_logging.reports.queries import (
    breakdown,
    daily_series,
    model_comparison,
    overview,
    percentile_in_sql,
    rolled_up_calls,
    rollups,
    timeline,
    user_choices,
    user_labels,
)
from ag2_logging.reports.tables import (
    FIGURE_HEADER,
    MODEL_HEADER,
    TIMELINE_HEADER,
    as_records,
    breakdown_table,
    csv_lines,
    csv_response,
    model_table,
    money,
    number,
    overview_table,
    ratio,
    safe_cell,
    timeline_table,
)

__all__ = [
    "DEFAULT_DAYS",
    "DIMENSIONS",
    "FIGURE_HEADER",
    "LATENCY_BOUNDS_MS",
    "MAX_DAYS",
    "MODEL_COLUMNS",
    "MODEL_HEADER",
    "OTHER",
    "TIMELINE_HEADER",
    "ZERO",
    "Breakdown",
    "BreakdownRow",
    "CostState",
    "DailySeries",
    "Dimension",
    "Figures",
    "LatencyHistogram",
    "ModelComparison",
    "ModelRow",
    "Overview",
    "ReportFilter",
    "Step",
    "Timeline",
    "_parse_date",
    "_utc_today",
    "as_records",
    "breakdown",
    "breakdown_table",
    "charts",
    "csv_lines",
    "csv_response",
    "daily_series",
    "histogram_percentile",
    "latency_bucket_labels",
    "model_comparison",
    "model_table",
    "money",
    "number",
    "overview",
    "overview_table",
    "percentile",
    "percentile_in_sql",
    "ratio",
    "rolled_up_calls",
    "rollups",
    "safe_cell",
    "share",
    "sort_rows",
    "timeline",
    "timeline_table",
    "user_choices",
    "user_labels",
]
