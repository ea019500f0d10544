"""Deprecated alias of :mod:`ag2_logging.pricing.cache` (the cached rows) and
:mod:`ag2_logging.pricing.overrides` (the rules); removed in the next release."""

import warnings

from ag2_logging.pricing.cache import *  # noqa: F403
from ag2_logging.pricing.overrides import *  # noqa: F403

warnings.warn(
    "ag2_logging.price_overrides moved to ag2_logging.pricing.cache", DeprecationWarning, stacklevel=2
)
