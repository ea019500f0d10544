"""The live counters, in a store every process and host shares: the database (``BudgetLedger``
rows, the default) or Redis when ``AG2_LOGGING["BUDGET_REDIS_URL"]`` is set (the budgets' Redis).

Each process hands over what its running sessions counted every ``AG2_LOGGING["LIVE_SECONDS"]``
(``capture.heartbeat.live_deltas``, through :func:`hand_over`); :func:`write` keeps:

* each running session's totals (``call_count``, the token counts, ``total_cost``...): on its
  ``Session`` row (database), or under ``ag2_logging:live:session:<id>`` (Redis, JSON, kept
  :data:`SESSION_TTL` seconds after its last change, :data:`ENDED_TTL` after its end; the row gets
  its totals when the session ends);
* per UTC minute, the calls, the failed calls and the cost (USD): rows ``live:min:<YYYY-MM-DDTHH:MM>``
  (``counter``: calls, ``spent``: cost) and ``live:err:<minute>`` (``counter``: failed calls), or
  the hash ``ag2_logging:live:min:<minute>`` (``calls``, ``errors``, ``spent`` in 1e-10 USD);
  kept :data:`MINUTES_KEPT` minutes;
* per day and per month of ``BUDGET_TIME_ZONE`` and per (enterprise, workflow), calls and cost:
  rows ``live:day:<YYYY-MM-DD>:<scope>`` and ``live:month:<YYYY-MM>:<scope>``, or the hashes
  ``ag2_logging:live:day:<day>`` and ``ag2_logging:live:month:<month>`` (fields ``n:<scope>``
  and ``s:<scope>``, 1e-10 USD), ``<scope>`` being ``["enterprise id", "workflow name"]`` as
  JSON; the previous day and month are kept, older ones dropped (rows) or expired (Redis);
* the newest :data:`LATEST_KEPT` calls of every process and host, as
  ``capture.heartbeat.call_summary`` gives them (no bodies, no error texts): rows
  ``live:call:<ended_at>:<id>`` (``counter``: total tokens, ``spent``: cost, ``period_start`` /
  ``period_end``: the call's times, the rest in :data:`CALL_FIELDS` after the id, as JSON), or
  the capped list ``ag2_logging:live:calls`` (JSON, newest first).

Every addition is atomic: an ``UPDATE ... SET counter = counter + n`` (a row created on first
use), all in one transaction; on Redis one ``MULTI``/``EXEC`` of ``HINCRBY`` with its ``EXPIREAT``,
so any number of processes add to the same counters. Reading them costs O(running sessions +
scopes seen today) (:func:`read`), never a scan of call rows. After a write, a ``live.changed``
message goes to the Channels group :data:`GROUP` when Django Channels and a channel layer that
reaches other processes (Redis) are configured, so the dashboards' WebSockets refresh at once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from django.db import IntegrityError, transaction
from django.db.models import F

from ag2_logging.budgets import enforce, periods
from ag2_logging.budgets.ledger import from_units, to_units
from ag2_logging.conf import conf
from ag2_logging.models import BudgetLedger, Session

logger = logging.getLogger("ag2_logging.live")
#: The Channels group the dashboards' WebSockets listen on.
GROUP = "ag2_logging.live"
#: Key prefixes. None is another's prefix, in any letter case (SQLite's LIKE ignores case).
MINUTE_PREFIX, ERROR_PREFIX, DAY_PREFIX, MONTH_PREFIX = "live:min:", "live:err:", "live:day:", "live:month:"
CALL_PREFIX = "live:call:"
#: Calls kept for the page's "latest calls" (every process's newest, together).
LATEST_KEPT = 10
#: Minutes of per-minute counters kept (the page shows the last 60).
MINUTES_KEPT = 120
#: Seconds a running session's totals stay in Redis after their last change / after its end.
SESSION_TTL, ENDED_TTL = 7 * 86_400, 300
#: The fields of a call line after its id, in the order a row's key stores them.
CALL_FIELDS = (
    "session_id",
    "enterprise_id",
    "workflow_name",
    "agent_name",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "price_status",
    "latency_ms",
    "status",
)
#: The longest text a call's line keeps (names are cut: a row's key holds 600 characters).
_NAME_CHARS = 60
_pruned = {"minute": "", "day": ""}


def minute_key(at: datetime) -> str:
    """``2026-03-09T14:05``: the UTC minute ``at`` falls in."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def scope_key(enterprise_id: str, workflow_name: str) -> str:
    return json.dumps([enterprise_id, workflow_name], ensure_ascii=False)


def parse_scope(text: str) -> tuple[str, str] | None:
    """``(enterprise, workflow)`` from :func:`scope_key`'s text, None when it is not one."""
    try:
        enterprise, workflow = json.loads(text)
    except (ValueError, TypeError):
        return None
    return str(enterprise), str(workflow)


@dataclass
class Summary:
    """One hand-over, added up: what every store writes."""

    calls: int = 0
    errors: int = 0
    cost: Decimal = Decimal(0)
    #: scope -> [calls, cost]
    scopes: dict[str, list[Any]] = field(default_factory=dict)
    running: list[dict[str, Any]] = field(default_factory=list)
    ended: list[dict[str, Any]] = field(default_factory=list)
    #: The calls' lines, oldest first.
    latest: list[dict[str, Any]] = field(default_factory=list)


def summarize(deltas: list[dict[str, Any]]) -> Summary:
    found = Summary()
    for item in deltas:
        (found.running if item["running"] else found.ended).append(item)
        delta = item["delta"]
        found.calls += delta["call_count"]
        found.errors += delta["error_count"]
        found.cost += delta["total_cost"]
        entry = found.scopes.setdefault(
            scope_key(item["enterprise_id"], item["workflow_name"]), [0, Decimal(0)]
        )
        entry[0] += delta["call_count"]
        entry[1] += delta["total_cost"]
        found.latest += [
            {k: v[:_NAME_CHARS] if isinstance(v, str) else v for k, v in line.items()}
            for line in item.get("calls") or []
        ]
    found.latest.sort(key=lambda c: (c.get("ended_at") or "", c.get("id") or ""))
    found.latest = found.latest[-LATEST_KEPT:]
    return found


@dataclass
class Figures:
    """What a store holds for the dashboard (:func:`read`)."""

    #: minute -> (calls, errors)
    minutes: dict[str, tuple[int, int]]
    #: (enterprise, workflow, calls, cost) per scope, today and this month
    day: list[tuple[str, str, int, Decimal]]
    month: list[tuple[str, str, int, Decimal]]
    #: The newest call lines, newest first (``call_summary``'s fields, ``cost`` a string or None).
    calls: list[dict[str, Any]]
    #: session id (string) -> its live totals, for the sessions asked about; None: the rows hold them.
    running: dict[str, dict[str, Any]] | None = None


class Store(Protocol):
    name: str

    def write(self, summary: Summary, at: datetime) -> None: ...

    def read(
        self, minutes: list[str], day: str, month: str, session_ids: list[str]
    ) -> Figures: ...  # pragma: no cover


# -- the database ---------------------------------------------------------------------------------


def _add(key: str, calls: int, cost: Decimal) -> None:
    """``counter += calls`` and ``spent += cost`` on row ``key`` (created when missing)."""
    if BudgetLedger.objects.filter(key=key).update(counter=F("counter") + calls, spent=F("spent") + cost):
        return
    try:
        with transaction.atomic():
            BudgetLedger.objects.create(key=key, counter=calls, spent=cost)
    except IntegrityError:  # another process created it first
        BudgetLedger.objects.filter(key=key).update(counter=F("counter") + calls, spent=F("spent") + cost)


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _call_key(line: dict[str, Any]) -> str:
    """``live:call:<ended_at UTC>:<id>:<CALL_FIELDS as JSON>``, at most 600 characters."""
    ended = _time(line.get("ended_at")) or enforce.now()
    values = [line.get(name) for name in CALL_FIELDS]
    for limit in (_NAME_CHARS, 16):
        short = [v[:limit] if isinstance(v, str) else v for v in values]
        key = "{}{}:{}:{}".format(
            CALL_PREFIX,
            ended.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
            line.get("id") or "",
            json.dumps(short, ensure_ascii=False),
        )
        if len(key) <= 600:
            break
    return key


def _call_line(
    key: str, tokens: int, started: datetime | None, ended: datetime | None
) -> dict[str, Any] | None:
    """A call line back from its row (None if the key is not one)."""
    try:  # the stamp has a fixed width (26 characters) and colons of its own
        call_id, rest = key[len(CALL_PREFIX) + len("2026-03-09T14:05:00.000000:") :].split(":", 1)
        values = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(values, list) or len(values) != len(CALL_FIELDS):
        return None
    line = dict(zip(CALL_FIELDS, values, strict=True))
    line["id"] = call_id
    line["total_tokens"] = int(tokens)
    line["started_at"] = started.isoformat() if started else None
    line["ended_at"] = ended.isoformat() if ended else None
    return line


class DatabaseStore:
    """``BudgetLedger`` rows ``live:*``, one atomic ``UPDATE`` per counter (any database)."""

    name = "database"

    def write(self, summary: Summary, at: datetime) -> None:
        with transaction.atomic():
            self._write(summary, at)

    def _write(self, summary: Summary, at: datetime) -> None:
        _running_totals(summary.running)
        minute = minute_key(at)
        if summary.calls or summary.cost:
            _add(MINUTE_PREFIX + minute, summary.calls, summary.cost)
        if summary.errors:
            _add(ERROR_PREFIX + minute, summary.errors, Decimal(0))
        zone = conf.resolved.budget_time_zone
        day, month = periods.period_of("day", at, zone).key, periods.period_of("month", at, zone).key
        for scope, (n, spent) in summary.scopes.items():
            if n or spent:
                _add(f"{DAY_PREFIX}{day}:{scope}", n, spent)
                _add(f"{MONTH_PREFIX}{month}:{scope}", n, spent)
        if summary.latest:
            self._add_calls(summary.latest)
        _prune(at, minute, day)

    @staticmethod
    def _add_calls(lines: list[dict[str, Any]]) -> None:
        rows = []
        for line in lines:
            cost = _decimal(line.get("cost"))
            rows.append(
                BudgetLedger(
                    key=_call_key(line),
                    counter=int(line.get("total_tokens") or 0),
                    spent=cost or Decimal(0),
                    period_start=_time(line.get("started_at")),
                    period_end=_time(line.get("ended_at")),
                )
            )
        BudgetLedger.objects.bulk_create(rows, ignore_conflicts=True)
        calls = BudgetLedger.objects.filter(key__startswith=CALL_PREFIX)
        edge = list(calls.order_by("-key").values_list("key", flat=True)[LATEST_KEPT - 1 : LATEST_KEPT])
        if edge:
            calls.filter(key__lt=edge[0]).delete()

    def read(self, minutes: list[str], day: str, month: str, session_ids: list[str]) -> Figures:
        counts: dict[str, list[int]] = {m: [0, 0] for m in minutes}
        keys = [p + m for m in minutes for p in (MINUTE_PREFIX, ERROR_PREFIX)]
        for key, counter in BudgetLedger.objects.filter(key__in=keys).values_list("key", "counter"):
            counts[key[len(MINUTE_PREFIX) :]][0 if key.startswith(MINUTE_PREFIX) else 1] += int(counter)
        rows = BudgetLedger.objects.filter(key__startswith=CALL_PREFIX).order_by("-key")
        calls = [
            line
            for key, tokens, start, end in rows.values_list("key", "counter", "period_start", "period_end")[
                :LATEST_KEPT
            ]
            if (line := _call_line(key, tokens, start, end)) is not None
        ]
        return Figures(
            minutes={m: (c[0], c[1]) for m, c in counts.items()},
            day=self._scopes(f"{DAY_PREFIX}{day}:"),
            month=self._scopes(f"{MONTH_PREFIX}{month}:"),
            calls=calls,
        )

    @staticmethod
    def _scopes(prefix: str) -> list[tuple[str, str, int, Decimal]]:
        found = []
        for key, counter, spent in BudgetLedger.objects.filter(key__startswith=prefix).values_list(
            "key", "counter", "spent"
        ):
            scope = parse_scope(key[len(prefix) :])
            if scope is not None:
                found.append((*scope, int(counter), Decimal(str(spent))))
        return found


def _decimal(value: Any) -> Decimal | None:
    try:
        return None if value is None else Decimal(str(value))
    except InvalidOperation:
        return None


def _running_totals(items: list[dict[str, Any]]) -> None:
    """The running sessions' totals onto their rows, one ``UPDATE`` each (measured faster than
    one ``UPDATE`` with a ``CASE`` per field over 200 ids), only on rows still ``running``
    (a session's final row, written when it ended, is never overwritten with older figures)."""
    for item in items:
        Session.objects.filter(pk=item["session_id"], status=Session.Status.RUNNING).update(**item["totals"])


def _prune(at: datetime, minute: str, day: str) -> None:
    """Drop per-minute rows older than ``MINUTES_KEPT`` (once a minute), and day and month rows
    older than the previous day and month (once a day)."""
    if _pruned["minute"] != minute:
        _pruned["minute"] = minute
        cutoff = minute_key(at - timedelta(minutes=MINUTES_KEPT))
        for prefix in (MINUTE_PREFIX, ERROR_PREFIX):
            BudgetLedger.objects.filter(key__startswith=prefix, key__lt=prefix + cutoff).delete()
    if _pruned["day"] != day:
        _pruned["day"] = day
        zone = conf.resolved.budget_time_zone
        yesterday = periods.period_of("day", at - timedelta(days=1), zone).key
        last_month = periods.period_of("month", at.replace(day=1) - timedelta(days=1), zone).key
        BudgetLedger.objects.filter(key__startswith=DAY_PREFIX, key__lt=DAY_PREFIX + yesterday).delete()
        BudgetLedger.objects.filter(key__startswith=MONTH_PREFIX, key__lt=MONTH_PREFIX + last_month).delete()


# -- Redis ----------------------------------------------------------------------------------------


def _json_totals(totals: dict[str, Any]) -> str:
    return json.dumps({k: str(v) if isinstance(v, Decimal) else v for k, v in totals.items()})


class RedisStore:
    """Keys ``ag2_logging:live:*`` on the budgets' Redis (``BUDGET_REDIS_URL``): a hand-over is
    one ``MULTI``/``EXEC`` round trip, a read one pipelined round trip. Money in 1e-10 USD
    (``budgets.ledger.to_units``, rounded up like the budgets' own Redis ledger)."""

    name = "redis"
    PREFIX = "ag2_logging:live:"

    def __init__(self, url: str) -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url)

    def write(self, summary: Summary, at: datetime) -> None:
        p = self.PREFIX
        pipe = self._redis.pipeline(transaction=True)
        minute = minute_key(at)
        if summary.calls or summary.cost or summary.errors:
            key = p + "min:" + minute
            start = at.astimezone(UTC).replace(second=0, microsecond=0)
            pipe.hincrby(key, "calls", summary.calls)
            pipe.hincrby(key, "errors", summary.errors)
            pipe.hincrby(key, "spent", to_units(summary.cost))
            pipe.expireat(key, int(start.timestamp()) + (MINUTES_KEPT + 1) * 60)
        zone = conf.resolved.budget_time_zone
        for kind in ("day", "month"):
            period = periods.period_of(kind, at, zone)
            assert period.end is not None
            # The previous day / month stays readable, as the database rows do: expire at the
            # end of the period after this one.
            expire = periods.period_of(kind, period.end, zone).end
            assert expire is not None
            key = f"{p}{kind}:{period.key}"
            for scope, (n, spent) in summary.scopes.items():
                if n or spent:
                    pipe.hincrby(key, "n:" + scope, n)
                    pipe.hincrby(key, "s:" + scope, to_units(spent))
            pipe.expireat(key, int(expire.timestamp()))
        for item in summary.running:
            pipe.set(f"{p}session:{item['session_id']}", _json_totals(item["totals"]), ex=SESSION_TTL)
        for item in summary.ended:
            pipe.set(f"{p}session:{item['session_id']}", _json_totals(item["totals"]), ex=ENDED_TTL)
        if summary.latest:
            pipe.lpush(p + "calls", *(json.dumps(line, ensure_ascii=False) for line in summary.latest))
            pipe.ltrim(p + "calls", 0, LATEST_KEPT - 1)
            pipe.expire(p + "calls", MINUTES_KEPT * 60)
        pipe.execute()

    def read(self, minutes: list[str], day: str, month: str, session_ids: list[str]) -> Figures:
        p = self.PREFIX
        pipe = self._redis.pipeline(transaction=False)
        for m in minutes:
            pipe.hmget(p + "min:" + m, "calls", "errors")
        pipe.hgetall(f"{p}day:{day}")
        pipe.hgetall(f"{p}month:{month}")
        pipe.lrange(p + "calls", 0, LATEST_KEPT - 1)
        if session_ids:
            pipe.mget([f"{p}session:{s}" for s in session_ids])
        answers = pipe.execute()
        counts = {m: (int(a[0] or 0), int(a[1] or 0)) for m, a in zip(minutes, answers, strict=False)}
        rest = answers[len(minutes) :]
        calls = []
        for raw in rest[2]:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                calls.append(line)
        running: dict[str, dict[str, Any]] = {}
        for session_id, raw in zip(session_ids, rest[3] if session_ids else [], strict=False):
            if raw:
                running[session_id] = json.loads(raw)
        return Figures(
            minutes=counts,
            day=self._scopes(rest[0]),
            month=self._scopes(rest[1]),
            calls=calls,
            running=running,
        )

    @staticmethod
    def _scopes(fields: dict[bytes, bytes]) -> list[tuple[str, str, int, Decimal]]:
        found = []
        for name, value in fields.items():
            text = name.decode()
            if not text.startswith("n:"):
                continue
            scope = parse_scope(text[2:])
            if scope is not None:
                found.append((*scope, int(value), from_units(fields.get(b"s:" + name[2:]))))
        return found


# -- the configured store --------------------------------------------------------------------------

_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def store() -> Store:
    """Redis when ``BUDGET_REDIS_URL`` is set (one client per URL and process), else the database."""
    url = conf.resolved.budget_redis_url or ""
    found = _stores.get(url)
    if found is None:
        with _stores_lock:
            found = _stores.get(url)
            if found is None:
                found = _stores[url] = RedisStore(url) if url else DatabaseStore()
    return found


def write(deltas: list[dict[str, Any]], at: datetime | None = None) -> None:
    """Store what ``capture.heartbeat.live_deltas()`` returned, all at once (a reader never sees
    today's calls without this month's), then notify. Database store: on the database thread.
    Raises what the store raised (``DatabaseError``, ``redis.RedisError``)."""
    at = at or enforce.now().astimezone(UTC)
    store().write(summarize(deltas), at)
    notify()


#: Live-counter writes that failed (``writes``): those counts are lost, the sessions' records
#: are not. Kept apart from the capture's ``db_failures``, which count the record's own writes.
failures = {"writes": 0}


def write_quietly(deltas: list[dict[str, Any]]) -> None:
    """:func:`write`, never raising: a failure is counted in :data:`failures` and logged."""
    try:
        write(deltas)
    except Exception:
        failures["writes"] += 1
        logger.warning("ag2_logging: could not store the live counters; these counts are lost", exc_info=True)


def hand_over(deltas: list[dict[str, Any]], submit_db: Callable[..., Any]) -> None:
    """The heartbeat's hand-over: Redis is written from the calling thread (no database write at
    all); the database store through ``submit_db(write_quietly, deltas)`` (the app's database thread).
    Never raises (a store that cannot be reached is counted and logged by :func:`write_quietly`:
    these counts are lost, the sessions' own records are not)."""
    if isinstance(store(), RedisStore):
        write_quietly(deltas)
        return
    try:
        submit_db(write_quietly, deltas)
    except RuntimeError:  # the database thread was shut down: the process is exiting
        logger.debug("ag2_logging: live counters not handed over at exit")


def read(minutes: list[str], day: str, month: str, session_ids: list[str]) -> Figures:
    """The figures the dashboard shows: per-minute calls and errors for ``minutes``, the scopes
    of ``day`` and ``month`` (period keys), the newest calls, and (Redis) the live totals of
    ``session_ids``. Raises what the store raised."""
    return store().read(minutes, day, month, session_ids)


def notify() -> None:
    """Tell the dashboards' WebSockets that the counters moved (no-op without Django Channels
    or ``CHANNEL_LAYERS``; a layer that cannot be reached is logged, never raised)."""
    from django.conf import settings

    if not getattr(settings, "CHANNEL_LAYERS", None):
        return
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer
    except ImportError:
        return
    try:
        layer = get_channel_layer()
        # The in-memory layer's queues belong to the server's event loop: a message from this
        # thread could not wake it safely. Its consumers refresh every LIVE_SECONDS instead.
        if layer is not None and type(layer).__name__ != "InMemoryChannelLayer":
            async_to_sync(layer.group_send)(GROUP, {"type": "live.changed"})
    except Exception:
        logger.warning("ag2_logging: could not notify the live dashboards", exc_info=True)
