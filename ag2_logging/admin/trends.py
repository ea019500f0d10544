"""The trends and recommendations pages of the admin (:class:`TrendViewsMixin`), each with its
``?format=csv``, beside the cost reports on the daily rollup admin (same permission, same
navigation).

The trends page reads :func:`ag2_logging.reports.trends.trends`; the recommendations page
:func:`ag2_logging.reports.recommendations.recommendations`, with the cheaper models of
``cheaper_models`` (a class attribute a project can override).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ag2_logging.admin.exports import csv_filename, wants_csv
from ag2_logging.admin.views import ReportViewsMixin
from ag2_logging.reports import DIMENSIONS, csv_response
from ag2_logging.reports import recommendations as recs
from ag2_logging.reports import trends as tr

KIND_TITLES = {
    "cheaper_model": gettext_lazy("A cheaper model of the same provider"),
    "prompt_cache": gettext_lazy("Repeated prompts rarely read from the provider's cache"),
    "failing_sessions": gettext_lazy("Sessions with many errors or retries"),
    "expired_override": gettext_lazy("Price overrides that have expired"),
}


class TrendViewsMixin(ReportViewsMixin):
    """Trends (cost and tokens per week or month, change, movers, anomalies) and
    recommendations, on the daily rollup admin (its *view* permission)."""

    report_trends_template = "admin/ag2_logging/reports/trends.html"
    report_recommendations_template = "admin/ag2_logging/reports/recommendations.html"
    #: model (genai-prices id) -> cheaper models of the same provider, closest first.
    cheaper_models: Mapping[str, Sequence[str]] = recs.CHEAPER_MODELS

    def get_trend_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("reports/trends/", wrap(self.trends_view), name="ag2_logging_report_trends"),
            path(
                "reports/recommendations/",
                wrap(self.recommendations_view),
                name="ag2_logging_report_recommendations",
            ),
        ]

    def get_trend_filter(self, request: HttpRequest) -> tuple[tr.TrendFilter, list[str]]:
        return tr.TrendFilter.from_params(request.GET)

    def trends_view(self, request: HttpRequest) -> HttpResponseBase:
        self.check_report_permission(request)
        tflt, errors = self.get_trend_filter(request)
        report = tr.trends(tflt)
        flt = tflt.report_filter()
        if wants_csv(request):
            header, rows = tr.trends_table(report)
            return csv_response(csv_filename(f"trends_{tflt.grain}_by_{tflt.by}", flt), header, rows)
        context = self.report_context(request, title=_("Trends"), flt=flt, errors=errors, active="trends")
        page = request.path

        def link(**overrides: Any) -> str:
            return f"{page}?{urlencode(tflt.params(**overrides))}"

        context.update(
            report=report,
            tflt=tflt,
            csv_url=link(format="csv"),
            grain_links=[
                (_("weeks"), link(grain="week"), tflt.grain == "week"),
                (_("months"), link(grain="month"), tflt.grain == "month"),
            ],
            by_links=[
                (DIMENSIONS[slug].label.lower(), link(by=slug), tflt.by == slug)
                for slug in tr.TREND_DIMENSIONS
            ],
            by_options=[
                (slug, DIMENSIONS[slug].label.lower(), tflt.by == slug) for slug in tr.TREND_DIMENSIONS
            ],
            rule={
                "days": tr.ANOMALY_DAYS,
                "window": tr.ANOMALY_WINDOW_DAYS,
                "history": tr.ANOMALY_MIN_HISTORY,
                "threshold": tr.ANOMALY_THRESHOLD,
            },
            anomaly_rows=[(a, self._anomaly_link(a, tflt)) for a in report.anomalies],
        )
        return self.render_report(request, self.report_trends_template, context)

    @staticmethod
    def _anomaly_link(anomaly: tr.Anomaly, tflt: tr.TrendFilter) -> str:
        """The workflow's breakdown by model on the flagged day."""
        day = anomaly.day.isoformat()
        params = {"start": day, "end": day, "workflow": anomaly.workflow}
        if anomaly.enterprise:
            params["enterprise"] = anomaly.enterprise
        return reverse("admin:ag2_logging_report_breakdown", args=["model"]) + "?" + urlencode(params)

    def recommendations_view(self, request: HttpRequest) -> HttpResponseBase:
        self.check_report_permission(request)
        flt, errors = self.get_report_filter(request)
        report = recs.recommendations(flt, alternatives=self.cheaper_models)
        if wants_csv(request):
            header, rows = recs.recommendations_table(report)
            return csv_response(csv_filename("recommendations", flt), header, rows)
        context = self.report_context(
            request, title=_("Recommendations"), flt=flt, errors=errors, active="recommendations"
        )
        sections = [(kind, str(KIND_TITLES[kind]), report.items[kind]) for kind in recs.KINDS]
        context.update(
            report=report,
            sections=sections,
            cheaper_models=sorted(self.cheaper_models.items()),
            thresholds={
                "cache_min_prompt": recs.CACHE_MIN_PROMPT,
                "cache_min_repeated": recs.CACHE_MIN_REPEATED,
                "cache_low": f"{recs.CACHE_LOW_HIT_RATE:.0%}",
                "failing_attempts": recs.FAILING_MIN_ATTEMPTS,
                "failing_share": f"{recs.FAILING_MIN_SHARE:.0%}",
            },
            prices_url=reverse("admin:ag2_logging_modelprice_changelist"),
        )
        return self.render_report(request, self.report_recommendations_template, context)
