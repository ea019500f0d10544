"""The change lists' paginator: a count that never reads a whole log table.

Django's admin counts the listed rows with ``SELECT COUNT(*)`` on every page view, which reads
every row (or index entry) the filters keep: about a second for ten million LLM calls on
PostgreSQL. :class:`EstimatedCountPaginator` counts exactly only up to :data:`EXACT_UP_TO` rows
(a ``COUNT(*)`` over a ``LIMIT``-ed subquery, which stops there); past that it takes the
planner's estimate, which costs no row read: ``pg_class.reltuples`` for an unfiltered list, the
row estimate of ``EXPLAIN`` for a filtered one. The list then says "about N". Databases other
than PostgreSQL count exactly past the cap (one more query).

A deep page (``OFFSET`` of thousands of rows) first reads only the primary keys of its rows, in
the list's order, then those rows with their joined session: the rows skipped are read from the
table and its index alone, without the join and the wide rows (at a million calls, page 1,000 of
the call list took 0.9 s in one query, most of it joining and sorting the 50,000 skipped rows).
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from django.core.paginator import Page, Paginator
from django.db import connections

#: Up to this many rows, a list's count is exact.
EXACT_UP_TO = 10_000
#: From this many rows in, a page is read in two steps (see ``EstimatedCountPaginator.page``).
DEFERRED_FROM = 1_000


def planner_estimate(queryset: Any) -> int | None:
    """The number of rows ``queryset`` holds as PostgreSQL's planner estimates it, without
    reading them (None on other databases, or for a table never analyzed): the table's
    ``reltuples`` when nothing filters it, else the top plan node's ``Plan Rows``."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    query = queryset.query
    with connection.cursor() as cursor:
        if not query.where and not query.distinct and not query.combinator:
            cursor.execute(
                "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
            # -1 (PostgreSQL 14+) or 0: never vacuumed nor analyzed, the estimate means nothing.
            return int(row[0]) if row and row[0] and row[0] > 0 else None
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """A ``Paginator`` whose ``count`` is exact up to :data:`EXACT_UP_TO` rows and estimated past
    it (``estimated`` then True; see the module's docstring). An estimate below the true count
    leaves the last pages out of reach (sort the other way to see them); one above it gives
    empty pages past the end."""

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset: Any = self.object_list
        if not hasattr(queryset, "query"):
            return super().count
        capped = queryset.order_by()[: EXACT_UP_TO + 1].count()
        if capped <= EXACT_UP_TO:
            return int(capped)
        estimate = planner_estimate(queryset)
        if estimate is None:
            return int(queryset.count())
        self.estimated = True
        return max(estimate, EXACT_UP_TO + 1)

    def page(self, number: Any) -> Page[Any]:
        """The page ``number``; from ``DEFERRED_FROM`` rows in, in two queries (the page's primary
        keys, in order, then its rows)."""
        queryset: Any = self.object_list
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        if bottom < DEFERRED_FROM or not hasattr(queryset, "query"):
            return super().page(number)
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        keys = list(queryset.values_list("pk", flat=True)[bottom:top])
        rows = {row.pk: row for row in queryset.order_by().filter(pk__in=keys)}
        return Page([rows[key] for key in keys if key in rows], number, self)
