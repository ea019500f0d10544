"""What an LLM call cost: provider detection, usage normalization and pricing.

Everything here is a pure function of its arguments (plus process-local caches): no ORM (but
``pricing.cache``, not imported by the package, which reads the admin's rows), no Django settings. Callers pass the configured values in (``PROVIDER_BASE_URLS`` as
``base_url_map``, ``LOCAL_MODEL_RATE`` as ``local_rate``, the admin's overrides as
``overrides``).

Token convention used throughout the app (``normalize_usage`` converts a provider's raw report
to it):

* ``prompt_tokens`` INCLUDES ``cached_tokens`` (cache reads) and ``cache_write_tokens``;
* ``completion_tokens`` INCLUDES ``reasoning_tokens``;
* ``total_tokens`` = ``prompt_tokens`` + ``completion_tokens``.

Layout (arrows point one way: ``overrides`` -> ``usage`` -> ``providers``; ``lookup`` -> ``usage``,
``providers``; ``prices`` -> all four):

* :mod:`~ag2_logging.pricing.providers`: provider ids and :func:`detect_provider`;
* :mod:`~ag2_logging.pricing.usage`: the one table of providers' usage reports
  (:data:`USAGE_REPORTS`, read by :func:`usage_from_report` for both AG2 generations) and
  :func:`normalize_usage`;
* :mod:`~ag2_logging.pricing.lookup`: genai-prices look-ups compiled into price plans;
* :mod:`~ag2_logging.pricing.overrides`: the rules of the admin's price overrides;
* :mod:`~ag2_logging.pricing.cache`: the admin's ``ModelPrice`` rows as overrides, cached;
* :mod:`~ag2_logging.pricing.prices`: :func:`price_call`, the cost-zero rules, and
  :func:`detect_provider` (``providers.detect_provider`` plus genai-prices' model names for a
  local endpoint ``PROVIDER_BASE_URLS`` does not map: ``<provider>@local``, priced ``inferred``).

Importing the package reads no genai-prices data: that happens on the first price look-up.
"""

from __future__ import annotations

from ag2_logging.pricing import overrides
from ag2_logging.pricing.lookup import canonical_model
from ag2_logging.pricing.overrides import PriceOverride, select_override
from ag2_logging.pricing.prices import (
    PriceResult,
    PriceStatus,
    call_cost,
    clear_caches,
    costs_nothing,
    detect_provider,
    fixed_plan_cost,
    price_call,
    warn_unknown_once,
)
from ag2_logging.pricing.providers import (
    GENAI_PRICES_PROVIDER_IDS,
    LOCAL_ENDPOINT_SUFFIX,
    LOCAL_PROVIDERS,
    PROVIDER_IDS,
    genai_prices_provider_id,
)
from ag2_logging.pricing.usage import (
    USAGE_REPORTS,
    NormalizedUsage,
    UsageReport,
    normalize_usage,
    usage_from_report,
)

__all__ = [
    "GENAI_PRICES_PROVIDER_IDS",
    "LOCAL_ENDPOINT_SUFFIX",
    "LOCAL_PROVIDERS",
    "PROVIDER_IDS",
    "USAGE_REPORTS",
    "NormalizedUsage",
    "PriceOverride",
    "PriceResult",
    "PriceStatus",
    "UsageReport",
    "call_cost",
    "canonical_model",
    "clear_caches",
    "costs_nothing",
    "detect_provider",
    "fixed_plan_cost",
    "genai_prices_provider_id",
    "normalize_usage",
    "overrides",
    "price_call",
    "select_override",
    "usage_from_report",
    "warn_unknown_once",
]
