"""Report filters: the period and scope every report is read for, parsed from a request.

:class:`ReportFilter` reads ``start``, ``end`` (UTC days, both inclusive), ``enterprise`` and
``workflow`` from query parameters (what was wrong with them is returned beside it), writes them
back as query strings, and gives the querysets of its period and scope (the models are imported
when a queryset is asked for, not with this module).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.utils.translation import gettext_lazy as _

from ag2_logging.querysets import DailyRollupQuerySet, ModelDayRollupQuerySet

__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "ReportFilter"]

DEFAULT_DAYS = 30
#: A longer range is cut to this many days (a chart of more daily bars is unreadable anyway).
MAX_DAYS = 731


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _parse_date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class ReportFilter:
    """The period (UTC days, both inclusive) and the scope every report is filtered by."""

    start: dt.date
    end: dt.date
    enterprise: str = ""
    workflow: str = ""

    @classmethod
    def default(cls, today: dt.date | None = None) -> ReportFilter:
        end = today or _utc_today()
        return cls(start=end - dt.timedelta(days=DEFAULT_DAYS - 1), end=end)

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, today: dt.date | None = None
    ) -> tuple[ReportFilter, list[str]]:
        """Read ``start``, ``end`` (YYYY-MM-DD), ``enterprise`` and ``workflow``; also returns
        what was wrong with them (the defaults are used instead)."""
        errors: list[str] = []
        default = cls.default(today)
        start, end = default.start, default.end
        raw_start, raw_end = params.get("start") or "", params.get("end") or ""
        parsed_start, parsed_end = _parse_date(raw_start), _parse_date(raw_end)
        if raw_start and parsed_start is None:
            errors.append(str(_("“%(value)s” is not a date (YYYY-MM-DD).") % {"value": raw_start}))
        if raw_end and parsed_end is None:
            errors.append(str(_("“%(value)s” is not a date (YYYY-MM-DD).") % {"value": raw_end}))
        if parsed_end is not None:
            end = parsed_end
            if parsed_start is None:
                start = end - dt.timedelta(days=DEFAULT_DAYS - 1)
        if parsed_start is not None:
            start = parsed_start
            if parsed_end is None and start > end:
                end = start
        if start > end:
            errors.append(str(_("The period ends before it starts: the dates were swapped.")))
            start, end = end, start
        if (end - start).days >= MAX_DAYS:
            errors.append(str(_("Periods are at most %(days)d days long.") % {"days": MAX_DAYS}))
            start = end - dt.timedelta(days=MAX_DAYS - 1)
        enterprise = str(params.get("enterprise") or "").strip()
        workflow = str(params.get("workflow") or "").strip()
        return cls(start=start, end=end, enterprise=enterprise, workflow=workflow), errors

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def params(self, **overrides: Any) -> dict[str, str]:
        values = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "enterprise": self.enterprise,
            "workflow": self.workflow,
        }
        values.update({k: "" if v is None else str(v) for k, v in overrides.items()})
        return {k: v for k, v in values.items() if v}

    def querystring(self, **overrides: Any) -> str:
        return urlencode(self.params(**overrides))

    def rollups(self) -> DailyRollupQuerySet:
        from ag2_logging.models import DailyRollup

        return (
            DailyRollupQuerySet(DailyRollup)
            .for_days(self.start, self.end)
            .in_scope(self.enterprise, self.workflow)
        )

    def model_rollups(self) -> ModelDayRollupQuerySet:
        from ag2_logging.models import ModelDayRollup

        return (
            ModelDayRollupQuerySet(ModelDayRollup)
            .for_days(self.start, self.end)
            .in_scope(self.enterprise, self.workflow)
        )

    def calls(self) -> Any:
        from ag2_logging.models import LLMCall

        return LLMCall.objects.started_between(self.start, self.end).in_scope(self.enterprise, self.workflow)

    def sessions(self) -> Any:
        from ag2_logging.models import Session

        return Session.objects.started_between(self.start, self.end).in_scope(self.enterprise, self.workflow)

    def calls_list_params(self, **extra: str) -> dict[str, str]:
        """Query parameters of the LLM call list showing the calls of this filter."""
        params = {
            "started_at__gte": self.start.isoformat(),
            "started_at__lt": (self.end + dt.timedelta(days=1)).isoformat(),
        }
        if self.enterprise:
            params["enterprise"] = self.enterprise
        if self.workflow:
            params["workflow"] = self.workflow
        params.update(extra)
        return params


# ---------------------------------------------------------------------------------------------
# Figures
