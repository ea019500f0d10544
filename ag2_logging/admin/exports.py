"""CSV from the admin: ``<list>/export.csv`` for the filtered change lists (:class:`ExportViewMixin`)
and the helpers the report and timeline pages use for their ``?format=csv``.

Also home of ``MixinBase``, the typing-only base of the admin view mixins (``ModelAdmin`` for mypy,
``object`` at run time, so the mixins stay in front of ``ModelAdmin`` in the MRO).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from django.urls import URLPattern, path

from ag2_logging.formats import export
from ag2_logging.reports import ReportFilter, csv_response

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    MixinBase = ModelAdmin[Any]
else:
    MixinBase = object

Wrapper = Callable[..., HttpResponseBase]


def wants_csv(request: HttpRequest) -> bool:
    """Whether a report page is asked for its CSV (``?format=csv``) rather than its HTML."""
    return request.GET.get("format") == "csv"


def csv_filename(stem: str, flt: ReportFilter | None = None) -> str:
    """A download name: ``ag2_`` + the stem, the period and scope, safe on any file system."""
    parts = [stem]
    if flt is not None:
        parts += [flt.start.isoformat(), flt.end.isoformat()]
        parts += [p for p in (flt.enterprise, flt.workflow) if p]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in "_".join(parts))
    return f"ag2_{safe[:150]}.csv"


def plain_decimals(rows: Iterable[Sequence[Any]]) -> Iterator[list[Any]]:
    """``rows`` with each Decimal (a cost or price) written as the report CSVs write it
    (:func:`~ag2_logging.formats.export`): ``0.0011940000`` -> ``0.001194``, ``0E-10`` ->
    ``0``; None stays None (an empty cell: unknown, never 0)."""
    for row in rows:
        yield [export(value) if isinstance(value, Decimal) else value for value in row]


class ExportViewMixin(MixinBase):
    """``<list>/export.csv``: the change list as it is filtered, searched and ordered, streamed.
    Decimals (costs, prices) are plain digits with trailing zeros trimmed, as in the report CSVs."""

    #: (column, value path for ``values_list``) pairs written to the CSV.
    csv_columns: Sequence[tuple[str, str]] = ()

    def get_export_urls(self) -> list[URLPattern]:
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path(
                "export.csv", self.admin_site.admin_view(self.export_view), name="{}_{}_export".format(*info)
            )
        ]

    def get_export_rows(self, request: HttpRequest) -> tuple[list[str], Iterator[Sequence[Any]]]:
        changelist = self.get_changelist_instance(request)
        queryset = changelist.get_queryset(request)
        paths = [p for _column, p in self.csv_columns]
        return [c for c, _p in self.csv_columns], queryset.values_list(*paths).iterator(chunk_size=2000)

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        header, rows = self.get_export_rows(request)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        name = f"ag2_{self.model._meta.model_name}_{stamp}.csv"
        return csv_response(name, header, plain_decimals(rows))
