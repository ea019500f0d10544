"""Recommendations of a cheaper model of the same provider (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from ag2_logging.formats import show
from ag2_logging.pricing import NormalizedUsage, PriceOverride, price_call
from ag2_logging.pricing import lookup as _lookup
from ag2_logging.reports.figures import ZERO, Figures
from ag2_logging.reports.filters import ReportFilter
from ag2_logging.reports.recommendations.base import LIMIT, Recommendation, money_text

#: A model (genai-prices' model id, as ``pricing.lookup`` resolves it: dated snapshots map to
#: it) -> cheaper models of the same provider to suggest, closest first; the first that costs
#: less at the same token counts is named.
CHEAPER_MODELS: Mapping[str, tuple[str, ...]] = {
    # OpenAI
    "gpt-4": ("gpt-4o",),
    "gpt-4-turbo": ("gpt-4o",),
    "gpt-4o": ("gpt-4o-mini",),
    "gpt-4.1": ("gpt-4.1-mini",),
    "gpt-4.1-mini": ("gpt-4.1-nano",),
    "gpt-5": ("gpt-5-mini",),
    "gpt-5-mini": ("gpt-5-nano",),
    "o1": ("o3",),
    "o3": ("o4-mini",),
    # Anthropic
    "claude-3-opus-latest": ("claude-3-5-sonnet",),
    "claude-3-5-sonnet": ("claude-3-5-haiku-latest",),
    "claude-3-7-sonnet-latest": ("claude-3-5-haiku-latest",),
    "claude-opus-4-0": ("claude-sonnet-4-0",),
    "claude-opus-4-1": ("claude-sonnet-4-0",),
    "claude-sonnet-4-0": ("claude-haiku-4-5",),
    "claude-sonnet-4-5": ("claude-haiku-4-5",),
    # Google
    "gemini-1.5-pro": ("gemini-1.5-flash",),
    "gemini-2.0-flash": ("gemini-2.0-flash-lite",),
    "gemini-2.5-pro": ("gemini-2.5-flash",),
    "gemini-2.5-flash": ("gemini-2.5-flash-lite",),
}


# ---------------------------------------------------------------------------------------------
# 1. A cheaper model of the same provider


def _mean_usage(f: Figures, calls: int) -> NormalizedUsage:
    def mean(total: int) -> int:
        return (2 * total + calls) // (2 * calls)  # rounded half up, in integers

    return NormalizedUsage(
        prompt_tokens=mean(f.prompt_tokens),
        completion_tokens=mean(f.completion_tokens),
        cached_tokens=mean(f.cached_tokens),
        reasoning_tokens=mean(f.reasoning_tokens),
    )


def cheaper_models(
    flt: ReportFilter,
    *,
    alternatives: Mapping[str, Sequence[str]] = CHEAPER_MODELS,
    overrides: Sequence[PriceOverride] = (),
) -> list[Recommendation]:
    """Per (workflow, model, provider) of the period with a cheaper sibling in
    ``alternatives`` that costs less at the workflow's mean call (see the module docstring)."""
    found: list[Recommendation] = []
    for group in flt.rollups().grouped("workflow_name", "model", "provider"):
        f = Figures.from_rollup(group)
        calls = f.calls - f.errors
        entry = _lookup.lookup(group["provider"], group["model"])
        if calls <= 0 or not isinstance(entry, _lookup.Entry):
            continue
        usage = _mean_usage(f, calls)
        current = price_call(group["provider"], group["model"], usage, overrides=overrides).cost
        if current is None or not current:
            continue
        for alternative in alternatives.get(entry.model_ref, ()):
            cheaper = price_call(group["provider"], alternative, usage, overrides=overrides).cost
            if cheaper is None or cheaper >= current:
                continue
            found.append(_cheaper_model(group, f, calls, usage, current, alternative, cheaper))
            break
    found.sort(key=lambda r: (-(r.estimate or ZERO), r.subject))
    return found[:LIMIT]


def _cheaper_model(
    group: Mapping[str, Any],
    f: Figures,
    calls: int,
    usage: NormalizedUsage,
    current: Decimal,
    alternative: str,
    cheaper: Decimal,
) -> Recommendation:
    model, provider, workflow = group["model"], group["provider"], group["workflow_name"]
    current_total, cheaper_total = current * calls, cheaper * calls
    saving = current_total - cheaper_total
    return Recommendation(
        kind="cheaper_model",
        subject=_("workflow %(workflow)s on %(model)s")
        % {"workflow": workflow or _("(none)"), "model": model},
        action=_("Try %(alternative)s (%(provider)s) for this workflow's calls to %(model)s.")
        % {"alternative": alternative, "provider": provider, "model": model},
        estimate=saving,
        estimate_text=_("about %(saving)s less (%(current)s → %(cheaper)s, -%(share)s), an estimate")
        % {
            "saving": money_text(saving),
            "current": money_text(current_total),
            "cheaper": money_text(cheaper_total),
            "share": f"{float(saving / current_total):.0%}",
        },
        method=_(
            "%(calls)s successful calls; the mean call (%(prompt)s input tokens, %(cached)s of them "
            "cached; %(completion)s output tokens, %(reasoning)s of them reasoning) priced by "
            "the pricing module at %(model)s's price (%(one)s) and at %(alternative)s's "
            "(%(other)s), times the calls. Recorded cost: %(recorded)s."
        )
        % {
            "calls": show(calls),
            "prompt": show(usage.prompt_tokens),
            "cached": show(usage.cached_tokens),
            "completion": show(usage.completion_tokens),
            "reasoning": show(usage.reasoning_tokens),
            "model": model,
            "one": money_text(current),
            "alternative": alternative,
            "other": money_text(cheaper),
            "recorded": money_text(f.cost),
        },
        data={
            "workflow": workflow,
            "model": model,
            "provider": provider,
            "alternative": alternative,
            "calls": calls,
            "mean_usage": usage,
            "current_estimate": current_total,
            "alternative_estimate": cheaper_total,
            "recorded_cost": f.cost,
        },
    )
