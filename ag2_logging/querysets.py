"""Chainable QuerySets: every query the admin, reports and tasks make lives here."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

if TYPE_CHECKING:
    from ag2_logging.models import LLMCall, Session  # noqa: F401


TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "total_tokens")


class SessionQuerySet(models.QuerySet["Session"]):
    def for_enterprise(self, enterprise_id: str) -> SessionQuerySet:
        return self.filter(enterprise_id=enterprise_id)

    def for_period(self, start: date | None = None, end: date | None = None) -> SessionQuerySet:
        qs = self
        if start is not None:
            qs = qs.filter(started_at__date__gte=start)
        if end is not None:
            qs = qs.filter(started_at__date__lte=end)
        return qs

    def running(self) -> SessionQuerySet:
        return self.filter(status="running")


class LLMCallQuerySet(models.QuerySet["LLMCall"]):
    def for_session(self, session_id: Any) -> LLMCallQuerySet:
        return self.filter(session_id=session_id)

    def unattributed(self) -> LLMCallQuerySet:
        return self.filter(session__isnull=True)

    def totals(self) -> dict[str, Any]:
        """Calls, errors, unpriced calls, the token kinds and cost, in one query."""
        aggregates: dict[str, Any] = {name: Coalesce(Sum(name), 0) for name in TOKEN_FIELDS}
        aggregates["call_count"] = Count("id")
        aggregates["error_count"] = Count("id", filter=Q(status="error"))
        aggregates["unpriced_calls"] = Count("id", filter=Q(price_status="unknown", status="success"))
        aggregates["retry_count"] = Coalesce(Sum("retries"), 0)
        aggregates["total_cost"] = Sum("cost")
        return self.aggregate(**aggregates)
