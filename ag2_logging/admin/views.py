"""The report pages of the admin (:class:`ReportViewsMixin`): cost overview, breakdowns and the
model comparison, each with its ``?format=csv``.

Pages are added to the admin with ``get_urls()`` + ``admin_site.admin_view()`` and rendered with
``admin_site.each_context()``; templates extend ``admin/base_site.html`` and their names are class
attributes a project can override. Each page's CSV is the same URL with ``format=csv``, behind
the same permission check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _

from ag2_logging import reports
from ag2_logging.admin.base import pipeline_banner, visible_response
from ag2_logging.admin.exports import MixinBase, csv_filename, wants_csv
from ag2_logging.reports import DIMENSIONS, MODEL_COLUMNS, ReportFilter, charts, csv_response

#: Rows a breakdown page shows (the costliest; the rest are counted beneath, and all are in its
#: CSV): 500 users took 375 ms to render at a million calls, the queries 30 ms.
BREAKDOWN_PAGE_ROWS = 100


def cost_text(figures: reports.Figures) -> str:
    """A short cost for a chart label: "unknown" or "≥ $1.2k" when prices are missing."""
    if figures.cost_state == "unknown":
        return str(_("unknown"))
    text = charts.short_money(float(figures.priced_cost))
    return f"≥ {text}" if figures.cost_state == "partial" else text


class ReportViewsMixin(MixinBase):
    """Cost overview, breakdowns and model comparison (on the daily rollup admin: the reports read
    rollups, so seeing them takes the *view daily rollup* permission)."""

    report_overview_template = "admin/ag2_logging/reports/overview.html"
    report_breakdown_template = "admin/ag2_logging/reports/breakdown.html"
    report_models_template = "admin/ag2_logging/reports/models.html"

    def get_report_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("reports/", wrap(self.overview_view), name="ag2_logging_report_overview"),
            path("reports/models/", wrap(self.models_view), name="ag2_logging_report_models"),
            path(
                "reports/by/<slug:dimension>/",
                wrap(self.breakdown_view),
                name="ag2_logging_report_breakdown",
            ),
        ]

    # -- overridable hooks ------------------------------------------------------------------

    def has_report_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def check_report_permission(self, request: HttpRequest) -> None:
        if not self.has_report_permission(request):
            raise PermissionDenied

    def get_report_filter(self, request: HttpRequest) -> tuple[ReportFilter, list[str]]:
        return ReportFilter.from_params(request.GET)

    def report_context(
        self, request: HttpRequest, *, title: str, flt: ReportFilter, errors: Sequence[str], active: str
    ) -> dict[str, Any]:
        banner = pipeline_banner(request)
        if banner:  # never a cost the reports silently leave out
            messages.warning(request, banner)
        enterprises: set[str] = set()
        workflows: set[str] = set()
        for enterprise, workflow in reports.rollups().scopes():
            enterprises.add(enterprise)
            if not flt.enterprise or enterprise == flt.enterprise:
                workflows.add(workflow)
        today = dt.datetime.now(dt.UTC).date()
        month_start = today.replace(day=1)
        last_month_end = month_start - dt.timedelta(days=1)
        ranges = [
            (_("Last 7 days"), today - dt.timedelta(days=6), today),
            (_("Last 30 days"), today - dt.timedelta(days=29), today),
            (_("Last 90 days"), today - dt.timedelta(days=89), today),
            (_("This month"), month_start, today),
            (_("Last month"), last_month_end.replace(day=1), last_month_end),
        ]
        base = request.path
        keep = {k: request.GET[k] for k in ("stack", "sort", "exact") if request.GET.get(k)}
        nav = self.report_pages()
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
            "flt": flt,
            "filter_errors": errors,
            "enterprises": sorted(enterprises | ({flt.enterprise} if flt.enterprise else set())),
            "workflows": sorted(workflows | ({flt.workflow} if flt.workflow else set())),
            "users": reports.user_choices(flt),
            "quick_ranges": [
                (
                    label,
                    f"{base}?{flt.querystring(start=start.isoformat(), end=end.isoformat(), **keep)}",
                    (start, end) == (flt.start, flt.end),
                )
                for label, start, end in ranges
            ],
            "keep_params": keep,
            "report_nav": [(label, f"{url}?{flt.querystring()}", slug == active) for slug, label, url in nav],
            "csv_url": f"{base}?{flt.querystring(format='csv', **keep)}",
            "calls_url": reverse("admin:ag2_logging_llmcall_changelist"),
            "sessions_url": reverse("admin:ag2_logging_session_changelist"),
            "active_report": active,
        }
        return context

    def report_pages(self) -> list[tuple[str, str, str]]:
        """The reports' navigation: (slug, label, URL) per page, in order."""
        return [
            ("overview", _("Overview"), reverse("admin:ag2_logging_report_overview")),
            *(
                (
                    slug,
                    _("By %(dimension)s") % {"dimension": dim.label.lower()},
                    reverse("admin:ag2_logging_report_breakdown", args=[slug]),
                )
                for slug, dim in DIMENSIONS.items()
            ),
            ("models", _("Model comparison"), reverse("admin:ag2_logging_report_models")),
            ("trends", _("Trends"), reverse("admin:ag2_logging_report_trends")),
            ("recommendations", _("Recommendations"), reverse("admin:ag2_logging_report_recommendations")),
            ("live", _("Live"), reverse("admin:ag2_logging_live")),
        ]

    def render_report(self, request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
        request.current_app = self.admin_site.name
        response = TemplateResponse(request, template, context)
        visible_response(response)
        return response

    # -- views ------------------------------------------------------------------------------

    def overview_view(self, request: HttpRequest) -> HttpResponseBase:
        self.check_report_permission(request)
        flt, errors = self.get_report_filter(request)
        stack = "enterprise" if request.GET.get("stack") == "enterprise" else "model"
        report = reports.overview(flt, stack=stack)
        if wants_csv(request):
            header, rows = reports.overview_table(report)
            return csv_response(csv_filename("overview", flt), header, rows)
        context = self.report_context(
            request, title=_("Cost overview"), flt=flt, errors=errors, active="overview"
        )
        context.update(
            report=report,
            stack=stack,
            stack_links=[
                (_("by model"), f"{request.path}?{flt.querystring(stack='model')}", stack == "model"),
                (
                    _("by enterprise"),
                    f"{request.path}?{flt.querystring(stack='enterprise')}",
                    stack == "enterprise",
                ),
            ],
            **self._overview_charts(report, stack),
            tops=[
                (
                    DIMENSIONS[slug],
                    part.rows[:5],
                    len(part.rows),
                    reverse("admin:ag2_logging_report_breakdown", args=[slug]) + f"?{flt.querystring()}",
                )
                for slug, part in report.top.items()
            ],
        )
        return self.render_report(request, self.report_overview_template, context)

    def _overview_charts(self, report: reports.Overview, stack: str) -> dict[str, charts.Chart]:
        """The overview's three charts: cost per day (stacked by ``stack``), tokens, model shares."""
        series = report.series
        colors = charts.assign_colors(series.names, reports.OTHER)
        model_rows = report.top["model"].rows
        model_colors = charts.assign_colors([r.label for r in model_rows[:7]])
        # The token bands add up to input + output: each label says which part it is (the
        # headline's "in" includes cached input, its "out" includes reasoning).
        bands = (
            (_("input, uncached"), "input", charts.PALETTE[0]),
            (_("input, cached"), "cached", charts.PALETTE[4]),
            (_("output, visible"), "output", charts.PALETTE[1]),
            (_("output, reasoning"), "reasoning", charts.PALETTE[3]),
        )
        return {
            "cost_chart": charts.stacked_bars(
                title=_("Cost per day by %(dimension)s") % {"dimension": DIMENSIONS[stack].label.lower()},
                days=series.days,
                series=series.values,
                colors=colors,
                unknown=series.unpriced,
                legend_values={name: cost_text(f) for name, f in series.figures.items()},
            ),
            "token_chart": charts.stacked_bars(
                title=_("Tokens per day by kind"),
                days=series.days,
                series={label: series.tokens[kind] for label, kind, _color in bands},
                colors={label: color for label, _kind, color in bands},
                money=False,
                width=560,
                height=250,
            ),
            "share_chart": self._share_chart(_("Share of cost by model"), model_rows[:7], model_colors),
        }

    @staticmethod
    def _share_chart(title: str, rows: Sequence[Any], colors: dict[str, str]) -> charts.Chart:
        """Shares of the known cost. A row whose cost is unknown gets no bar (never a 0.0% one):
        "unknown" and its share of the tokens instead; when any cost in it is unknown or a
        lower bound, the title says the chart is incomplete."""
        tokens = sum(row.figures.total_tokens for row in rows) or 0
        items = []
        for row in rows:
            f = row.figures
            if f.cost_state == "unknown":
                token_share = f.total_tokens / tokens if tokens else None
                text = _("unknown")
                if token_share is not None:
                    text += " · " + _("%(share)s of tokens") % {"share": f"{token_share:.1%}"}
                items.append((row.label, 0.0, text))
            else:
                items.append(
                    (row.label, row.cost_share or 0.0, f"{(row.cost_share or 0):.1%} · {cost_text(f)}")
                )
        if any(row.figures.unpriced for row in rows):
            title = _("%(title)s (incomplete: calls without a price are not in the shares)") % {
                "title": title
            }
        return charts.horizontal_bars(title=title, items=items, colors=colors)

    def breakdown_view(self, request: HttpRequest, dimension: str) -> HttpResponseBase:
        self.check_report_permission(request)
        if dimension not in DIMENSIONS:
            raise Http404
        flt, errors = self.get_report_filter(request)
        report = reports.breakdown(dimension, flt)
        if wants_csv(request):
            header, rows = reports.breakdown_table(report)
            return csv_response(csv_filename(f"by_{dimension}", flt), header, rows)
        dim = report.dimension
        context = self.report_context(
            request,
            title=_("Cost by %(dimension)s") % {"dimension": dim.label.lower()},
            flt=flt,
            errors=errors,
            active=dimension,
        )
        if dimension == "day":
            chart = charts.stacked_bars(
                title=_("Cost per day"),
                days=[r.key["day"] for r in report.rows],
                series={_("cost"): [r.figures.priced_cost for r in report.rows]},
                colors={_("cost"): charts.PALETTE[0]},
                unknown=[r.figures.unpriced for r in report.rows],
            )
        else:
            top = report.rows[:12]
            chart = self._share_chart(
                _("Share of cost by %(dimension)s") % {"dimension": dim.label.lower()},
                top,
                {r.label: charts.PALETTE[0] for r in top},
            )
        by = "admin:ag2_logging_report_breakdown"
        urls = {  # reversed once, not once per row (a page of 500 users spent 40% of its time here)
            "calls": reverse("admin:ag2_logging_llmcall_changelist"),
            "sessions": reverse("admin:ag2_logging_session_changelist"),
            "workflow": reverse(by, args=["workflow"]),
            "model": reverse(by, args=["model"]),
        }
        # Days are never cut: a period has at most reports.filters.MAX_DAYS (731), all charted.
        shown = report.rows if dimension == "day" else report.rows[:BREAKDOWN_PAGE_ROWS]
        context.update(
            report=report,
            dimension=dim,
            chart=chart,
            rows=[(row, self._drilldown(dimension, row, flt, urls)) for row in shown],
            more_rows=len(report.rows) - len(shown),
            has_sessions=report.total.sessions is not None,
        )
        return self.render_report(request, self.report_breakdown_template, context)

    @staticmethod
    def _drilldown(
        dimension: str, row: reports.BreakdownRow, flt: ReportFilter, urls: dict[str, str]
    ) -> dict[str, str]:
        """Where a row leads: the next breakdown down, and the LLM calls behind it. ``urls``: the
        call and session lists' paths and those of the by-workflow and by-model breakdowns."""
        calls = urls["calls"]
        key = row.key
        if dimension == "enterprise":
            return {
                "next": urls["workflow"] + "?" + flt.querystring(enterprise=key["enterprise_id"]),
                "calls": calls + "?" + _qs(flt.calls_list_params(enterprise=key["enterprise_id"])),
            }
        if dimension == "workflow":
            return {
                "next": urls["model"] + "?" + flt.querystring(workflow=key["workflow_name"]),
                "calls": calls + "?" + _qs(flt.calls_list_params(workflow=key["workflow_name"])),
            }
        if dimension == "model":
            return {
                "calls": calls
                + "?"
                + _qs(flt.calls_list_params(model=key["model"], provider=key["provider"]))
            }
        if dimension == "agent":
            return {"calls": calls + "?" + _qs(flt.calls_list_params(agent_name=key["agent_name"]))}
        if dimension in ("user", "tag"):
            # The call list has no user or tag filter: the row leads to its models and sessions.
            value = key["user_id"] if dimension == "user" else key["tag"]
            sessions = urls["sessions"]
            listed = flt.sessions_list_params(**{dimension: value})
            if not value:  # sessions without a user: no filter selects them alone
                return {}
            return {
                "next": urls["model"] + "?" + flt.querystring(**{dimension: value}),
                "sessions": sessions + "?" + _qs(listed),
            }
        day = key["day"].isoformat()
        one_day = ReportFilter(
            start=key["day"], end=key["day"], enterprise=flt.enterprise, workflow=flt.workflow
        )
        return {
            "next": urls["model"] + "?" + flt.querystring(start=day, end=day),
            "calls": calls + "?" + _qs(one_day.calls_list_params()),
        }

    def models_view(self, request: HttpRequest) -> HttpResponseBase:
        self.check_report_permission(request)
        flt, errors = self.get_report_filter(request)
        sort = request.GET.get("sort") or "-cost"
        exact = request.GET.get("exact") == "1"
        report = reports.model_comparison(flt, sort=sort, exact=exact)
        if wants_csv(request):
            header, rows = reports.model_table(report)
            return csv_response(csv_filename("models", flt), header, rows)
        by_cost = reports.sort_rows(list(report.rows), "cost", descending=True)
        colors = charts.assign_colors([r.model for r in by_cost[:6]] + [reports.OTHER], reports.OTHER)
        context = self.report_context(
            request, title=_("Model comparison"), flt=flt, errors=errors, active="models"
        )
        context.update(
            report=report,
            headers=_sort_headers(request.path, flt, report.sort, exact),
            rows=[
                (
                    row,
                    reverse("admin:ag2_logging_llmcall_changelist")
                    + "?"
                    + _qs(flt.calls_list_params(model=row.model, provider=row.provider)),
                )
                for row in report.rows
            ],
            exact_url=f"{request.path}?{flt.querystring(sort=report.sort, exact=1)}",
            latency_chart=charts.histogram(
                title=_("Latency distribution (calls per bucket)"),
                labels=report.histogram.labels,
                series=_latency_series(report, by_cost, colors),
                colors=colors,
            ),
            share_chart=self._share_chart(
                _("Share of cost by model"), by_cost[:7], charts.assign_colors([r.label for r in by_cost[:7]])
            ),
        )
        return self.render_report(request, self.report_models_template, context)


def _latency_series(
    report: reports.ModelComparison, by_cost: Sequence[reports.ModelRow], colors: dict[str, str]
) -> dict[str, list[int]]:
    """The latency histogram's series: one per coloured model, the rest summed as "other"."""
    hist_series: dict[str, list[int]] = {}
    for row in by_cost:
        counts = report.histogram.counts.get(row.model)
        if counts is None or row.model in hist_series:
            continue
        name = row.model if row.model in colors and row.model != reports.OTHER else reports.OTHER
        bucket = hist_series.setdefault(name, [0] * len(counts))
        for i, n in enumerate(counts):
            bucket[i] += n
    if reports.OTHER in hist_series:  # "other" stacks on top
        hist_series[reports.OTHER] = hist_series.pop(reports.OTHER)
    return hist_series


#: The model table's columns, narrow enough for a 1366 px window: the other figures are written
#: beneath one of them (sessions under calls, cached under input, reasoning under output, cost
#: per 1k tokens under cost per session, retries under the error rate) and stay sortable by URL.
MODEL_TABLE_COLUMNS = (
    "model",
    "calls",
    "input",
    "output",
    "cost",
    "persession",
    "latency",
    "p95",
    "errors",
    "cache",
)


def _sort_headers(page: str, flt: ReportFilter, current: str, exact: bool) -> list[dict[str, Any]]:
    """The model table's column headings, each linking to the page sorted by it."""
    headers = []
    for slug in MODEL_TABLE_COLUMNS:
        heading = MODEL_COLUMNS[slug][0]
        descending_first = slug != "model"
        if current.lstrip("-") == slug:
            next_sort = slug if current.startswith("-") else f"-{slug}"
            state = "descending" if current.startswith("-") else "ascending"
        else:
            next_sort = f"-{slug}" if descending_first else slug
            state = ""
        headers.append(
            {
                "slug": slug,
                "heading": heading,
                "url": f"{page}?{flt.querystring(sort=next_sort, exact='1' if exact else None)}",
                "state": state,
            }
        )
    return headers


def _qs(params: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)
