"""Period math: which period a moment falls in, where it starts and where it ends.

Pure functions of their arguments (no ORM, no settings). Calendar periods are read in the time
zone given (``AG2_LOGGING["BUDGET_TIME_ZONE"]``, UTC by default): a day starts at local midnight,
a week on Monday at local midnight, a month on its first day at local midnight. A rolling window
of N hours is the current whole UTC hour and the N-1 before it: it moves on at each hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import NamedTuple


class Period(NamedTuple):
    """``key`` names the period in ledgers (``2026-03-09`` for a day, ``2026-W11`` for a week,
    ``2026-03`` for a month, ``h2026-03-09T14`` for a rolling window's current hour); ``start``
    (inclusive) and ``end`` (exclusive) are aware datetimes, ``end`` None for ``session``."""

    key: str
    start: datetime | None
    end: datetime | None


def _local_midnight(day: datetime, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _add_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=1)


def period_of(period: str, now: datetime, tz: tzinfo = UTC, window_hours: int | None = None) -> Period:
    """The period of kind ``period`` (``day``, ``week``, ``month``, ``rolling_hours``,
    ``session``) that contains ``now`` (aware). Raises ValueError for another kind."""
    local = now.astimezone(tz)
    if period == "day":
        start = _local_midnight(local, tz)
        end = _local_midnight(start + timedelta(days=1, hours=3), tz)
        return Period(start.strftime("%Y-%m-%d"), start.astimezone(UTC), end.astimezone(UTC))
    if period == "week":
        monday = _local_midnight(local, tz) - timedelta(days=local.weekday())
        start = _local_midnight(monday + timedelta(hours=3), tz)
        end = _local_midnight(start + timedelta(days=7, hours=3), tz)
        year, week, _ = start.isocalendar()
        return Period(f"{year}-W{week:02d}", start.astimezone(UTC), end.astimezone(UTC))
    if period == "month":
        start = _local_midnight(local.replace(day=1), tz)
        end = _add_month(start)
        return Period(start.strftime("%Y-%m"), start.astimezone(UTC), end.astimezone(UTC))
    if period == "rolling_hours":
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        hours = max(1, window_hours or 1)
        return Period(
            hour.strftime("h%Y-%m-%dT%H"), hour - timedelta(hours=hours - 1), hour + timedelta(hours=1)
        )
    if period == "session":
        return Period("session", None, None)
    raise ValueError(f"unknown budget period {period!r}")


def window_keys(now: datetime, window_hours: int) -> list[str]:
    """The hour keys of a rolling window ending in ``now``'s hour, oldest first."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [
        (hour - timedelta(hours=n)).strftime("h%Y-%m-%dT%H") for n in range(max(1, window_hours) - 1, -1, -1)
    ]
