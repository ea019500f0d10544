"""genai-prices look-ups: a (provider, model) pair resolved once and compiled into price plans.

Usage arrives in the app's convention (:mod:`ag2_logging.pricing.usage`). This is also genai-prices' own convention: its ``input_tokens`` unit is the parent of
``cache_read_tokens`` and ``cache_write_tokens`` (the Anthropic extractor in its data adds
``cache_read_input_tokens`` and ``cache_creation_input_tokens`` into ``input_tokens``), and its
``output_tokens`` is the parent of ``output_reasoning_tokens``. When a model prices a child unit,
genai-prices charges the parent only for what is left after subtracting the children, so the
mapping below is one to one and nothing is counted twice::

    Usage(input_tokens=prompt_tokens, cache_read_tokens=cached_tokens,
          cache_write_tokens=cache_write_tokens, output_tokens=completion_tokens,
          output_reasoning_tokens=reasoning_tokens)

Prices come from the data bundled with the installed genai-prices only: nothing here calls
``UpdatePrices`` or touches the network, and a process that does enable ``UpdatePrices`` for
its own purposes does not change what this module charges.

Pricing a call with ``genai_prices.calc_price`` costs about 70 microseconds, so the first look-up
of a (provider, model) pair resolves the model once and compiles each of its price sets into a
small plan (per unit: which token counts it covers, the rate or tiered rate, the direction); the
following calls do the same Decimal arithmetic as ``calc_price`` (``rate * count / per`` per
unit, summed in genai-prices' order, the tier picked from the prompt size, time-conditional
prices picked with genai-prices' own ``ModelInfo.get_prices``). Every plan is checked against
``ModelPrice.calc_price`` on probe usages when it is built; a price set whose plan disagrees (a
future genai-prices with different rules, say) is priced by genai-prices itself on every call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Final

from genai_prices import Usage
from genai_prices.types import TieredPrices

from ag2_logging.pricing.providers import (
    GENAI_PRICES_PROVIDER_IDS,
    LOCAL_PROVIDERS,
    genai_prices_provider_id,
    local_endpoint_provider,
    normalize_provider,
)
from ag2_logging.pricing.usage import NormalizedUsage

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, ModelPrice, Provider
    from genai_prices.units import UnitRegistry

__all__ = [
    "LOCAL",
    "UNKNOWN",
    "Entry",
    "canonical_model",
    "clear_caches",
    "entry_price",
    "lookup",
    "provider_of_model",
]


@lru_cache(maxsize=1)
def _snapshot() -> DataSnapshot:
    # Our own snapshot of the bundled data: never the one UpdatePrices may install globally.
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


# -2024-08-06 and -20240806 (genai-prices rewrites a compact date to the dashed form itself, but
# only to match a dated alias it lists; this drops the date altogether).
_DATE_SUFFIX_RE: Final = re.compile(r"-20\d{2}-?(?:0[1-9]|1[0-2])-?(?:0[1-9]|[12]\d|3[01])$")
# -0613 (MMDD, OpenAI) and -2409 (YYMM, Mistral); not -8192 / -32768 (context sizes).
_SHORT_DATE_SUFFIX_RE: Final = re.compile(
    r"-(?:(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])|2[3-9](?:0[1-9]|1[0-2]))$"
)
# Azure deployment names cannot contain dots, so AG2 turns gpt-3.5-turbo into gpt-35-turbo.
_AZURE_DOTLESS_RE: Final = re.compile(r"^gpt-(\d)(\d)(?=-|$)")


def _model_candidates(provider: str, model: str) -> tuple[str, ...]:
    """Names to try, in order, for ``model``: the most specific spelling first.

    genai-prices already matches most snapshot names (gpt-4o-2024-08-06, claude-3-5-sonnet-20241022,
    gemini-1.5-pro-002, compact dates like gpt-4o-20240806, gpt-35-turbo on Azure); the others
    are only tried when the name as given is unknown to it. Decorations are undone one at a time:

    * a ``models/`` prefix (Gemini SDK resource names);
    * an ``@version`` suffix (Vertex AI model versions);
    * a trailing date snapshot: ``-2024-08-06``, ``-20240806``, ``-0613`` or ``-2409``.

    On Azure each name is followed at once by its dotted spelling (deployment names cannot hold
    dots: ``gpt-35-turbo-1106`` -> ``gpt-3.5-turbo-1106``), so a dated snapshot, spelled either
    way, is always tried before its undated alias: ``gpt-35-turbo-1106``, ``gpt-3.5-turbo-1106``,
    ``gpt-35-turbo``, ``gpt-3.5-turbo``.
    """
    name = model.strip()
    undecorated = [name]
    for strip in (
        lambda value: value.removeprefix("models/"),
        lambda value: value.split("@", 1)[0],
        lambda value: _DATE_SUFFIX_RE.sub("", value),
        lambda value: _SHORT_DATE_SUFFIX_RE.sub("", value),
    ):
        stripped = strip(undecorated[-1])
        if stripped and stripped != undecorated[-1]:
            undecorated.append(stripped)
    candidates: list[str] = []
    for value in undecorated:
        spellings = (value, _AZURE_DOTLESS_RE.sub(r"gpt-\1.\2", value)) if provider == "azure" else (value,)
        candidates.extend(spelling for spelling in spellings if spelling not in candidates)
    return tuple(candidates)


# One priced unit of a model price, compiled: (coefficients of its leaf count as (index into the
# usage tuple, coefficient) pairs, constant count (1 for the per-request unit), base rate, tiers as
# (start, rate) pairs highest start first, unit size, direction: 1 input, 2 output, 0 neither).
# Plain tuples: they unpack faster than attribute reads on the hot path.
_Term = tuple[tuple[tuple[int, int], ...], int, Decimal, tuple[tuple[int, Decimal], ...], Decimal, int]


@dataclass(frozen=True, slots=True)
class _Plan:
    terms: tuple[_Term, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    ours: str  # our provider id (``openai@local`` for an inferred one)
    model_name: str  # the candidate name genai-prices matched
    model_ref: str  # genai-prices' model id
    info: ModelInfo
    provider: Provider
    fixed: ModelPrice | None  # the model's only price set; None for time-conditional prices
    plans: Mapping[int, _Plan | None]  # id(ModelPrice) -> plan, None = price with genai-prices
    inferred: bool = False  # an ``<provider>@local`` id: priced from the model name's provider


LOCAL: Final = "local"
UNKNOWN: Final = "unknown"

# Our usage tuple, in order, and the genai-prices usage key each one maps to.
_USAGE_KEYS: Final[tuple[str, ...]] = (
    "input_tokens",  # prompt_tokens (includes cache reads and writes)
    "cache_read_tokens",  # cached_tokens
    "cache_write_tokens",  # cache_write_tokens
    "output_tokens",  # completion_tokens (includes reasoning)
    "output_reasoning_tokens",  # reasoning_tokens
)
_MILLION: Final = Decimal(1_000_000)
_ZERO: Final = Decimal(0)
_PROBES: Final[tuple[tuple[int, int, int, int, int], ...]] = (
    (1_000, 300, 200, 500, 100),
    (456_789, 123_456, 65_432, 34_567, 12_345),
    (7, 0, 0, 3, 0),
    (0, 0, 0, 0, 0),
)


def _as_tuple(usage: NormalizedUsage) -> tuple[int, int, int, int, int]:
    return (
        usage.prompt_tokens,
        usage.cached_tokens,
        usage.cache_write_tokens,
        usage.completion_tokens,
        usage.reasoning_tokens,
    )


def _genai_usage(counts: tuple[int, int, int, int, int]) -> Usage:
    prompt, cached, cache_write, completion, reasoning = counts
    return Usage(
        input_tokens=prompt,
        cache_read_tokens=cached,
        cache_write_tokens=cache_write,
        output_tokens=completion,
        output_reasoning_tokens=reasoning,
    )


@lru_cache(maxsize=1)
def _registry() -> UnitRegistry:
    from genai_prices.data_units import unit_data
    from genai_prices.units import UnitRegistry

    return UnitRegistry(unit_data)


def _compile_plan(model_price: ModelPrice) -> _Plan | None:
    """Compile ``model_price`` the way ``ModelPrice.calc_price`` prices it, or None if unsure."""
    try:
        registry = _registry()
        priced = [
            (registry.unit_for_price_key(key), value)
            for key, value in vars(model_price).items()
            if not key.startswith("_") and value is not None
        ]
        width = len(_USAGE_KEYS) + 1  # the usage counts, then the constant
        raw: dict[str, list[int]] = {}
        for unit, _ in priced:
            vector = [0] * width
            if unit.usage_key in _USAGE_KEYS:
                vector[_USAGE_KEYS.index(unit.usage_key)] = 1
            elif unit.usage_key == "requests":
                vector[-1] = 1
            raw[unit.usage_key] = vector
        # Leaf counts: each unit minus its priced descendants' leaves, most specific first
        # (genai_prices.decompose.compute_leaf_values).
        units = [unit for unit, _ in priced if unit.usage_key != "requests"]
        leaves: dict[str, list[int]] = {}
        for unit in sorted(units, key=lambda u: (-len(u.dimensions), u.usage_key)):
            vector = list(raw[unit.usage_key])
            for other in units:
                if other is not unit and unit.dimensions.items() <= other.dimensions.items():
                    vector = [a - b for a, b in zip(vector, leaves[other.usage_key], strict=True)]
            leaves[unit.usage_key] = vector
        terms: list[_Term] = []
        for unit, price in priced:
            vector = leaves.get(unit.usage_key, raw[unit.usage_key])
            coefs = tuple((index, coef) for index, coef in enumerate(vector[:-1]) if coef)
            if not coefs and not vector[-1]:
                continue  # a unit our usage never reports (audio, web searches...): always 0
            if isinstance(price, TieredPrices):
                base = price.base
                tiers = tuple((tier.start, tier.price) for tier in reversed(price.tiers))
            elif isinstance(price, Decimal):
                base, tiers = price, ()
            else:
                return None
            direction = {"input": 1, "output": 2}.get(unit.dimensions.get("direction", ""), 0)
            terms.append((coefs, vector[-1], base, tiers, Decimal(unit.per), direction))
        plan = _Plan(terms=tuple(terms))
        for probe in _PROBES:
            expected = model_price.calc_price(_genai_usage(probe))
            got = _run_plan(plan, probe)
            if (got[0], got[1], got[2]) != (
                expected["total_price"],
                expected["input_price"],
                expected["output_price"],
            ):
                return None
    except Exception:
        return None
    return plan


def _run_plan(plan: _Plan, counts: tuple[int, int, int, int, int]) -> tuple[Decimal, Decimal, Decimal]:
    """(total, input, output) price of ``counts`` under ``plan``, as ``calc_price`` computes it."""
    total = input_price = output_price = _ZERO
    prompt = counts[0]
    for coefs, count, rate, tiers, per, direction in plan.terms:
        for index, coef in coefs:
            count += coef * counts[index]
        if count == 0:
            continue
        if count < 0:
            raise ValueError("invalid usage: a breakdown exceeds its total")
        # Threshold tiers: the whole count pays the rate of the highest tier whose start the
        # prompt (genai-prices' total input tokens) exceeds (genai_prices.types.calc_unit_price).
        for start, tier_rate in tiers:
            if prompt > start:
                rate = tier_rate
                break
        value = rate * Decimal(count) / per
        total += value
        if direction == 1:
            input_price += value
        elif direction == 2:
            output_price += value
    return total, input_price, output_price


def _find(ours: str, gp_provider: str, model: str) -> tuple[str, ModelInfo, Provider] | None:
    snapshot = _snapshot()
    for candidate in _model_candidates(ours, model):
        try:
            provider, info = snapshot.find_provider_model(candidate, None, gp_provider, None)
        except LookupError:
            continue
        return candidate, info, provider
    return None


@lru_cache(maxsize=4096)
def lookup(provider: str, model: str) -> Entry | str:
    """The compiled pricing entry for (provider, model), or ``LOCAL`` / ``UNKNOWN``.

    ``ollama`` and ``local`` are ``LOCAL``. ``<provider>@local`` (a local endpoint that
    ``PROVIDER_BASE_URLS`` does not map) is ``<provider>``'s entry marked ``inferred``, or
    ``LOCAL`` when ``<provider>`` does not know the name. Any other provider is its entry, or
    ``UNKNOWN`` (never ``LOCAL``: an unknown price is not a free one).
    """
    ours = normalize_provider(provider)
    if ours in LOCAL_PROVIDERS:
        return LOCAL
    inferred_from = local_endpoint_provider(ours)
    gp_provider = genai_prices_provider_id(ours)
    miss = LOCAL if inferred_from is not None or ours.endswith("@local") else UNKNOWN
    if gp_provider is None or not model.strip():
        return miss
    found = _find(inferred_from or ours, gp_provider, model)
    if found is None:
        return miss
    name, info, gp = found
    if isinstance(info.prices, list):
        price_sets = [conditional.prices for conditional in info.prices]
        fixed = None
    else:
        price_sets = [info.prices]
        fixed = info.prices
    plans = {id(price_set): _compile_plan(price_set) for price_set in price_sets}
    return Entry(
        ours=ours,
        model_name=name,
        model_ref=info.id,
        info=info,
        provider=gp,
        fixed=fixed,
        plans=plans,
        inferred=inferred_from is not None,
    )


# genai-prices provider id -> ours, for the ids that differ (aws -> aws-bedrock).
_OURS_BY_GENAI_ID: Final[Mapping[str, str]] = {
    gp: ours for ours, gp in reversed(tuple(GENAI_PRICES_PROVIDER_IDS.items()))
}


@lru_cache(maxsize=4096)
def provider_of_model(model: str) -> str | None:
    """The provider (our id, or genai-prices' id for one we have no name for) whose price list
    knows ``model`` by its name alone, trying ``_model_candidates``' fallbacks; None when no
    provider knows it (``llama3.1:8b``, ``qwen2.5:7b``, ``my-model``)."""
    if not model.strip():
        return None
    snapshot = _snapshot()
    for candidate in _model_candidates("", model):
        try:
            provider, _info = snapshot.find_provider_model(candidate, None, None, None)
        except LookupError:
            continue
        return _OURS_BY_GENAI_ID.get(provider.id, provider.id)
    return None


def canonical_model(provider: str, model: str) -> str:
    """The name genai-prices knows ``model`` by for ``provider``, after the fallbacks.

    Returns the first of ``_model_candidates`` that genai-prices matches (``model`` itself when
    it is known as given), or ``model`` stripped when none is (and for local/unknown providers).
    """
    entry = lookup(provider, model)
    if isinstance(entry, Entry):
        return entry.model_name
    return model.strip()


def entry_price(
    entry: Entry, usage: NormalizedUsage, at: datetime | None
) -> tuple[Decimal, Decimal, Decimal]:
    """(total, input, output) price of ``usage`` for a model genai-prices knows: with the
    compiled plan of the price set in force at ``at`` (default: now), or by genai-prices itself
    when no plan was trusted. Raises on anything genai-prices refuses."""
    model_price = entry.fixed
    if model_price is None:
        model_price = entry.info.get_prices(at or datetime.now(UTC))
    plan = entry.plans.get(id(model_price))
    counts = _as_tuple(usage)
    if plan is not None:
        return _run_plan(plan, counts)
    calculation = entry.info.calc_price(_genai_usage(counts), entry.provider, genai_request_timestamp=at)
    return calculation.total_price, calculation.input_price, calculation.output_price


@lru_cache(maxsize=4096)
def fixed_plan(provider: str, model: str) -> _Plan | None:
    """The compiled plan of a (provider, model) whose genai-prices price does not depend on the
    time (one price set) and whose plan was trusted; None for any other (time-dependent prices,
    local or unknown models). :func:`plan_price` with it is what :func:`entry_price` returns, at
    a fraction of the cost (the budgets price every call twice)."""
    entry = lookup(provider, model)
    if not isinstance(entry, Entry) or entry.fixed is None:
        return None
    return entry.plans.get(id(entry.fixed))


def plan_price(plan: _Plan, usage: NormalizedUsage) -> Decimal:
    """The total price of ``usage`` under ``plan`` (from :func:`fixed_plan`); raises as
    :func:`entry_price` does for an impossible usage."""
    return _run_plan(plan, _as_tuple(usage))[0]


def input_plan_price(plan: _Plan, prompt: int, cached: int, cache_write: int) -> Decimal:
    """:func:`plan_price` of input tokens only (no completion), from the counts themselves:
    the same figure without building a ``NormalizedUsage`` (the caller checks the counts as
    it does), for loops pricing thousands of prompts (the recommendations' cache check)."""
    return _run_plan(plan, (prompt, cached, cache_write, 0, 0))[0]


def clear_caches() -> None:
    """Forget every resolved (provider, model) pair and its plans."""
    lookup.cache_clear()
    fixed_plan.cache_clear()
    provider_of_model.cache_clear()
