"""Recompute call costs after a price override changes or genai-prices is upgraded.

Batches of calls are repriced with the same pure functions the recorder uses; each batch is one
transaction that locks the calls' sessions (the lock ``summarize_session`` takes), reads the calls
again, and updates the calls, the totals of their sessions and, for sessions already rolled up,
the daily rollups by the cost difference, so the rollups always equal a rebuild. Calls of a
session not rolled up yet are left to ``summarize_session``. Idempotent: a second run changes
nothing, and a run that raced with ingest or summarize is completed by the next one.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction

from ag2_logging import pricing
from ag2_logging.conf import conf
from ag2_logging.models import LLMCall, Session
from ag2_logging.pipeline import rollups
from ag2_logging.pipeline.db import retry_deadlocks
from ag2_logging.pipeline.ingest import refresh_session_totals
from ag2_logging.pricing import cache as price_overrides
from ag2_logging.pricing.providers import normalize_provider
from ag2_logging.querysets import SESSION_TOTALS

logger = logging.getLogger("ag2_logging.pipeline")


def known_or_unknown(known: Decimal, unpriced: int) -> Decimal | None:
    """A sum of costs as it may be shown: None (unknown) when calls are unpriced and the known
    costs sum to 0 (a lower bound of $0 says nothing), else the known sum (a lower bound when
    ``unpriced`` > 0)."""
    return None if unpriced and not known else known


def cost_text(known: Decimal, unpriced: int) -> str:
    """``known_or_unknown`` as text: "unknown", "≥ 0.0216" (a lower bound) or "0.0216"."""
    value = known_or_unknown(known, unpriced)
    if value is None:
        return "unknown"
    return f"≥ {value}" if unpriced else str(value)


#: The ``RepriceResult`` figures that batches add up.
_SUMMED = ("examined", "changed", "cost_before", "cost_after", "unpriced_before", "unpriced_after")


@dataclass
class RepriceResult:
    """What a repricing examined and changed. Costs are USD sums of the calls' *known* costs;
    ``unpriced_*`` count the calls without one, so ``cost_before`` alone is never the whole
    story: read it through :func:`known_or_unknown` / :func:`cost_text` (as ``as_dict`` and the
    command do). ``by_model`` and ``by_model_unpriced`` cover the changed calls only."""

    examined: int = 0
    changed: int = 0
    cost_before: Decimal = Decimal(0)
    cost_after: Decimal = Decimal(0)
    unpriced_before: int = 0
    unpriced_after: int = 0
    sessions: set[Any] = field(default_factory=set)
    by_model: dict[str, list[Decimal]] = field(default_factory=dict)  # model -> [before, after]
    by_model_unpriced: dict[str, list[int]] = field(default_factory=dict)  # model -> [before, after]
    dry_run: bool = False

    def merge(self, other: RepriceResult) -> None:
        """Add ``other``'s counts (one batch's) to these."""
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.sessions |= other.sessions
        for model, pair in other.by_model.items():
            costs = self.by_model.setdefault(model, [Decimal(0), Decimal(0)])
            costs[:] = [costs[0] + pair[0], costs[1] + pair[1]]
        for model, counts in other.by_model_unpriced.items():
            unpriced = self.by_model_unpriced.setdefault(model, [0, 0])
            unpriced[:] = [unpriced[0] + counts[0], unpriced[1] + counts[1]]

    def model_costs(self, model: str) -> tuple[str, str]:
        """(before, after) of the changed calls of ``model``, as :func:`cost_text`."""
        before, after = self.by_model[model]
        unpriced = self.by_model_unpriced.get(model, [0, 0])
        return cost_text(before, unpriced[0]), cost_text(after, unpriced[1])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: costs as strings, null when unknown, with ``cost_*_complete``."""

        def cost(known: Decimal, unpriced: int) -> str | None:
            value = known_or_unknown(known, unpriced)
            return None if value is None else str(value)

        by_model = {}
        for name, (before, after) in sorted(self.by_model.items()):
            unpriced = self.by_model_unpriced.get(name, [0, 0])
            by_model[name] = [cost(before, unpriced[0]), cost(after, unpriced[1])]
        return {
            "examined": self.examined,
            "changed": self.changed,
            "cost_before": cost(self.cost_before, self.unpriced_before),
            "cost_after": cost(self.cost_after, self.unpriced_after),
            "cost_before_complete": not self.unpriced_before,
            "cost_after_complete": not self.unpriced_after,
            "unpriced_before": self.unpriced_before,
            "unpriced_after": self.unpriced_after,
            "sessions": len(self.sessions),
            "by_model": by_model,
            "dry_run": self.dry_run,
        }


def calls_to_reprice(
    *,
    since: dt.date | None = None,
    model: str | None = None,
    enterprise: str | None = None,
    models: Sequence[str] | None = None,
    until: dt.date | None = None,
    provider: str | None = None,
) -> Any:
    """The calls a repricing examines: successful calls with usage, not served from AG2's cache.

    Failed calls and AG2 cache hits cost nothing whatever the price list says (``price_call``'s
    rule), and a call whose reply carried no usage (``no_usage``) has no tokens to price: none
    of them is repriced, so no override can give them a cost. ``since`` / ``until`` (inclusive)
    are UTC days of the call's end (of its start without one), the day its rollup has;
    ``model`` one model name, ``models`` several (exact names as logged); ``provider`` one
    provider as an override names it (matched as ``PriceOverride.matches`` does: any case,
    aliases resolved, so ``gemini`` covers calls logged as ``google``; ``""``, ``"*"`` or None:
    any provider).
    """
    calls: Any = LLMCall.objects.filter(status=LLMCall.Status.SUCCESS, is_cached=False, error="").exclude(
        price_status=LLMCall.PriceStatus.NO_USAGE
    )
    if since is not None or until is not None:
        calls = calls.annotate(_reprice_day=rollups.rollup_day())
    if since is not None:
        calls = calls.filter(_reprice_day__gte=since)
    if until is not None:
        calls = calls.filter(_reprice_day__lte=until)
    if model:
        calls = calls.filter(model=model)
    if models is not None:
        calls = calls.filter(model__in=list(models))
    if enterprise:
        calls = calls.filter(session__enterprise_id=enterprise)
    if provider is not None and provider.strip() not in ("", "*"):
        calls = calls.filter(provider__in=providers_named(provider))
    return calls


def providers_named(provider: str) -> list[str]:
    """The provider ids logged on calls that ``provider`` names (``normalize_provider``'s rule:
    any case, aliases, ``@local`` suffix kept apart); one query of the distinct ids."""
    wanted = normalize_provider(provider)
    logged = LLMCall.objects.order_by().values_list("provider", flat=True).distinct()
    return [name for name in logged if normalize_provider(name) == wanted]


def price_of(
    call: LLMCall, overrides: tuple[pricing.PriceOverride, ...], local_rate: Decimal
) -> pricing.PriceResult:
    usage = pricing.NormalizedUsage(
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        cached_tokens=call.cached_tokens,
        reasoning_tokens=call.reasoning_tokens,
        cache_write_tokens=call.cache_write_tokens,
    )
    at = call.ended_at or call.started_at
    return pricing.price_call(
        call.provider,
        call.model,
        usage,
        at=at,
        overrides=overrides,
        local_rate=local_rate,
        error=call.status == LLMCall.Status.ERROR or bool(call.error),
        is_cached=call.is_cached,
    )


@dataclass(frozen=True)
class OverrideScope:
    """The calls a price override covers, as repricing filters them: the model names logged
    that its pattern matches (``PriceOverride.matches``' rule: exact or fnmatch, any case) and
    its period as UTC days (``until`` inclusive: ``effective_to`` is exclusive), and its
    provider (``""``: any provider; else matched as :func:`providers_named` does). Calls of
    other providers and outside the period are not examined: they keep their price."""

    models: tuple[str, ...]
    since: dt.date | None
    until: dt.date | None
    provider: str = ""

    def calls(self) -> Any:
        """The calls of :func:`calls_to_reprice` this scope covers (a queryset)."""
        return calls_to_reprice(
            models=self.models, since=self.since, until=self.until, provider=self.provider
        )


def override_scope(price: Any) -> OverrideScope:
    """The :class:`OverrideScope` of a ``ModelPrice`` row (two queries: the distinct providers
    when it names one, the distinct model names)."""
    override = price_overrides.to_override(price)
    pattern = override.model_pattern.strip().lower()
    provider = "" if override.any_provider else override.provider.strip()
    names = calls_to_reprice(provider=provider).values_list("model", flat=True).distinct().order_by("model")
    if override.is_pattern:
        models = tuple(n for n in names if fnmatch.fnmatchcase(n.strip().lower(), pattern))
    else:
        models = tuple(n for n in names if n.strip().lower() == pattern)
    until = override.effective_to - dt.timedelta(days=1) if override.effective_to else None
    return OverrideScope(models=models, since=override.effective_from, until=until, provider=provider)


def reprice(
    *,
    since: dt.date | None = None,
    model: str | None = None,
    enterprise: str | None = None,
    models: Sequence[str] | None = None,
    until: dt.date | None = None,
    provider: str | None = None,
    dry_run: bool = False,
    batch_size: int = 1_000,
    progress: Callable[[int, int], None] | None = None,
) -> RepriceResult:
    """Reprice the calls of :func:`calls_to_reprice` (same filters) with today's overrides and
    genai-prices, ``batch_size`` calls per transaction; ``progress(done, total)`` after each
    batch. Returns what changed; with ``dry_run`` nothing is written."""
    overrides = price_overrides.load()
    local_rate = conf.resolved.local_model_rate
    result = RepriceResult(dry_run=dry_run)
    queryset = calls_to_reprice(
        since=since, model=model, enterprise=enterprise, models=models, until=until, provider=provider
    ).order_by("pk")
    total = queryset.count()
    last_pk = None
    while True:
        # Only the ids are read here: the calls themselves are read again in the batch's
        # transaction, after their sessions are locked (a value read now may be stale by then).
        page = queryset if last_pk is None else queryset.filter(pk__gt=last_pk)
        pks = list(page.values_list("pk", flat=True)[:batch_size])
        if not pks:
            break
        last_pk = pks[-1]
        result.merge(_counted_batch(pks, overrides, local_rate, dry_run=dry_run))
        result.examined += len(pks)
        if progress is not None:
            progress(result.examined, total)
    return result


RollupKey = tuple[Any, ...]


@retry_deadlocks
def _counted_batch(
    pks: list[Any], overrides: tuple[pricing.PriceOverride, ...], local_rate: Decimal, *, dry_run: bool
) -> RepriceResult:
    """``_reprice_batch`` with what it counted apart: a batch the database ends to break a
    deadlock runs again from nothing (``db.retry_deadlocks``), its first attempt's counts gone
    with its transaction."""
    counted = RepriceResult(dry_run=dry_run)
    _reprice_batch(pks, overrides, local_rate, counted, dry_run=dry_run)
    return counted


def _reprice_batch(
    pks: list[Any],
    overrides: tuple[pricing.PriceOverride, ...],
    local_rate: Decimal,
    result: RepriceResult,
    *,
    dry_run: bool,
) -> None:
    """Reprice the calls ``pks`` in one transaction that holds their sessions' row locks.

    The lock is the one ``summarize_session`` and ``ingest_journal`` take, so a session's
    ``summarized_at`` cannot change while its calls are repriced: the rollups of a summarized
    session move by exactly the cost difference of its calls, and a session not summarized yet
    is left to ``summarize_session``, which reads the new costs once this transaction commits.
    """
    with transaction.atomic():
        session_ids = set(
            LLMCall.objects.filter(pk__in=pks, session__isnull=False).values_list("session_id", flat=True)
        )
        sessions = Session.objects.filter(pk__in=session_ids).order_by("pk")
        if not dry_run:
            # In primary key order: two repricing runs lock the sessions they share in one order.
            sessions = sessions.select_for_update()
        summarized = {pk for pk, at in sessions.values_list("pk", "summarized_at") if at is not None}
        calls = list(
            LLMCall.objects.filter(pk__in=pks)
            .select_related("session")
            .annotate(_day=rollups.rollup_day())
            .order_by("pk")
        )
        changed, deltas = _price_calls(calls, summarized, overrides, local_rate, result)
        result.changed += len(changed)
        if dry_run or not changed:
            return
        LLMCall.objects.bulk_update(changed, ["cost", "price_status"])
        # In key order, as summarize_session adds to them: concurrent writers lock rows in one order.
        for key, (cost_delta, unpriced_delta) in sorted(deltas.items(), key=rollups.key_order):
            rollups.adjust_rollup(dict(zip(rollups.KEY, key, strict=True)), cost_delta, unpriced_delta)
        for session in Session.objects.filter(pk__in={c.session_id for c in changed}).order_by("pk"):
            refresh_session_totals(session)
            session.save(update_fields=SESSION_TOTALS)


def _price_calls(
    calls: list[LLMCall],
    summarized: set[Any],
    overrides: tuple[pricing.PriceOverride, ...],
    local_rate: Decimal,
    result: RepriceResult,
) -> tuple[list[LLMCall], dict[RollupKey, list[Any]]]:
    """The calls whose price changes, and the (cost, unpriced calls) change of each rollup row
    of the summarized sessions among them."""
    changed: list[LLMCall] = []
    deltas: dict[RollupKey, list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    for call in calls:
        priced = price_of(call, overrides, local_rate)
        before, after = call.cost, priced.cost
        result.cost_before += before or 0
        result.cost_after += after or 0
        result.unpriced_before += before is None
        result.unpriced_after += after is None
        status = _status(call, priced)
        if before == after and call.price_status == status:
            continue
        entry = result.by_model.setdefault(call.model, [Decimal(0), Decimal(0)])
        entry[0] += before or 0
        entry[1] += after or 0
        unpriced = result.by_model_unpriced.setdefault(call.model, [0, 0])
        unpriced[0] += before is None
        unpriced[1] += after is None
        call.cost, call.price_status = after, status
        changed.append(call)
        session = call.session
        if session is None:
            continue  # unattributed calls are not rolled up
        result.sessions.add(session.pk)
        if session.pk in summarized:
            key = (
                call._day,  # type: ignore[attr-defined]
                session.enterprise_id,
                session.workflow_name,
                call.model,
                call.agent_name,
                call.provider,
            )
            delta = deltas[key]
            delta[0] += (after or 0) - (before or 0)
            delta[1] += (after is None) - (before is None)
    return changed, deltas


def _status(call: LLMCall, priced: pricing.PriceResult) -> str:
    """The price status a repriced call gets: ``inferred`` stays ``inferred`` while genai-prices
    still prices it (the base URL it went to is still not the model's provider's)."""
    if call.price_status == LLMCall.PriceStatus.INFERRED and priced.status == "priced":
        return str(LLMCall.PriceStatus.INFERRED)
    return priced.status


REPRICE_TASK = "ag2_logging.reprice"


@dataclass
class OverrideReprice:
    """What :func:`reprice_override` did: ``mode`` ``"inline"`` (``result`` holds the figures)
    or ``"celery"`` (``queued`` tasks sent, one per model name); ``scope`` the calls covered."""

    mode: str
    scope: OverrideScope
    result: RepriceResult | None = None
    queued: int = 0


def reprice_override(
    price: Any, *, progress: Callable[[int, int], None] | None = None, batch_size: int = 1_000
) -> OverrideReprice:
    """Reprice the calls the ``ModelPrice`` row ``price`` covers (:func:`override_scope`), in the
    pipeline's mode: with Celery (``PIPELINE`` "celery", or "auto" with a broker) one
    ``ag2_logging.reprice`` task per model name (with the override's provider and period) is
    sent to ``CELERY_QUEUE``; inline (or with
    eager Celery) the calls are repriced here, ``progress(done, total)`` called after each
    batch. Models whose task the broker refused are repriced here too. Failed, cached and
    no-usage calls are never repriced."""
    from ag2_logging.pipeline import modes

    scope = override_scope(price)
    mode, here = modes.INLINE, scope.models
    if scope.models and modes.effective_mode() == modes.CELERY:
        here = _send_reprice_tasks(scope)
        mode = modes.CELERY if len(here) < len(scope.models) else modes.INLINE
    outcome = OverrideReprice(mode=mode, scope=scope, queued=len(scope.models) - len(here))
    if here or not scope.models:
        outcome.result = reprice(
            models=here,
            since=scope.since,
            until=scope.until,
            provider=scope.provider,
            progress=progress,
            batch_size=batch_size,
        )
    return outcome


def _send_reprice_tasks(scope: OverrideScope) -> tuple[str, ...]:
    """Send one reprice task per model of ``scope``; returns the models not sent (all of them
    when the app runs tasks eagerly, those from the first the broker refused on)."""
    from ag2_logging.pipeline import modes

    app = modes.project_celery_app()
    if app is None or app.conf.get("task_always_eager"):
        return scope.models
    period = {
        "since": scope.since.isoformat() if scope.since else None,
        "until": scope.until.isoformat() if scope.until else None,
        "provider": scope.provider or None,
    }
    for i, name in enumerate(scope.models):
        try:
            app.send_task(REPRICE_TASK, kwargs={**period, "model": name}, queue=conf.resolved.celery_queue)
        except Exception:
            logger.warning(
                "ag2_logging could not send %s to Celery: repricing here", REPRICE_TASK, exc_info=True
            )
            return scope.models[i:]
    return ()
