"""Admin price overrides: the rule that picks one and what it charges (no rows read here).

A :class:`PriceOverride` is an admin-set price per million tokens for the models matching a
pattern, over a period; :func:`select_override` picks the most specific that applies and
:func:`override_costs` prices a call with it. The ``ModelPrice`` rows become overrides in
:mod:`ag2_logging.pricing.cache`.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from ag2_logging.pricing.providers import normalize_provider
from ag2_logging.pricing.usage import NormalizedUsage

__all__ = ["PriceOverride", "override_costs", "select_override"]

logger = logging.getLogger("ag2_logging.pricing")

_MILLION: Final = Decimal(1_000_000)

# --------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------


def _utc_date(at: datetime) -> date:
    # Aware timestamps are compared in UTC, naive ones are taken as UTC (as genai-prices does).
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.date()


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceOverride:
    """An admin-set price, per million tokens, for models matching ``model_pattern``.

    ``provider`` '' or '*' matches any provider. ``model_pattern`` is an exact model name or an
    fnmatch pattern (``*``, ``?``, ``[...]``), both case-insensitive, compared with the model name
    as logged. ``cached_input`` and ``cache_write`` default to ``input``, ``reasoning`` to
    ``output``. The override applies from ``effective_from`` (inclusive) to ``effective_to``
    (exclusive), compared with the call's UTC date; None leaves that side open.
    """

    provider: str = ""
    model_pattern: str
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    effective_from: date | None = None
    effective_to: date | None = None

    @property
    def is_pattern(self) -> bool:
        return any(char in self.model_pattern for char in "*?[")

    @property
    def any_provider(self) -> bool:
        return self.provider.strip() in ("", "*")

    def matches(self, provider: str, model: str, at: datetime) -> bool:
        if not self.any_provider and normalize_provider(self.provider) != normalize_provider(provider):
            return False
        pattern = self.model_pattern.strip().lower()
        name = model.strip().lower()
        if self.is_pattern:
            if not fnmatch.fnmatchcase(name, pattern):
                return False
        elif name != pattern:
            return False
        day = _utc_date(at)
        if self.effective_from is not None and day < self.effective_from:
            return False
        return self.effective_to is None or day < self.effective_to

    def specificity(self) -> tuple[bool, date, bool]:
        """Sort key: exact model beats pattern, then latest ``effective_from``, then a named provider."""
        return (not self.is_pattern, self.effective_from or date.min, not self.any_provider)


def select_override(
    overrides: Sequence[PriceOverride], provider: str, model: str, at: datetime
) -> PriceOverride | None:
    """The most specific override that applies (see ``PriceOverride.specificity``).

    On a tie the first one in ``overrides`` wins.
    """
    best: PriceOverride | None = None
    best_key: tuple[bool, date, bool] | None = None
    for override in overrides:
        if not override.matches(provider, model, at):
            continue
        key = override.specificity()
        if best_key is None or key > best_key:
            best, best_key = override, key
    return best


def override_costs(override: PriceOverride, usage: NormalizedUsage) -> tuple[Decimal, Decimal]:
    """(input cost, output cost) of ``usage`` at ``override``'s rates, in USD."""
    uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    plain_output = usage.completion_tokens - usage.reasoning_tokens
    cached_rate = override.input if override.cached_input is None else override.cached_input
    write_rate = override.input if override.cache_write is None else override.cache_write
    reasoning_rate = override.output if override.reasoning is None else override.reasoning
    input_cost = (
        Decimal(uncached) * override.input
        + Decimal(usage.cached_tokens) * cached_rate
        + Decimal(usage.cache_write_tokens) * write_rate
    ) / _MILLION
    output_cost = (
        Decimal(plain_output) * override.output + Decimal(usage.reasoning_tokens) * reasoning_rate
    ) / _MILLION
    return input_cost, output_cost
