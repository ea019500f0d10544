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
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction

from ag2_logging import pricing
from ag2_logging.conf import conf
from ag2_logging.models import LLMCall, Session
from ag2_logging.pipeline import rollups
from ag2_logging.pipeline.ingest import refresh_session_totals
from ag2_logging.pricing import cache as price_overrides
from ag2_logging.querysets import SESSION_TOTALS


@dataclass
class RepriceResult:
    examined: int = 0
    changed: int = 0
    cost_before: Decimal = Decimal(0)
    cost_after: Decimal = Decimal(0)
    unpriced_before: int = 0
    unpriced_after: int = 0
    sessions: set[Any] = field(default_factory=set)
    by_model: dict[str, list[Decimal]] = field(default_factory=dict)  # model -> [before, after]
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "changed": self.changed,
            "cost_before": str(self.cost_before),
            "cost_after": str(self.cost_after),
            "unpriced_before": self.unpriced_before,
            "unpriced_after": self.unpriced_after,
            "sessions": len(self.sessions),
            "by_model": {m: [str(b), str(a)] for m, (b, a) in sorted(self.by_model.items())},
            "dry_run": self.dry_run,
        }


def calls_to_reprice(
    *, since: dt.date | None = None, model: str | None = None, enterprise: str | None = None
) -> Any:
    # Failed calls and AG2 cache hits cost nothing whatever the price list says (price_call's
    # rule): there is nothing to reprice in them.
    calls = LLMCall.objects.filter(status=LLMCall.Status.SUCCESS, is_cached=False)
    if since is not None:
        calls = calls.filter(ended_at__date__gte=since)
    if model:
        calls = calls.filter(model=model)
    if enterprise:
        calls = calls.filter(session__enterprise_id=enterprise)
    return calls


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
        error=call.error if call.status == LLMCall.Status.ERROR else "",
        is_cached=call.is_cached,
    )


def reprice(
    *,
    since: dt.date | None = None,
    model: str | None = None,
    enterprise: str | None = None,
    dry_run: bool = False,
    batch_size: int = 1_000,
    progress: Callable[[int, int], None] | None = None,
) -> RepriceResult:
    overrides = price_overrides.load()
    local_rate = conf.resolved.local_model_rate
    result = RepriceResult(dry_run=dry_run)
    queryset = calls_to_reprice(since=since, model=model, enterprise=enterprise).order_by("pk")
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
        _reprice_batch(pks, overrides, local_rate, result, dry_run=dry_run)
        result.examined += len(pks)
        if progress is not None:
            progress(result.examined, total)
    return result


RollupKey = tuple[Any, ...]


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
        if before == after and call.price_status == priced.status:
            continue
        entry = result.by_model.setdefault(call.model, [Decimal(0), Decimal(0)])
        entry[0] += before or 0
        entry[1] += after or 0
        call.cost, call.price_status = after, priced.status
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
