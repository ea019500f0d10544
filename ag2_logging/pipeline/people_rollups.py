"""The user and tag rollups: ``DailyRollup``'s figures per user (``UserDayRollup``) and per tag
(``TagDayRollup``), kept in the same transactions as it.

* ``add_session`` (from ``summarize_session``) adds a finished session's groups of calls to its
  user's rows and to one row per tag (a session with two tags counts under both), and returns
  what it added (``Session.rollup_shares``);
* ``resync`` (from ``refresh_session_totals``, which ``reprice`` calls under the session's lock)
  moves those rows by the difference between the session's calls now and what was added, so
  a reprice changes them exactly as it changes ``DailyRollup``;
* ``rebuild`` (from ``rebuild_rollups``) recomputes them from the raw rows, with the same days
  kept as ``DailyRollup``'s.

Rows are keyed by the user's primary key as text ("" without a user): a deleted user's sessions
keep their rows; a rebuild counts them under "" (their ``Session.user`` is NULL by then).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, Sum

from ag2_logging.models import LLMCall, Session, TagDayRollup, UserDayRollup
from ag2_logging.querysets import ROLLUP_SUMS

#: ``(KEY values, grouped row)`` pairs of one session, in key order (``rollups.key_order``).
Keyed = Iterable[tuple[tuple[Any, ...], dict[str, Any]]]
Numbers = Callable[[dict[str, Any]], dict[str, Any]]

BASE = ("day", "enterprise_id", "workflow_name", "model", "agent_name", "provider")


def user_value(session: Session) -> str:
    """The rollups' user key of ``session``: its user's primary key as text, "" without one."""
    return "" if session.user_id is None else str(session.user_id)


def _add(model: Any, key: dict[str, Any], numbers: dict[str, Any]) -> None:
    moves = {name: F(name) + numbers[name] for name in ROLLUP_SUMS}
    if model.objects.filter(**key).update(**moves):  # the row exists: one UPDATE (as add_to_rollups)
        return
    rollup, created = model.objects.get_or_create(**key, defaults=numbers)
    if not created:
        model.objects.filter(pk=rollup.pk).update(**moves)


def add_session(session: Session, keyed: Keyed, numbers_of: Numbers) -> dict[str, Any]:
    """Add the session's groups to its user's and its tags' rows; returns ``rollup_shares``:
    ``{"user_id", "tags", "rows": [[day, model, agent, provider, cost, unpriced calls], ...]}``."""
    return add_sessions([(session, keyed)], numbers_of)[session.pk]


def add_sessions(batch: Iterable[tuple[Session, Keyed]], numbers_of: Numbers) -> dict[Any, dict[str, Any]]:
    """``add_session`` for several sessions (``(session, its keyed groups)``), a row shared by
    several moved once by their sum; returns each session's ``rollup_shares`` by primary key.

    The rows are locked as one session's would be, in one order for every writer: the user
    rows by (key, user), then the tag rows by (tag, key, user)."""
    users: dict[tuple[Any, ...], dict[str, Any]] = {}
    tagged: dict[tuple[Any, ...], dict[str, Any]] = {}
    shares: dict[Any, dict[str, Any]] = {}
    for session, keyed in batch:
        user = user_value(session)
        tags = sorted(set(session.tags or ()))
        groups = [(key, numbers_of(row)) for key, row in keyed]
        for key, numbers in groups:
            sum_into(users, (*key, user), numbers)
            for tag in tags:
                sum_into(tagged, (tag, *key, user), numbers)
        rows = [
            [key[0].isoformat(), key[3], key[4], key[5], str(n["cost"]), n["unpriced_calls"]]
            for key, n in groups
        ]
        shares[session.pk] = {"user_id": user, "tags": tags, "rows": rows}
    for (*base, user), numbers in sorted(users.items(), key=_row_order):
        _add(UserDayRollup, {**dict(zip(BASE, base, strict=True)), "user_id": user}, numbers)
    for (tag, *base, user), numbers in sorted(tagged.items(), key=_row_order):
        _add(TagDayRollup, {**dict(zip(BASE, base, strict=True)), "user_id": user, "tag": tag}, numbers)
    return shares


def sum_into(
    rows: dict[tuple[Any, ...], dict[str, Any]], key: tuple[Any, ...], numbers: dict[str, Any]
) -> None:
    """Add ``numbers`` (a group's figures) to those of ``key`` in ``rows``, figure by figure."""
    before = rows.get(key)
    rows[key] = dict(numbers) if before is None else {name: before[name] + numbers[name] for name in before}


def _row_order(item: tuple[tuple[Any, ...], Any]) -> tuple[Any, ...]:
    """Sort key of a row key holding a day (``None`` first, as ``rollups.key_order``)."""
    return tuple(dt.date.min if value is None else value for value in item[0])


def _session_groups(session: Session, day: Any) -> dict[tuple[str, str, str, str], tuple[Decimal, int]]:
    """``(day, model, agent, provider) -> (cost of the priced calls, unpriced calls)`` now;
    ``day``: the rollups' day expression (``rollups.rollup_day()``)."""
    grouped = (
        LLMCall.objects.filter(session=session)
        .annotate(_day=day)
        .values("_day", "model", "agent_name", "provider")
        .annotate(cost_sum=Sum("cost"), unpriced=Count("id", filter=Q(cost__isnull=True)))
        .order_by()
    )
    return {
        (row["_day"].isoformat(), row["model"], row["agent_name"], row["provider"]): (
            row["cost_sum"] if row["cost_sum"] is not None else Decimal(0),
            int(row["unpriced"]),
        )
        for row in grouped
    }


def resync(session: Session, day: Any) -> None:
    """Move the session's user and tag rows by what changed in its calls' costs since they were
    added (a reprice); nothing for a session not summarized yet. The caller holds the session's
    row lock (as ``reprice`` does); ``day``: the rollups' day expression."""
    shares = session.rollup_shares
    if session.summarized_at is None or not isinstance(shares, dict):
        return
    old = {(d, m, a, p): (Decimal(c), int(u)) for d, m, a, p, c, u in shares.get("rows") or ()}
    new = _session_groups(session, day)
    changed = False
    for group in sorted(old.keys() | new.keys()):
        before, after = old.get(group, (Decimal(0), 0)), new.get(group, (Decimal(0), 0))
        if before == after:
            continue
        changed = True
        key = {
            "day": dt.date.fromisoformat(group[0]),
            "enterprise_id": session.enterprise_id,
            "workflow_name": session.workflow_name,
            "model": group[1],
            "agent_name": group[2],
            "provider": group[3],
            "user_id": shares.get("user_id", ""),
        }
        moves = {
            "cost": F("cost") + (after[0] - before[0]),
            "unpriced_calls": F("unpriced_calls") + (after[1] - before[1]),
        }
        UserDayRollup.objects.filter(**key).update(**moves)
        for tag in shares.get("tags") or ():
            TagDayRollup.objects.filter(**key, tag=tag).update(**moves)
    if changed:
        shares = {
            **shares,
            "rows": [[*group, str(cost), unpriced] for group, (cost, unpriced) in sorted(new.items())],
        }
        Session.objects.filter(pk=session.pk).update(rollup_shares=shares)
        session.rollup_shares = shares


def rebuild(
    finished: Any,
    calls: Any,
    since: dt.date | None,
    batch_size: int,
    grouped: Callable[[Any, dict[str, Any]], Any],
    numbers_of: Numbers,
    day: Any,
) -> None:
    """Recompute the user and tag rows of days from ``since`` on (all days: None) from ``calls``
    (the finished sessions' calls of those days), and the ``rollup_shares`` of their sessions.
    ``grouped(calls, extra)``: ``rollups._grouped`` with the session's fields and ``extra``."""
    users, tags = UserDayRollup.objects.all(), TagDayRollup.objects.all()
    if since is not None:
        users, tags = users.filter(day__gte=since), tags.filter(day__gte=since)
    users.delete()
    tags.delete()

    def key(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "day": row["day"],
            "enterprise_id": row["enterprise"],
            "workflow_name": row["workflow"],
            "model": row["model"],
            "agent_name": row["agent_name"],
            "provider": row["provider"],
            "user_id": "" if row["user"] is None else str(row["user"]),
        }

    user_rows = grouped(calls, {"user": F("session__user_id")})
    UserDayRollup.objects.bulk_create(
        (UserDayRollup(**key(row), **numbers_of(row)) for row in user_rows), batch_size=batch_size
    )
    tag_rows = grouped(calls, {"user": F("session__user_id"), "tag": F("session__tag_rows__tag")})
    TagDayRollup.objects.bulk_create(
        (
            TagDayRollup(**key(row), tag=row["tag"], **numbers_of(row))
            for row in tag_rows
            if row["tag"] is not None
        ),
        batch_size=batch_size,
    )
    _rebuild_shares(finished, calls if since is not None else None, batch_size, day)


def _rebuild_shares(finished: Any, calls: Any, batch_size: int, day: Any) -> None:
    """``rollup_shares`` of the finished sessions with a call among ``calls`` (None: all), from
    every call of theirs (days before ``since`` too: those rows were kept, not rebuilt)."""
    sessions = finished if calls is None else finished.filter(pk__in=calls.values("session_id"))
    rows: dict[Any, list[list[Any]]] = {}
    grouped = (
        LLMCall.objects.filter(session__in=sessions)
        .annotate(_day=day)
        .values("session_id", "_day", "model", "agent_name", "provider")
        .annotate(cost_sum=Sum("cost"), unpriced=Count("id", filter=Q(cost__isnull=True)))
        .order_by("session_id", "_day", "model", "agent_name", "provider")
    )
    for row in grouped.iterator(chunk_size=10_000):
        cost = row["cost_sum"] if row["cost_sum"] is not None else Decimal(0)
        rows.setdefault(row["session_id"], []).append(
            [
                row["_day"].isoformat(),
                row["model"],
                row["agent_name"],
                row["provider"],
                str(cost),
                int(row["unpriced"]),
            ]
        )
    batch: list[Session] = []
    for session in sessions.only("pk", "user_id", "tags").iterator(chunk_size=batch_size):
        session.rollup_shares = {
            "user_id": user_value(session),
            "tags": sorted(set(session.tags or ())),
            "rows": rows.get(session.pk, []),
        }
        batch.append(session)
        if len(batch) >= batch_size:
            Session.objects.bulk_update(batch, ["rollup_shares"])
            batch = []
    if batch:
        Session.objects.bulk_update(batch, ["rollup_shares"])
