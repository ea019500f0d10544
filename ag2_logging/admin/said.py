"""Search inside what was said: the LLM calls whose (redacted) prompt or response holds some words,
from the calls list (the ``said`` parameter, typed in :class:`SaidFilter`'s box).

* **PostgreSQL**: full-text search at query time, ``to_tsvector(config, request) ||
  to_tsvector(config, response)`` (the JSON documents' string values, not their keys) matched
  ``@@`` a ``websearch_to_tsquery`` (:class:`~django.contrib.postgres.search.SearchQuery` with
  ``search_type="websearch"``: words, ``"a phrase"``, ``-not``, ``or``). Every call the list's
  other filters leave is searched; there is no index (a sequential scan: narrow the dates on a
  large table).
* **Other databases** (SQLite, MariaDB): a bounded fallback. The newest ``FALLBACK_LIMIT`` calls
  the other filters leave are read and kept when every word occurs (case-insensitive, as a
  substring) in the string values of their request or response. The page says so, and says when
  older calls were not searched.

Both read only what the rows hold, after redaction: a secret that was redacted is not found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.db import connections
from django.db.models import F, Func, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

__all__ = ["FALLBACK_LIMIT", "SEARCH_CONFIG", "SaidFilter", "SaidSearch", "search_said"]

#: Calls the fallback (databases without full-text search) reads, newest first.
FALLBACK_LIMIT = 2_000
#: PostgreSQL's text search configuration: ``simple`` lower-cases words and stems nothing, so it
#: suits prompts in any language (``english`` would also find "prices" for "price").
SEARCH_CONFIG = "simple"
#: Where the search's outcome waits for the filter's box to show it (one per request).
_REQUEST_ATTRIBUTE = "_ag2_said_search"


@dataclass
class SaidSearch:
    """How a search ran: ``full_text`` (PostgreSQL), else how many calls the fallback read
    (``scanned``) and whether that was all of them (``complete``: fewer than ``limit``)."""

    text: str
    full_text: bool
    scanned: int = 0
    limit: int = FALLBACK_LIMIT

    @property
    def complete(self) -> bool:
        return self.full_text or self.scanned < self.limit


class _JsonTextVector(Func):
    """``to_tsvector('<config>', request) || to_tsvector('<config>', response)``: PostgreSQL's
    jsonb form indexes string values only."""

    output_field = SearchVectorField()

    def __init__(self, config: str) -> None:
        if not re.fullmatch(r"[a-z_]+", config):
            raise ValueError(f"not a text search configuration name: {config!r}")
        self.config = config
        super().__init__(F("request"), F("response"))

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # type: ignore[override]
        parts, params = [], []
        for expression in self.get_source_expressions():
            sql, more = compiler.compile(expression)
            parts.append(f"to_tsvector('{self.config}'::regconfig, COALESCE({sql}, 'null'::jsonb))")
            params.extend(more)
        return "(" + " || ".join(parts) + ")", params  # a list, as SearchQuery's (the lookup adds them)


def _strings(value: Any) -> Iterator[str]:
    """The string values of a JSON document (keys left out), depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _said(request: Any, response: Any) -> str:
    return "\n".join([*_strings(request), *_strings(response)]).casefold()


def search_said(
    queryset: QuerySet[Any], text: str, *, limit: int = FALLBACK_LIMIT, config: str = SEARCH_CONFIG
) -> tuple[QuerySet[Any], SaidSearch]:
    """The calls of ``queryset`` whose request or response holds ``text``, and how the search ran.
    ``text``: words (on PostgreSQL, web search syntax). ``limit``: the calls the fallback reads,
    newest (``started_at``) first. Blank ``text`` returns ``queryset`` as it is."""
    text = text.strip()
    if connections[queryset.db].vendor == "postgresql":
        query = SearchQuery(text, config=config, search_type="websearch")
        found = queryset.annotate(said_vector=_JsonTextVector(config)).filter(said_vector=query)
        return found, SaidSearch(text=text, full_text=True)
    words = text.casefold().split()
    rows = list(queryset.order_by("-started_at", "-pk").values_list("pk", "request", "response")[:limit])
    hits = [pk for pk, request, response in rows if all(word in _said(request, response) for word in words)]
    return queryset.filter(pk__in=hits), SaidSearch(
        text=text, full_text=False, scanned=len(rows), limit=limit
    )


class SaidFilter(admin.ListFilter):
    """A box on the calls list to search what was said (``?said=words``). The search itself runs
    in the admin's ``get_search_results`` (:meth:`apply`), after every other filter, so the
    fallback's bound counts the calls the other filters leave."""

    title = _("what was said")
    parameter_name = "said"
    template = "admin/ag2_logging/filters/said.html"
    fallback_limit = FALLBACK_LIMIT

    def __init__(self, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        self.request = request
        value = params.pop(self.parameter_name, "")
        self.text = str(value[-1] if isinstance(value, list) and value else value or "").strip()

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str | None]:
        return [self.parameter_name]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset  # see apply()

    @classmethod
    def apply(cls, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """``queryset`` narrowed to the calls that said ``?said=`` (as it is without one)."""
        text = request.GET.get(cls.parameter_name, "").strip()
        if not text:
            return queryset
        found, search = search_said(queryset, text, limit=cls.fallback_limit)
        setattr(request, _REQUEST_ATTRIBUTE, search)
        return found

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        hidden = [
            (key, value)
            for key, values in self.request.GET.lists()
            if key not in (self.parameter_name, "p")
            for value in values
        ]
        yield {
            "text": self.text,
            "parameter": self.parameter_name,
            "hidden": hidden,
            "search": getattr(self.request, _REQUEST_ATTRIBUTE, None),
            "clear": changelist.get_query_string(remove=[self.parameter_name]),
            "limit": self.fallback_limit,
            "full_text": connections[changelist.queryset.db].vendor == "postgresql",
        }
