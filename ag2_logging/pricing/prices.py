"""What one LLM call cost: genai-prices look-ups, the admin's overrides, the local rate, and
the calls that cost nothing.

The cost-zero rules live here (:func:`costs_nothing`, and ``error`` / ``is_cached`` of
:func:`price_call`): a call that failed and a call AG2 answered from its own cache cost 0 and
count as priced. Otherwise, in order: the most specific admin override, the local rate for
local providers, genai-prices' bundled data; with none of these the cost is unknown (None,
never 0).
Usage arrives in the app's convention (:mod:`ag2_logging.pricing.usage`); genai-prices' data is
read in :mod:`ag2_logging.pricing.lookup`, on the first call that needs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal

from ag2_logging.pricing import lookup as _genai
from ag2_logging.pricing import providers
from ag2_logging.pricing.overrides import PriceOverride, override_costs, select_override
from ag2_logging.pricing.usage import NormalizedUsage

__all__ = [
    "PriceResult",
    "PriceStatus",
    "clear_caches",
    "costs_nothing",
    "price_call",
    "warn_unknown_once",
]

_MILLION: Final = Decimal(1_000_000)
_ZERO: Final = Decimal(0)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

PriceStatus = Literal["priced", "override", "local", "unknown"]


@dataclass(frozen=True, slots=True)
class PriceResult:
    """The price of one call.

    ``status``: ``priced`` (genai-prices, or a call that costs nothing), ``override`` (an admin
    price), ``local`` (the local rate) or ``unknown`` (no price: ``cost`` is None, never 0).
    ``model_ref`` is the genai-prices model id that was matched (``priced`` by genai-prices
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


def _priced(entry: _genai.Entry, provider: str, usage: NormalizedUsage, at: datetime | None) -> PriceResult:
    """genai-prices' price of ``usage`` for a model it knows: with the compiled plan, or by
    genai-prices itself when no plan was trusted; unknown when either fails."""
    try:
        total, input_cost, output_cost = _genai.entry_price(entry, usage, at)
    except Exception:
        return _unknown(provider)
    return PriceResult(
        cost=total,
        status="priced",
        input_cost=input_cost,
        output_cost=output_cost,
        model_ref=entry.model_ref,
        provider=provider,
    )


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
) -> PriceResult:
    """What one call cost, in USD.

    0. A failed call (``error``) or one served from AG2's cache (``is_cached``) -> 0,
       ``priced`` (:func:`costs_nothing`; both default to off).
    1. The most specific applicable override (``select_override``) -> ``override``.
    2. ``ollama`` / ``local`` -> ``total_tokens * local_rate / 1e6``, ``local``.
    3. genai-prices' bundled data, the model name tried as given then through
       ``canonical_model``'s fallbacks -> ``priced``.
    4. Otherwise (unknown provider or model, or any failure) -> cost None, ``unknown``.

    ``at`` (default: now) selects overrides and genai-prices' time-dependent prices (DeepSeek's
    off-peak hours, announced price changes).
    """
    if costs_nothing(error=error, is_cached=is_cached):
        return _free(provider)
    if overrides:
        override = select_override(overrides, provider, model, at or datetime.now(UTC))
        if override is not None:
            return _price_override(override, provider, usage)
    entry = _genai.lookup(provider, model)
    if isinstance(entry, _genai.Entry):
        return _priced(entry, provider, usage, at)
    return _local(provider, usage, local_rate) if entry == _genai.LOCAL else _unknown(provider)


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


def clear_caches() -> None:
    """Forget every cached look-up and every "unknown model" warning already logged."""
    _genai.clear_caches()
    providers.clear_caches()
    with _warned_lock:
        _warned.clear()
