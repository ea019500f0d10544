"""Recompute call costs after a price override changes or genai-prices is upgraded.

Batches of calls are repriced with the same pure functions the recorder uses; each batch is one
transaction that updates the calls, the totals of their sessions and, for sessions already
rolled up, the daily rollups (by the cost difference, with ``F()``), so reports stay consistent.
Idempotent: a second run changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F

from ag2_logging import price_overrides, pricing
from ag2_logging.conf import conf
from ag2_logging.ingest import refresh_session_totals
from ag2_logging.models import DailyRollup, LLMCall, Session


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
    # Failed calls and AG2 cache hits cost nothing whatever the price list says.
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
        call.provider, call.model, usage, at=at, overrides=overrides, local_rate=local_rate
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
    queryset = calls_to_reprice(since=since, model=model, enterprise=enterprise)
    total = queryset.count()
    last_pk = None
    while True:
        batch_qs = queryset.order_by("pk").select_related("session")
        if last_pk is not None:
            batch_qs = batch_qs.filter(pk__gt=last_pk)
        batch = list(batch_qs[:batch_size])
        if not batch:
            break
        last_pk = batch[-1].pk
        _reprice_batch(batch, overrides, local_rate, result, dry_run=dry_run)
        result.examined += len(batch)
        if progress is not None:
            progress(result.examined, total)
    return result


def _reprice_batch(
    batch: list[LLMCall],
    overrides: tuple[pricing.PriceOverride, ...],
    local_rate: Decimal,
    result: RepriceResult,
    *,
    dry_run: bool,
) -> None:
    changed: list[LLMCall] = []
    rollup_deltas: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    for call in batch:
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
        if session is not None:
            result.sessions.add(session.pk)
            if session.summarized_at is not None:
                day = (call.ended_at or call.started_at or session.started_at).astimezone(dt.UTC).date()
                key = (
                    day,
                    session.enterprise_id,
                    session.workflow_name,
                    call.model,
                    call.agent_name,
                    call.provider,
                )
                delta = rollup_deltas[key]
                delta[0] += (after or 0) - (before or 0)
                delta[1] += (after is None) - (before is None)
    result.changed += len(changed)
    if dry_run or not changed:
        return
    with transaction.atomic():
        LLMCall.objects.bulk_update(changed, ["cost", "price_status"])
        for key, (cost_delta, unpriced_delta) in rollup_deltas.items():
            day, enterprise, workflow, model, agent, provider = key
            DailyRollup.objects.filter(
                day=day,
                enterprise_id=enterprise,
                workflow_name=workflow,
                model=model,
                agent_name=agent,
                provider=provider,
            ).update(cost=F("cost") + cost_delta, unpriced_calls=F("unpriced_calls") + unpriced_delta)
        for session in Session.objects.select_for_update().filter(pk__in={c.session_id for c in changed}):
            refresh_session_totals(session)
            session.save()
