"""What one LLM call cost: genai-prices look-ups, the admin's overrides, the local rate, and
the calls that cost nothing.

The cost-zero rules live here (:func:`costs_nothing`, and ``error`` / ``is_cached`` of
:func:`price_call`): a call that failed and a call AG2 answered from its own cache cost 0 and
count as priced. A call whose reply reported no usage has an unknown cost (``no_usage``).
Otherwise, in order: the most specific admin override, the local rate for local providers,
genai-prices' bundled data (a dated snapshot before its undated alias; a local endpoint's known
model names at their own provider's price, ``inferred``); with none of these the cost is
unknown (None, never 0).
Usage arrives in the app's convention (:mod:`ag2_logging.pricing.usage`); genai-prices' data is
read in :mod:`ag2_logging.pricing.lookup`, on the first call that needs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal
from urllib.parse import urlsplit

from ag2_logging.pricing import lookup as _genai
from ag2_logging.pricing import providers
from ag2_logging.pricing.overrides import PriceOverride, override_costs, select_override
from ag2_logging.pricing.usage import NormalizedUsage

__all__ = [
    "PriceResult",
    "PriceStatus",
    "clear_caches",
    "costs_nothing",
    "detect_provider",
    "price_call",
    "warn_unknown_once",
]

logger = logging.getLogger("ag2_logging.pricing")

_MILLION: Final = Decimal(1_000_000)
_ZERO: Final = Decimal(0)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

PriceStatus = Literal["priced", "override", "inferred", "local", "unknown", "no_usage"]


@dataclass(frozen=True, slots=True)
class PriceResult:
    """The price of one call.

    ``status`` (the values of ``LLMCall.PriceStatus``): ``priced`` (genai-prices, or a call that
    costs nothing), ``override`` (an admin price), ``inferred`` (a ``<provider>@local`` call
    priced from its model name's provider), ``local`` (the local rate), ``unknown`` (no price)
    or ``no_usage`` (the reply reported no usage); ``cost`` is None, never 0, for the last two.
    ``model_ref`` is the genai-prices model id that was matched (``priced`` / ``inferred``
    only); ``override`` the override that was used.
    """

    cost: Decimal | None
    status: PriceStatus
    input_cost: Decimal | None
    output_cost: Decimal | None
    model_ref: str | None
    provider: str
    override: PriceOverride | None = None


def costs_nothing(*, error: object = "", is_cached: bool = False) -> bool:
    """The cost-zero rules: a failed call (``error`` set) and a call AG2 answered from its own
    cache (``is_cached``) have no provider bill; they cost 0 and count as priced."""
    return bool(error) or bool(is_cached)


def _free(provider: str) -> PriceResult:
    return PriceResult(
        cost=_ZERO, status="priced", input_cost=_ZERO, output_cost=_ZERO, model_ref=None, provider=provider
    )


def _price_override(override: PriceOverride, provider: str, usage: NormalizedUsage) -> PriceResult:
    input_cost, output_cost = override_costs(override, usage)
    return PriceResult(
        cost=input_cost + output_cost,
        status="override",
        input_cost=input_cost,
        output_cost=output_cost,
        model_ref=None,
        provider=provider,
        override=override,
    )


def _local(provider: str, usage: NormalizedUsage, local_rate: Decimal) -> PriceResult:
    return PriceResult(
        cost=Decimal(usage.total_tokens) * local_rate / _MILLION,
        status="local",
        input_cost=Decimal(usage.prompt_tokens) * local_rate / _MILLION,
        output_cost=Decimal(usage.completion_tokens) * local_rate / _MILLION,
        model_ref=None,
        provider=provider,
    )


def _unknown(provider: str) -> PriceResult:
    return PriceResult(
        cost=None, status="unknown", input_cost=None, output_cost=None, model_ref=None, provider=provider
    )


def _no_usage(provider: str) -> PriceResult:
    return PriceResult(
        cost=None, status="no_usage", input_cost=None, output_cost=None, model_ref=None, provider=provider
    )


def _priced(entry: _genai.Entry, provider: str, usage: NormalizedUsage, at: datetime | None) -> PriceResult:
    """genai-prices' price of ``usage`` for a model it knows: with the compiled plan, or by
    genai-prices itself when no plan was trusted; unknown when either fails."""
    try:
        total, input_cost, output_cost = _genai.entry_price(entry, usage, at)
    except Exception:
        return _unknown(provider)
    return PriceResult(
        cost=total,
        status="inferred" if entry.inferred else "priced",
        input_cost=input_cost,
        output_cost=output_cost,
        model_ref=entry.model_ref,
        provider=provider,
    )


def _select_override(
    overrides: Sequence[PriceOverride], provider: str, model: str, at: datetime
) -> PriceOverride | None:
    """``select_override`` for ``provider``; for ``<provider>@local`` the overrides of
    ``<provider>`` apply too (an override naming ``<provider>@local`` wins a tie)."""
    found = select_override(overrides, provider, model, at)
    base, local = providers.split_local(provider)
    if not local or not base:
        return found
    borrowed = select_override(overrides, base, model, at)
    if found is None or (borrowed is not None and borrowed.specificity() > found.specificity()):
        return borrowed
    return found


def price_call(
    provider: str,
    model: str,
    usage: NormalizedUsage,
    *,
    at: datetime | None = None,
    overrides: Sequence[PriceOverride] = (),
    local_rate: Decimal = Decimal(0),
    error: object = "",
    is_cached: bool = False,
    usage_missing: bool = False,
) -> PriceResult:
    """What one call cost, in USD (``usage`` in the app's token convention).

    0. A failed call (``error``) or one served from AG2's cache (``is_cached``) -> 0,
       ``priced`` (:func:`costs_nothing`; both default to off).
    1. ``usage_missing`` (the reply carried no usage report, so ``usage`` is all zeros and
       means nothing) -> cost None, ``no_usage``: no override or rate can price it.
    2. The most specific applicable override (``select_override``; for ``<provider>@local``
       the overrides of ``<provider>`` too) -> ``override``.
    3. ``ollama`` / ``local`` -> ``total_tokens * local_rate / 1e6``, ``local``.
    4. genai-prices' bundled data, the model name tried as given then through
       ``canonical_model``'s fallbacks (a dated snapshot, dotted or not, before its undated
       alias) -> ``priced``. For ``<provider>@local`` (``pricing.detect_provider``'s id for a
       local endpoint that ``PROVIDER_BASE_URLS`` does not map) the price is ``<provider>``'s
       and the status ``inferred``; a name ``<provider>`` does not know gets the local rate.
    5. Otherwise (unknown provider or model, or any failure) -> cost None, ``unknown``.

    ``at`` (default: now) selects overrides and genai-prices' time-dependent prices (DeepSeek's
    off-peak hours, announced price changes). Never raises for any usage or name.
    """
    if costs_nothing(error=error, is_cached=is_cached):
        return _free(provider)
    if usage_missing:
        return _no_usage(provider)
    if overrides:
        override = _select_override(overrides, provider, model, at or datetime.now(UTC))
        if override is not None:
            return _price_override(override, provider, usage)
    entry = _genai.lookup(provider, model)
    if isinstance(entry, _genai.Entry):
        return _priced(entry, provider, usage, at)
    return _local(provider, usage, local_rate) if entry == _genai.LOCAL else _unknown(provider)


def call_cost(
    provider: str,
    model: str,
    usage: NormalizedUsage,
    *,
    at: datetime | None = None,
    overrides: Sequence[PriceOverride] = (),
    local_rate: Decimal = Decimal(0),
    error: object = "",
    is_cached: bool = False,
    usage_missing: bool = False,
) -> tuple[Decimal | None, PriceStatus]:
    """``(cost, status)`` of :func:`price_call` (same arguments, same answer), for the recorder's
    hot path: a model with one fixed price set and a trusted plan (most of them) is priced with
    its cached plan directly, building no ``PriceResult``; anything else goes through
    :func:`price_call`. Never raises."""
    if not overrides and not usage_missing and not costs_nothing(error=error, is_cached=is_cached):
        plan = _genai.fixed_plan(provider, model)
        if plan is not None:
            try:
                cost = _genai.plan_price(plan, usage)
            except Exception:
                return None, "unknown"
            entry = _genai.lookup(provider, model)  # the Entry fixed_plan read (both cached)
            return cost, "inferred" if isinstance(entry, _genai.Entry) and entry.inferred else "priced"
    result = price_call(
        provider,
        model,
        usage,
        at=at,
        overrides=overrides,
        local_rate=local_rate,
        error=error,
        is_cached=is_cached,
        usage_missing=usage_missing,
    )
    return result.cost, result.status


def fixed_plan_cost(provider: str, model: str, usage: NormalizedUsage) -> Decimal | None:
    """USD for ``usage`` by the model's one fixed genai-prices price (its compiled plan, cached),
    as :func:`call_cost` prices it with no admin override loaded; None when the model has no such
    plan (no price, a price that changes with time, a local model) or it cannot be run: ask
    :func:`call_cost` then. For the budgets' check, which needs the cost and not its status."""
    plan = _genai.fixed_plan(provider, model)
    if plan is None:
        return None
    try:
        return _genai.plan_price(plan, usage)
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# Provider detection with genai-prices' names
# --------------------------------------------------------------------------------------------


def detect_provider(
    *,
    api_type: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    base_url_map: Mapping[str, str] | None = None,
) -> str:
    """The provider id to record for an LLM config: ``providers.detect_provider``'s answer,
    except for a local host (loopback, ``localhost``, ``host.docker.internal``...) that
    ``base_url_map`` (``PROVIDER_BASE_URLS``) does not map and ``api_type`` does not name.

    Such a host is often a proxy or gateway in front of a real provider (LiteLLM, a corporate
    gateway, a test server), so a model name genai-prices knows gives ``<provider>@local``
    (``openai@local`` for ``gpt-4o-mini``): priced at that provider's price, ``price_status``
    ``inferred``; a warning naming ``PROVIDER_BASE_URLS`` is logged once per base URL and
    provider. A model name no provider knows stays ``local`` (the local rate), as do
    ``api_type`` ``ollama`` (``ollama``) and a base URL mapped to ``local``.
    """
    provider, local_host = providers.detect_endpoint(
        api_type=api_type, base_url=base_url, model=model, base_url_map=base_url_map
    )
    if not local_host or not model:
        return provider
    inferred = _genai.provider_of_model(model)
    if inferred is None:
        return provider
    recorded = inferred + providers.LOCAL_ENDPOINT_SUFFIX
    _warn_inferred_once(base_url or "", inferred, recorded, model)
    return recorded


def _safe_url(base_url: str) -> str:
    """``base_url`` without user info, query or fragment (nothing secret goes to the log)."""
    try:
        parts = urlsplit(base_url.strip() if "://" in base_url else "//" + base_url.strip())
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable base URL>"
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}{host}{port}{parts.path}"


# --------------------------------------------------------------------------------------------
# Warnings
# --------------------------------------------------------------------------------------------

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()
_WARNED_MAX: Final = 10_000


def warn_unknown_once(provider: str, model: str, logger: logging.Logger) -> bool:
    """Log a warning that (provider, model) has no price, once per pair per process.

    Returns True when it logged. Past 10,000 distinct pairs it stops remembering new ones (and
    stops warning) so a stream of junk model names cannot grow memory without bound.
    """
    key = (provider, model)
    with _warned_lock:
        if key in _warned or len(_warned) >= _WARNED_MAX:
            return False
        _warned.add(key)
    logger.warning(
        "No price for model %r on provider %r: its calls are logged with an unknown cost. "
        "Add a price override in the admin to price them.",
        model,
        provider,
    )
    return True


_warned_inferred: set[tuple[str, str]] = set()


def _warn_inferred_once(base_url: str, provider: str, recorded: str, model: str) -> bool:
    """Log, once per (base URL, provider) per process (at most 10,000 pairs), that calls to a
    local endpoint are priced from their model name. Returns True when it logged."""
    url = _safe_url(base_url)
    key = (url, provider)
    with _warned_lock:
        if key in _warned_inferred or len(_warned_inferred) >= _WARNED_MAX:
            return False
        _warned_inferred.add(key)
    logger.warning(
        "Calls to %s (a local host that PROVIDER_BASE_URLS does not map) for model %r are priced "
        "at %s's price for that name and recorded with provider %r and price_status 'inferred'. "
        "Map this base URL in PROVIDER_BASE_URLS: to the provider that bills these calls, or to "
        "'local' to price them at LOCAL_MODEL_RATE.",
        url,
        model,
        provider,
        recorded,
    )
    return True


def clear_caches() -> None:
    """Forget every cached look-up and every warning already logged (unknown models, inferred
    providers)."""
    _genai.clear_caches()
    providers.clear_caches()
    with _warned_lock:
        _warned.clear()
        _warned_inferred.clear()
