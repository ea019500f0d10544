"""Report filters: the period and scope every report is read for, parsed from a request.

:class:`ReportFilter` reads ``start``, ``end`` (UTC days, both inclusive), ``enterprise``,
``workflow``, ``user`` (a user's primary key) and ``tag`` from query parameters (what was wrong with them is returned beside it), writes them
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
    #: A user's primary key (as text): only that user's sessions.
    user: str = ""
    #: Only the sessions with this tag.
    tag: str = ""

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
        user = str(params.get("user") or "").strip()
        tag = str(params.get("tag") or "").strip()
        flt = cls(start=start, end=end, enterprise=enterprise, workflow=workflow, user=user, tag=tag)
        return flt, errors

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def params(self, **overrides: Any) -> dict[str, str]:
        values = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "enterprise": self.enterprise,
            "workflow": self.workflow,
            "user": self.user,
            "tag": self.tag,
        }
        values.update({k: "" if v is None else str(v) for k, v in overrides.items()})
        return {k: v for k, v in values.items() if v}

    def querystring(self, **overrides: Any) -> str:
        return urlencode(self.params(**overrides))

    @property
    def by_people(self) -> bool:
        """Whether a user or a tag is chosen (the model rollups, which have neither, cannot
        answer then: the model comparison reads the calls)."""
        return bool(self.user or self.tag)

    def rollups(self, fields: tuple[str, ...] = ()) -> DailyRollupQuerySet:
        """The rollups of the period and scope, from the table that has the dimensions asked for
        (``fields``) and chosen: ``TagDayRollup`` for a tag, ``UserDayRollup`` for a user, else
        ``DailyRollup``; all three have its columns."""
        from ag2_logging.models import DailyRollup, TagDayRollup, UserDayRollup

        model: Any = DailyRollup
        if self.tag or "tag" in fields:
            model = TagDayRollup
        elif self.user or "user_id" in fields:
            model = UserDayRollup
        qs = (
            DailyRollupQuerySet(model).for_days(self.start, self.end).in_scope(self.enterprise, self.workflow)
        )
        # Columns of the user and tag tables (the queryset is typed for DailyRollup's).
        if self.user:
            qs = qs.filter(**{"user_id": self.user})
        if self.tag:
            qs = qs.filter(**{"tag": self.tag})
        return qs

    def model_rollups(self) -> ModelDayRollupQuerySet:
        """The model rollups of the period and scope: ``ModelDayTotalRollup`` (a row per day and
        model) for every enterprise and workflow, ``ModelDayRollup`` for one; both have the
        columns of the model comparison (day, model, provider, sessions, latency histogram)."""
        from ag2_logging.models import ModelDayRollup, ModelDayTotalRollup

        if not self.enterprise and not self.workflow:
            return ModelDayRollupQuerySet(ModelDayTotalRollup).for_days(self.start, self.end)
        return (
            ModelDayRollupQuerySet(ModelDayRollup)
            .for_days(self.start, self.end)
            .in_scope(self.enterprise, self.workflow)
        )

    def calls(self) -> Any:
        from ag2_logging.models import LLMCall

        calls = LLMCall.objects.started_between(self.start, self.end).in_scope(self.enterprise, self.workflow)
        return self._people(calls, "session__")

    def sessions(self) -> Any:
        from ag2_logging.models import Session

        sessions = Session.objects.started_between(self.start, self.end).in_scope(
            self.enterprise, self.workflow
        )
        return self._people(sessions, "")

    def _people(self, qs: Any, prefix: str) -> Any:
        """``qs`` (sessions, or rows with a ``session``: ``prefix``) of the chosen user and tag."""
        if self.user:
            qs = qs.filter(**{f"{prefix}user_id": self.user_pk()})
        if self.tag:
            qs = qs.filter(**{f"{prefix}tag_rows__tag": self.tag})
        return qs

    def user_pk(self) -> Any:
        """The chosen user's primary key in its field's type (None when it cannot be one)."""
        from django.contrib.auth import get_user_model
        from django.core.exceptions import ValidationError

        pk_field = get_user_model()._meta.pk
        assert pk_field is not None
        try:
            return pk_field.to_python(self.user)
        except (ValidationError, ValueError, TypeError):
            return None

    def sessions_list_params(self, **extra: str) -> dict[str, str]:
        """Query parameters of the session list showing the sessions of this filter."""
        params = {
            "started_at__gte": self.start.isoformat(),
            "started_at__lt": (self.end + dt.timedelta(days=1)).isoformat(),
        }
        for name in ("enterprise", "workflow", "user", "tag"):
            if getattr(self, name):
                params[name] = getattr(self, name)
        params.update(extra)
        return params

    def calls_list_params(self, **extra: str) -> dict[str, str]:
        """Query parameters of the LLM call list showing the calls of this filter (its period,
        enterprise and workflow: the list has no user or tag filter)."""
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
