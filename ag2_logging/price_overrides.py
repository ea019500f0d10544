"""Deprecated alias of :mod:`ag2_logging.pricing.overrides` (removed in the next release)."""

import warnings

from ag2_logging.pricing.overrides import *  # noqa: F403

warnings.warn(
    "ag2_logging.price_overrides moved to ag2_logging.pricing.overrides", DeprecationWarning, stacklevel=2
)
