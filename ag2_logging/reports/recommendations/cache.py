"""Recommendations on repeated prompts the provider's cache did not serve (see the package docstring)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils.translation import gettext as _

from ag2_logging.formats import show
from ag2_logging.models import LLMCall, Session
from ag2_logging.pricing import NormalizedUsage, call_cost, fixed_plan_cost
from ag2_logging.pricing.lookup import Entry, fixed_plan, input_plan_price, lookup
from ag2_logging.querysets import day_start
from ag2_logging.reports.figures import ZERO
from ag2_logging.reports.filters import ReportFilter
from ag2_logging.reports.recommendations.base import LIMIT, Recommendation, money_text

#: Prompts from this many tokens are cached by the providers (OpenAI, Anthropic's Sonnet).
CACHE_MIN_PROMPT = 1_024
#: A workflow needs this many repeated prompt tokens in the period to be judged.
CACHE_MIN_REPEATED = 10_000
#: Below this share of repeated tokens read from the cache, the hit rate is low.
CACHE_LOW_HIT_RATE = 0.5
#: At most this many calls are read for the cache check: those of the period's newest sessions
#: (the older ones are left out, with a note).
CALL_LIMIT = 20_000


# ---------------------------------------------------------------------------------------------
# 2. Repeated prompts the provider's cache did not serve


@dataclass
class _CacheTally:
    repeated: int = 0
    hit: int = 0
    calls: int = 0
    saving: Decimal = ZERO
    unpriced: int = 0
    models: set[str] = field(default_factory=set)

    def add(
        self,
        before: int,
        provider: str,
        model: str,
        prompt: int,
        cached: int,
        write: int,
        prices: dict[tuple[str, str], _InputPrices],
    ) -> None:
        """Count one call whose previous call in its session (same agent and model) sent
        ``before`` prompt tokens; ``prices`` holds each (provider, model)'s input prices."""
        repeated = min(before, prompt)
        hit = min(cached, repeated)
        missed = min(repeated - hit, prompt - cached - write)
        self.calls += 1
        self.repeated += repeated
        self.hit += hit
        self.models.add(model)
        if missed <= 0:
            return
        price = prices.get((provider, model))
        if price is None:
            price = prices[provider, model] = _InputPrices(provider, model)
        now = price(prompt, cached, write)
        if_cached = price(prompt, cached + missed, write)
        if now is None or if_cached is None:
            self.unpriced += 1
        else:
            self.saving += now - if_cached


class _InputPrices:
    """``_input_price`` of one (provider, model) (USD; None: unpriced) by token shape (prompt,
    cached, cache-write tokens), each shape priced once. A model with one fixed genai-prices
    price runs its compiled plan on the counts directly (``input_plan_price``: the same figure
    as ``fixed_plan_cost``, without a ``NormalizedUsage`` and the plan's look-up per call, which
    were over half of the pricing time of the check's 20,000 calls); any other case, or counts
    ``NormalizedUsage`` would refuse, goes through ``_input_price`` itself."""

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        #: Priced the same whatever the tokens (``_flat``): once, at (0, 0, 0).
        self.flat = _flat(provider, model)
        self.plan = None if self.flat else fixed_plan(provider, model)
        self.known: dict[tuple[int, int, int], Decimal | None] = {}

    def __call__(self, prompt: int, cached: int, write: int) -> Decimal | None:
        if self.flat:
            prompt = cached = write = 0
        shape = (prompt, cached, write)
        if shape in self.known:
            return self.known[shape]
        price: Decimal | None = None
        if self.plan is not None and min(shape) >= 0 and cached + write <= prompt:
            try:
                price = input_plan_price(self.plan, prompt, cached, write)
            except Exception:  # as fixed_plan_cost: call_cost answers then
                price = None
        if price is None:
            price = _input_price(self.provider, self.model, prompt, cached, write)
        self.known[shape] = price
        return price


def _input_price(provider: str, model: str, prompt: int, cached: int, write: int) -> Decimal | None:
    """``price_call``'s cost of these input tokens (USD; None: unpriced), through
    ``pricing.call_cost``: a model with one price set runs its compiled plan directly, without
    resolving the model and its price set again for every call (two prices a call were most of
    the recommendations page at a million calls); ``fixed_plan_cost`` first, which is that plan's
    price without the status ``call_cost`` also works out."""
    usage = NormalizedUsage(
        prompt_tokens=prompt, completion_tokens=0, cached_tokens=cached, cache_write_tokens=write
    )
    cost = fixed_plan_cost(provider, model, usage)
    return cost if cost is not None else call_cost(provider, model, usage)[0]


def _flat(provider: str, model: str) -> bool:
    """Whether ``_input_price`` is the same whatever the tokens: a model genai-prices does not
    know (None) or a local one (at ``price_call``'s default local rate, 0)."""
    return not isinstance(lookup(provider, model), Entry)


def _newest_sessions(flt: ReportFilter, limit: int) -> tuple[dict[Any, str], bool]:
    """The newest finished sessions in scope holding about ``limit`` calls (their workflow by
    primary key), and whether older ones were left unread."""
    picked: dict[Any, str] = {}
    held = 0
    newest = flt.sessions().exclude(status=Session.Status.RUNNING).order_by("-started_at", "-pk")
    rows = newest.values_list("pk", "call_count", "workflow_name")[: limit + 1]
    for pk, calls, workflow in rows.iterator(chunk_size=500):
        if held >= limit:
            return picked, True
        picked[pk] = workflow
        held += calls
    return picked, False


def prompt_cache_misses(flt: ReportFilter, *, limit: int = CALL_LIMIT) -> tuple[list[Recommendation], bool]:
    """Workflows whose repeated prompt tokens were seldom cache reads (see the module
    docstring); also whether the period had more than ``limit`` calls (the rest unread).

    The calls read are those of the newest finished sessions in scope that started in the
    period, as many sessions as hold ``limit`` calls (by ``Session.call_count``): one query on
    sessions (their started_at index, stopped early), one on those sessions' calls (their
    (session, seq) index), never a sort of every call of the period. Those sessions are finished
    ones of the filter's scope, the rollups' (``rolled_up_calls``): their calls of the period are
    read with no join (the workflow comes with the session)."""
    picked, truncated = _newest_sessions(flt, limit)
    rows = _sample_calls(flt, list(picked))
    tallies: dict[str, _CacheTally] = {}
    previous: dict[tuple[str, str, str], int] = {}  # of the current session (rows in session order)
    prices: dict[tuple[str, str], _InputPrices] = {}
    current: Any = None
    tally: _CacheTally | None = None
    n = 0
    for session, agent, model, provider, prompt, cached, write, in_period_ in rows:
        if not in_period_:  # False, or None without a start
            continue
        if n == limit:
            truncated = True
            break
        n += 1
        if session != current:
            current, previous, tally = session, {}, None
        key = (agent, model, provider)
        before = previous.get(key)
        previous[key] = prompt
        if before is None or prompt < CACHE_MIN_PROMPT:
            continue
        if tally is None:
            workflow = picked[session]
            tally = tallies.get(workflow) or tallies.setdefault(workflow, _CacheTally())
        tally.add(before, provider, model, prompt, cached, write, prices)
    found = [
        _cache_recommendation(workflow, tally)
        for workflow, tally in tallies.items()
        if tally.repeated >= CACHE_MIN_REPEATED and tally.hit / tally.repeated < CACHE_LOW_HIT_RATE
    ]
    found.sort(key=lambda r: (-(r.estimate or ZERO), r.subject))
    return found[:LIMIT], truncated


def _sample_calls(flt: ReportFilter, session_ids: list[Any]) -> Any:
    """The successful calls of ``session_ids`` in session and call order: (session, agent, model,
    provider, prompt tokens, cached tokens, cache-write tokens, whether it started in the
    period)."""
    # The period is a column of the rows, not a condition: as one, PostgreSQL would AND the
    # sessions' index with the started_at one over every call of the period (3.3 million at ten
    # million calls, 240 ms). The picked sessions hold about ``limit`` calls (``call_count``): no
    # LIMIT is needed either.
    in_period = Q(started_at__gte=day_start(flt.start)) & Q(
        started_at__lt=day_start(flt.end + dt.timedelta(days=1))
    )
    return (
        LLMCall.objects.filter(session_id__in=session_ids, status="success")
        .annotate(in_period=ExpressionWrapper(in_period, output_field=BooleanField()))
        .order_by("session_id", "seq")
        .values_list(
            "session_id",
            "agent_name",
            "model",
            "provider",
            "prompt_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "in_period",
        )
    )


def _cache_recommendation(workflow: str, t: _CacheTally) -> Recommendation:
    rate = t.hit / t.repeated
    return Recommendation(
        kind="prompt_cache",
        subject=_("workflow %(workflow)s") % {"workflow": workflow or _("(none)")},
        action=_(
            "Keep the start of the prompts stable (system message first, no timestamps or ids in "
            "it) and turn on prompt caching where the provider needs it (Anthropic: cache_control)."
        ),
        estimate=t.saving,
        estimate_text=_("about %(saving)s less had the repeated tokens been cache reads, an estimate")
        % {"saving": money_text(t.saving)},
        method=_(
            "%(calls)s calls of %(models)s repeated %(repeated)s prompt tokens of the previous call "
            "of their session and agent; %(hit)s of them (%(rate)s) were cache reads. Each call "
            "priced twice by the pricing module (input only), as recorded and with the missed "
            "tokens as cache reads.%(unpriced)s"
        )
        % {
            "calls": show(t.calls),
            "models": ", ".join(sorted(t.models)),
            "repeated": show(t.repeated),
            "hit": show(t.hit),
            "rate": f"{rate:.0%}",
            "unpriced": (_(" %(n)s calls without a price are not in the estimate.") % {"n": t.unpriced})
            if t.unpriced
            else "",
        },
        data={
            "workflow": workflow,
            "calls": t.calls,
            "repeated_tokens": t.repeated,
            "cached_tokens": t.hit,
            "hit_rate": rate,
            "saving": t.saving,
            "unpriced_calls": t.unpriced,
        },
    )
