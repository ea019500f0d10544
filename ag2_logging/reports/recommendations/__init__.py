"""Recommendations grounded in the recorded data, each with its estimate and how it was computed.

Four kinds, each a function of a :class:`~ag2_logging.reports.ReportFilter` (its period and
scope) returning :class:`Recommendation` objects, largest estimate first:

* :func:`cheaper_models`: a workflow's calls on a model whose named cheaper sibling of the same
  provider (``CHEAPER_MODELS``) costs less at the same token counts. Both are priced through
  :func:`ag2_logging.pricing.price_call` (the admin's overrides included) at the workflow's mean
  call on that model (its tokens divided by its successful calls, rounded to whole tokens)
  times those calls: a tiered price then sees a call's size, not the period's sum. An estimate:
  the cheaper model may answer differently or with other token counts.
* :func:`prompt_cache_misses`: workflows whose repeated prompts are rarely read from the
  provider's prompt cache. AG2 sends the whole conversation on every call, so each call of a
  (session, agent, model) repeats the previous call's prompt; from ``CACHE_MIN_PROMPT`` tokens
  up (the size from which providers cache a prefix), ``min(previous prompt, this prompt)``
  tokens are *repeated*. The hit rate is the cached tokens among them over the repeated
  tokens; a workflow with at least ``CACHE_MIN_REPEATED`` repeated tokens and a hit rate under
  ``CACHE_LOW_HIT_RATE`` is listed, with the saving had the missed tokens been cache reads
  (each call priced twice by ``price_call``, input only).
* :func:`failing_sessions`: sessions with at least ``FAILING_MIN_ATTEMPTS`` failed attempts
  (calls that ended in an error plus the SDK's retries) making at least ``FAILING_MIN_SHARE`` of
  their calls; the estimate is the attempts and the time spent waiting on the failed calls.
* :func:`expired_overrides`: ``ModelPrice`` overrides whose ``effective_to`` has passed while no
  other override prices their models today; the estimate is the calls since then, what they were
  charged (unknown when their model has no other price) and what the expired rates would charge.

Reads: the daily rollups (kinds 1 and 4, one grouped query each), the calls of finished
sessions (kind 2, those of the newest sessions holding about ``CALL_LIMIT`` calls; kind 3, one
grouped query over the sessions whose totals reach its thresholds) and the overrides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.translation import gettext as _

from ag2_logging.formats import show
from ag2_logging.reports.filters import ReportFilter
from ag2_logging.reports.recommendations.base import (
    KINDS,
    LIMIT,
    Kind,
    Recommendation,
    Recommendations,
    money_text,
)
from ag2_logging.reports.recommendations.cache import (
    CACHE_LOW_HIT_RATE,
    CACHE_MIN_PROMPT,
    CACHE_MIN_REPEATED,
    CALL_LIMIT,
    prompt_cache_misses,
)
from ag2_logging.reports.recommendations.cheaper import CHEAPER_MODELS, cheaper_models
from ag2_logging.reports.recommendations.failing import (
    FAILING_MIN_ATTEMPTS,
    FAILING_MIN_SHARE,
    failing_sessions,
)
from ag2_logging.reports.recommendations.overrides import expired_overrides
from ag2_logging.reports.tables import money

__all__ = [
    "CACHE_LOW_HIT_RATE",
    "CACHE_MIN_PROMPT",
    "CACHE_MIN_REPEATED",
    "CALL_LIMIT",
    "CHEAPER_MODELS",
    "FAILING_MIN_ATTEMPTS",
    "FAILING_MIN_SHARE",
    "KINDS",
    "LIMIT",
    "Kind",
    "Recommendation",
    "Recommendations",
    "cheaper_models",
    "expired_overrides",
    "failing_sessions",
    "money_text",
    "prompt_cache_misses",
    "recommendations",
    "recommendations_table",
]

# ---------------------------------------------------------------------------------------------
# All of them


def recommendations(
    flt: ReportFilter,
    *,
    alternatives: Mapping[str, Sequence[str]] = CHEAPER_MODELS,
    today: dt.date | None = None,
) -> Recommendations:
    """Every kind for the period and scope of ``flt`` (the price overrides read now)."""
    from ag2_logging.models import ModelPrice
    from ag2_logging.pricing.cache import to_override

    rows = [(row.pk, to_override(row)) for row in ModelPrice.objects.order_by("pk")]
    overrides = [o for _pk, o in rows]
    cache, truncated = prompt_cache_misses(flt)
    result = Recommendations(
        filter=flt,
        items={
            "cheaper_model": cheaper_models(flt, alternatives=alternatives, overrides=overrides),
            "prompt_cache": cache,
            "failing_sessions": failing_sessions(flt),
            "expired_override": expired_overrides(rows, today=today),
        },
    )
    if truncated:
        result.notes.append(
            _(
                "The period has more than %(n)s calls: the prompt cache check read those of its "
                "newest sessions, about %(n)s calls."
            )
            % {"n": show(CALL_LIMIT)}
        )
    return result


RECOMMENDATION_HEADER = ["kind", "subject", "action", "estimate_usd", "estimate", "method"]


def recommendations_table(report: Recommendations) -> tuple[list[str], list[list[Any]]]:
    """One row per recommendation; the estimate in dollars empty when it is not money."""
    rows = [
        [r.kind, r.subject, r.action, money(r.estimate), r.estimate_text, r.method]
        for kind in KINDS
        for r in report.items[kind]
    ]
    return RECOMMENDATION_HEADER, rows
