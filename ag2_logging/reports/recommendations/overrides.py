"""Recommendations on price overrides that have expired (see the package docstring)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db.models import Sum
from django.utils.translation import gettext as _

from ag2_logging.formats import show
from ag2_logging.pricing import NormalizedUsage, PriceOverride, select_override
from ag2_logging.pricing.overrides import override_costs
from ag2_logging.reports.figures import ZERO, Figures
from ag2_logging.reports.filters import _utc_today
from ag2_logging.reports.recommendations.base import LIMIT, Recommendation, money_text

# ---------------------------------------------------------------------------------------------
# 4. Price overrides that have expired


def expired_overrides(
    overrides: Sequence[tuple[Any, PriceOverride]], *, today: dt.date | None = None
) -> list[Recommendation]:
    """For each ``(row id, override)`` whose ``effective_to`` is today or before, the calls
    rolled up since then of the models it matched that no override prices today (one grouped
    query on the rollups, all enterprises and workflows: overrides are global)."""
    today = today or _utc_today()
    expired = [(pk, o) for pk, o in overrides if o.effective_to is not None and o.effective_to <= today]
    if not expired:
        return []
    from ag2_logging.models import DailyRollup

    since = min(o.effective_to for _pk, o in expired if o.effective_to is not None)
    groups = list(DailyRollup.objects.filter(day__gte=since).values_list("day", "model", "provider").annotate(
        **{name: Sum(name) for name in ("call_count", "error_count", "unpriced_calls", "prompt_tokens",
                                         "cached_tokens", "completion_tokens", "reasoning_tokens", "cost")}
    ).order_by())  # fmt: skip
    now = dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC)
    everything = [o for _pk, o in overrides]
    found = []
    for pk, override in expired:
        timeless = dataclasses.replace(override, effective_from=None, effective_to=None)
        f = Figures()
        models: set[str] = set()
        for (
            day,
            model,
            provider,
            calls,
            errors,
            unpriced,
            prompt,
            cached,
            completion,
            reasoning,
            cost,
        ) in groups:
            if day < (override.effective_to or today) or not timeless.matches(provider, model, now):
                continue
            if select_override(everything, provider, model, now) is not None:
                continue  # another override prices this model today
            models.add(model)
            f.add(Figures(calls=calls, errors=errors, unpriced=unpriced, prompt_tokens=prompt,
                          cached_tokens=cached, completion_tokens=completion,
                          reasoning_tokens=reasoning, priced_cost=cost or ZERO))  # fmt: skip
        if not models and _superseded(override, everything, today):
            continue
        found.append(_expired(pk, override, f, models))
    found.sort(key=lambda r: (-r.data["calls"], r.subject))
    return found[:LIMIT]


def _superseded(override: PriceOverride, everything: Sequence[PriceOverride], today: dt.date) -> bool:
    """Another override for the same provider and model pattern is in force today."""
    return any(
        other is not override
        and other.provider.strip().lower() == override.provider.strip().lower()
        and other.model_pattern.strip().lower() == override.model_pattern.strip().lower()
        and (other.effective_from is None or other.effective_from <= today)
        and (other.effective_to is None or today < other.effective_to)
        for other in everything
    )


def _expired(pk: Any, override: PriceOverride, f: Figures, models: set[str]) -> Recommendation:
    usage = NormalizedUsage(
        prompt_tokens=f.prompt_tokens,
        completion_tokens=f.completion_tokens,
        cached_tokens=f.cached_tokens,
        reasoning_tokens=f.reasoning_tokens,
    )
    at_override = sum(override_costs(override, usage), ZERO)
    recorded = f.cost if f.calls else ZERO
    delta = None if recorded is None or f.cost_state == "partial" else recorded - at_override
    return Recommendation(
        kind="expired_override",
        subject=_("price override %(pattern)s%(provider)s")
        % {
            "pattern": override.model_pattern,
            "provider": f" ({override.provider})" if override.provider else "",
        },
        action=_("It ended on %(day)s: renew it with new dates, or delete it if the list price is right.")
        % {"day": override.effective_to},
        estimate=delta,
        estimate_text=(
            _("%(calls)s calls since: %(recorded)s recorded, %(at)s at the expired rates")
            % {"calls": show(f.calls), "recorded": money_text(recorded), "at": money_text(at_override)}
            if f.calls
            else _("no calls since it ended")
        ),
        method=_(
            "The rolled-up calls from %(day)s on of the models it matched (%(models)s) that no "
            "other override prices today; %(unpriced)s of them have no price. Their tokens priced "
            "at the override's rates per million tokens."
        )
        % {
            "day": override.effective_to,
            "models": ", ".join(sorted(models)) or _("none"),
            "unpriced": show(f.unpriced),
        },
        data={
            "id": pk,
            "pattern": override.model_pattern,
            "effective_to": override.effective_to,
            "calls": f.calls,
            "unpriced_calls": f.unpriced,
            "recorded_cost": recorded,
            "at_override": at_override,
        },
    )
