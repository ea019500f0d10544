"""Enforcement at the OpenAI SDK's request boundary, for both AG2 generations.

``check(...)`` runs before a request is sent: it finds the budgets that count the current
session, prices the call's worst case (prompt tokens estimated from the request body, then
``max_tokens`` / ``max_completion_tokens`` or ``AG2_LOGGING["BUDGET_OUTPUT_TOKENS"]`` at the
model's output price, through ``ag2_logging.pricing``) and reserves it in each budget's ledger.
If a ``block`` budget would be passed, nothing is reserved, the call is not sent and
``BudgetExceeded`` is raised. ``settle(reservation, usage)`` turns the reservation into the
call's real cost; ``release(reservation)`` gives it back when the call failed.

Sync functions that may do I/O: an integration on an event loop calls them in a worker thread
(``run_off_loop``). ``idle(session)`` is the loop-safe fast answer "no budget can apply".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, TypeVar

import orjson

from ag2_logging import pricing
from ag2_logging.budgets import periods
from ag2_logging.budgets.accounts import Account, LocalLedger, money
from ag2_logging.budgets.errors import BudgetExceeded, dollars
from ag2_logging.budgets.ledger import DatabaseLedger, Ledger, RedisLedger
from ag2_logging.budgets.specs import Spec, registry, session_spec
from ag2_logging.conf import conf
from ag2_logging.pricing import cache as price_cache
from ag2_logging.pricing.usage import valid_usage

logger = logging.getLogger("ag2_logging.budgets")
T = TypeVar("T")
#: The limit a ``warn`` budget reserves against: it only counts.
NO_LIMIT = Decimal(9_000_000_000)

_clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
_accounts: dict[str, Account] = {}
_accounts_lock = threading.Lock()
_local = LocalLedger()
_shared: dict[str, Ledger] = {}


def _new_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="ag2-budgets")


_executor = _new_executor()
#: Session-end moves handed to ``_executor`` by a session that ended on an event loop.
_pending: set[Future[None]] = set()
_pending_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A forked child (Celery prefork, gunicorn) has none of the parent's executor threads: a new
    # executor, and none of the parent's moves to wait for.
    global _executor, _pending, _pending_lock
    _executor = _new_executor()
    _pending = set()
    _pending_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Use ``clock()`` (aware datetimes) as the time periods are read at; None: the real time.
    For tests and simulations that cross a period boundary."""
    global _clock
    _clock = clock or (lambda: datetime.now(UTC))


def now() -> datetime:
    return _clock()


@dataclass
class Reservation:
    """What ``check`` reserved for one call: ``holds`` is ``[(account, amount)]``."""

    provider: str
    model: str
    estimate: Decimal | None
    session: Any
    holds: list[tuple[Account, Spec, Decimal]] = field(default_factory=list)


def idle(session: Any) -> bool:
    """True when no budget can apply to a call now (no I/O: safe on an event loop). A request
    made outside any session (the OpenAI SDK used directly, a script) is never budgeted: the
    hook on the SDK must not reach the database for code that does not record."""
    if session is None:
        return True
    return not registry.specs and getattr(session, "budget_limit", None) is None and not registry.stale()


def run_off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` here, or in a worker thread when this thread runs an event loop (the ORM
    refuses to run there)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_loop = False
    else:
        in_loop = True
    # Outside the except clause: an exception fn raises (BudgetExceeded) is not chained to
    # "no running event loop".
    return _executor.submit(fn, *args).result() if in_loop else fn(*args)


def shared_ledger() -> Ledger:
    """The configured shared ledger: Redis when ``BUDGET_REDIS_URL`` is set, else the database."""
    url = conf.resolved.budget_redis_url
    name = url or "db"
    found = _shared.get(name)
    if found is None:
        found = _shared[name] = RedisLedger(url) if url else DatabaseLedger()
    return found


def _time_zone() -> tzinfo:
    zone: tzinfo = conf.resolved.budget_time_zone
    return zone


def account_for(spec: Spec, session: Any, at: datetime) -> tuple[Account, periods.Period]:
    """The account of ``spec`` for ``session``'s scope in the period containing ``at``."""
    enterprise, workflow = _ids(session)
    period = _period_of(spec.period, at, _time_zone(), spec.window_hours)
    others: list[str] = []
    ledger: Ledger
    if spec.period == "session":
        sid = getattr(session, "session_id", None)
        key, ledger = f"{spec.id or 's'}:session:{sid}", _local
    else:
        base = f"{spec.id}:" if spec.id is not None else "s:"
        scope = spec.scope_value(enterprise, workflow)
        key, ledger = f"{base}{period.key}:{scope}", shared_ledger()
        if spec.period == "rolling_hours":
            others = [f"{base}{k}:{scope}" for k in periods.window_keys(at, spec.window_hours or 1)[:-1]]
    account = _accounts.get(key)  # the usual case, without the lock (a dict read is atomic)
    if account is not None and account.ledger is ledger:
        return account, period
    with _accounts_lock:
        account = _accounts.get(key)
        if account is None or account.ledger is not ledger:
            meta = {"budget_id": spec.id, "period_start": period.start, "period_end": period.end}
            account = _accounts[key] = Account(
                ledger, key, others, meta, lease=isinstance(ledger, DatabaseLedger)
            )
    return account, period


#: The last period of each (kind, window, time zone) and the moments it answers for:
#: ``periods.period_of`` formats dates, which cost more than the rest of a check.
_periods: dict[tuple[str, int | None, tzinfo], tuple[datetime, datetime, periods.Period]] = {}


def _period_of(kind: str, at: datetime, zone: tzinfo, window_hours: int | None) -> periods.Period:
    """``periods.period_of``, remembered while ``at`` stays in the same period (for a rolling
    window: in the same hour, its key)."""
    key = (kind, window_hours, zone)
    found = _periods.get(key)
    if found is not None and found[0] <= at < found[1]:
        return found[2]
    period = periods.period_of(kind, at, zone, window_hours)
    if period.start is not None and period.end is not None:
        first = period.end - timedelta(hours=1) if kind == "rolling_hours" else period.start
        _periods[key] = (first, period.end, period)
    return period


def _ids(session: Any) -> tuple[str, str]:
    if session is None:
        return "", ""
    return str(session.enterprise_id or ""), str(session.workflow_name or "")


def applicable(session: Any) -> list[Spec]:
    """The budgets counting ``session`` (None: a call outside any session: global ones only)."""
    enterprise, workflow = _ids(session)
    found = [
        spec
        for spec in registry.refresh()
        if (session is not None or spec.scope == "global") and spec.applies(enterprise, workflow)
    ]
    limit = getattr(session, "budget_limit", None)
    if limit is not None:
        found.append(session_spec(Decimal(str(limit))))
    return found


def estimate_tokens(body: Any) -> tuple[int, int]:
    """``(prompt, completion)`` worst-case token counts of a request body (a dict): the prompt
    from the size of its messages / input / instructions / tools / functions as compact JSON
    (UTF-8 bytes, at least its characters; 3 a token, plus 4 per message: more than real
    tokenizers count for text), the completion from ``max_tokens``, ``max_completion_tokens`` or
    ``max_output_tokens``, else ``BUDGET_OUTPUT_TOKENS``.

    The parts are written by orjson (about a microsecond for a few KB; the standard library's
    encoder cost most of the whole check); what orjson cannot write goes through ``json.dumps``
    with ``str()`` for unknown objects.
    """
    if not isinstance(body, dict):
        return 0, conf.resolved.budget_output_tokens
    parts = [part for name in _PROMPT_PARTS if (part := body.get(name))]
    try:
        size = len(orjson.dumps(parts, default=str, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError):
        size = len(json.dumps(parts, default=str, ensure_ascii=False).encode("utf-8", "replace"))
    messages = body.get("messages")
    prompt = -(-size // 3) + 4 * (len(messages) if isinstance(messages, list) else 1)
    cap = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    completion = int(cap) if isinstance(cap, int) and cap > 0 else conf.resolved.budget_output_tokens
    return prompt, completion


_PROMPT_PARTS = ("messages", "input", "instructions", "tools", "functions")


def price(provider: str, model: str, usage: pricing.NormalizedUsage) -> Decimal | None:
    """USD for ``usage`` of ``model`` as the recorder would price it (None: no known price).

    Through ``pricing.call_cost``: with no admin override loaded and a genai-prices price that
    does not change with the time, the (provider, model)'s compiled plan is run directly."""
    overrides = price_cache.current()
    if not overrides:
        fixed = pricing.fixed_plan_cost(provider, model, usage)
        if fixed is not None:
            return money(fixed)
    cost, status = pricing.call_cost(
        provider, model, usage, overrides=overrides, local_rate=conf.resolved.local_model_rate
    )
    if cost is None or status in ("unknown", "no_usage"):
        return None
    return money(cost)


def check(session: Any, provider: str, model: str, body: Any) -> Reservation | None:
    """Reserve the worst case of the call ``body`` describes in every budget counting
    ``session``; None when none does. Raises ``BudgetExceeded`` (nothing reserved) when a
    ``block`` budget would be passed, or a model without a price meets ``unknown_model=block``."""
    try:
        specs = applicable(session)
    except Exception:  # the budgets cannot be read (database or Redis down): the call goes out
        _unavailable("read the budgets")
        return None
    if not specs:
        return None
    prompt, completion = estimate_tokens(body)
    estimate = price(provider, model, valid_usage(prompt, completion, 0, 0, 0))
    reservation = Reservation(provider, model, estimate, session)
    at = now()
    try:
        for spec in specs:
            if estimate is None:
                _unknown_model(spec, session, model)
                continue
            account, period = account_for(spec, session, at)
            limit = spec.limit if spec.action == "block" else NO_LIMIT
            if not account.reserve(estimate, limit):
                raise _blocked(spec, session, account, period, model, estimate)
            reservation.holds.append((account, spec, estimate))
    except BudgetExceeded:
        release(reservation)
        raise
    except Exception:  # the ledger cannot reserve (database or Redis down): the call goes out
        release(reservation)
        _unavailable("reserve in the ledger")
        return None
    except BaseException:
        release(reservation)
        raise
    return reservation


def _unavailable(what: str) -> None:
    """Budgets fail open: a ledger that cannot be reached never stops a workflow. Counted in
    :data:`unavailable` and logged (with the traceback at most once a minute)."""
    unavailable["calls"] += 1
    now_s = time.monotonic()
    verbose = now_s - _last_unavailable[0] > 60
    if verbose:
        _last_unavailable[0] = now_s
    logger.warning("ag2_logging: could not %s; the call is sent unbudgeted", what, exc_info=verbose)


_last_unavailable = [-1e9]
#: ``calls``: sent unbudgeted because the budgets or the ledger could not be reached;
#: ``settlements``: reservations that could not be settled or released (the ledger keeps them).
unavailable = {"calls": 0, "settlements": 0}


def _unknown_model(spec: Spec, session: Any, model: str) -> None:
    decision = "block" if spec.action == "block" and spec.unknown_model == "block" else "allow"
    _note(session, "budget_unknown_model", {"budget": spec.id, "model": model, "decision": decision})
    if decision == "block":
        enterprise, workflow = _ids(session)
        raise BudgetExceeded(
            budget=spec.id,
            scope=spec.describe(enterprise, workflow),
            limit=spec.limit,
            spent=Decimal(0),
            period_end=None,
            reason=f"model {model!r} has no known price, so the call cannot be estimated (unknown_model=block)",
        )


def _blocked(
    spec: Spec, session: Any, account: Account, period: periods.Period, model: str, estimate: Decimal
) -> BudgetExceeded:
    enterprise, workflow = _ids(session)
    spent = account.known_total
    _note(
        session,
        "budget_blocked",
        {
            "budget": spec.id,
            "model": model,
            "estimate": str(estimate),
            "spent": str(spent),
            "limit": str(spec.limit),
        },
    )
    logger.warning(
        "ag2_logging: budget %s (%s) blocked a call to %s: $%s spent and reserved + $%s would pass $%s",
        spec.id if spec.id is not None else "session",
        spec.describe(enterprise, workflow),
        model,
        dollars(spent),
        dollars(estimate),
        dollars(spec.limit),
    )
    return BudgetExceeded(
        budget=spec.id,
        scope=spec.describe(enterprise, workflow),
        limit=spec.limit,
        spent=spent,
        period_end=period.end,
        estimate=estimate,
    )


def settle(
    reservation: Reservation | None, usage: Any = None, *, model: str = "", reason: str = "no_usage"
) -> None:
    """The call was answered: its real cost (``usage``, the provider's raw usage object) replaces
    its reservation, then the soft thresholds. Without a usage that can be priced the
    reservation is kept as the cost: counted in :data:`kept` under ``reason`` (``no_usage``,
    ``stream_without_usage``, ``stream_failed``, ``stream_unfinished``; ``unpriced`` when the
    usage came but has no price) and noted on the session (``budget_reservation_kept``)."""
    if reservation is None or not reservation.holds:
        return
    cost = None
    normalized = pricing.usage_from_report(reservation.provider, usage) if usage is not None else None
    if normalized is not None:
        cost = price(reservation.provider, model or reservation.model, normalized)
        reason = "unpriced"
    if cost is None:
        _kept(reservation, reason)
    for account, spec, amount in reservation.holds:
        account.settle(amount, cost if cost is not None else amount)
        _soft_threshold(account, spec, reservation.session)


#: Reservations kept as their call's cost (no usage to settle from), by reason.
kept: Counter[str] = Counter()
_kept_lock = threading.Lock()


def _kept(reservation: Reservation, reason: str) -> None:
    with _kept_lock:
        kept[reason] += 1
    amount = reservation.holds[0][2] if reservation.holds else Decimal(0)
    _note(
        reservation.session,
        "budget_reservation_kept",
        {"model": reservation.model, "reason": reason, "amount": str(amount)},
    )


def release(reservation: Reservation | None) -> None:
    """The call failed or was not sent: give its reservations back."""
    if reservation is None:
        return
    holds, reservation.holds = reservation.holds, []
    for account, _spec, amount in holds:
        account.release(amount)


def _soft_threshold(account: Account, spec: Spec, session: Any) -> None:
    """Once per budget and period: signal, warn (and mail the admins) when the settled spend
    reached ``soft_percent`` of the limit; the session that crossed it is flagged."""
    if account.soft_done or account.known_spent + account.unflushed < spec.soft_limit:
        return
    account.flush(force=True)
    if account.known_spent < spec.soft_limit:
        return
    account.soft_done = True
    if not account.ledger.claim_soft(account.key):
        return  # another process (or an earlier call) sent it for this period
    _soft_reached(account, spec, session)


def _soft_reached(account: Account, spec: Spec, session: Any) -> None:
    from ag2_logging.signals import budget_threshold_reached

    enterprise, workflow = _ids(session)
    spent, scope = account.known_spent, spec.describe(enterprise, workflow)
    session_id = getattr(session, "session_id", None)
    _note(
        session,
        "budget_threshold",
        {"budget": spec.id, "spent": str(spent), "soft_limit": str(spec.soft_limit)},
    )
    logger.warning(
        "ag2_logging: budget %s (%s) reached its soft threshold: $%s of $%s spent",
        spec.id if spec.id is not None else "session",
        scope,
        spent,
        spec.limit,
    )
    budget_threshold_reached.send_robust(
        sender=BudgetExceeded,
        budget=spec.id,
        scope=scope,
        period_key=account.key,
        period_end=account.meta.get("period_end"),
        spent=spent,
        limit=spec.limit,
        soft_limit=spec.soft_limit,
        session_id=session_id,
    )
    if conf.resolved.budget_mail_admins:
        from django.core.mail import mail_admins

        try:
            mail_admins(
                f"AG2 budget {spec.label} reached its soft threshold",
                f"Budget #{spec.id} ({scope}) spent ${spent} of its ${spec.limit} limit "
                f"(soft threshold ${spec.soft_limit}); the period ends {account.meta.get('period_end')}.",
            )
        except Exception:
            logger.exception("ag2_logging: could not mail the admins about budget %s", spec.id)


def _note(session: Any, name: str, data: dict[str, Any]) -> None:
    """An agent event on the session (a flag the timeline and the rows show)."""
    record = getattr(session, "record_agent_event", None)
    if record is None:
        return
    try:
        record(agent_name="", name=name, data=data)
    except Exception:
        logger.exception("ag2_logging: could not record %s", name)


def flush(*, session_id: Any = None) -> None:
    """Move every account's settled spend to its ledger now (sync ORM or Redis; not on an event
    loop); with ``session_id``, also forget that session's own accounts."""
    with _accounts_lock:
        accounts = list(_accounts.items())
    for key, account in accounts:
        try:
            account.flush(force=True)
        except Exception:
            logger.exception("ag2_logging: could not move budget spend of %s to its ledger", key)
        if session_id is not None and key.endswith(f":session:{session_id}"):
            with _accounts_lock:
                _accounts.pop(key, None)
    if session_id is not None:
        _local.forget(f"s:session:{session_id}")


def reset() -> None:
    """Forget every account and cached budget (tests; a process that flushed its database)."""
    with _accounts_lock:
        _accounts.clear()
    _local.forget("")
    _shared.clear()
    registry.forget()


def _on_session_started(**kwargs: Any) -> None:
    registry.poll_due = True  # the new session's first call reads the budgets' version


def _on_session_finished(session_id: Any = None, **kwargs: Any) -> None:
    if not _accounts:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        flush(session_id=session_id)
        return
    future = _executor.submit(flush, session_id=session_id)
    with _pending_lock:
        _pending.add(future)
    future.add_done_callback(_forget_done)


def _forget_done(future: Future[None]) -> None:
    with _pending_lock:
        _pending.discard(future)


def drain(timeout: float) -> None:
    """Wait (at most ``timeout`` seconds) for the spend moves of sessions that ended on an
    event loop: after it, the ledgers hold every ended session's settled spend. Raises
    ``TimeoutError`` when they are still running."""
    with _pending_lock:
        pending = list(_pending)
    if pending and wait(pending, timeout).not_done:
        raise TimeoutError(f"budget spend moves still running after {timeout} s")


def install() -> None:
    """Connect the session signals (idempotent): a starting session polls the budgets' version,
    an ending one moves its spend to the ledger."""
    from ag2_logging import signals

    signals.session_started.connect(_on_session_started, dispatch_uid="ag2_logging.budgets.started")
    signals.session_finished.connect(_on_session_finished, dispatch_uid="ag2_logging.budgets.finished")
