"""Deprecated alias of :mod:`ag2_logging.reports.charts` (removed in the next release)."""

import warnings

from ag2_logging.reports.charts import *  # noqa: F403

warnings.warn("ag2_logging.charts moved to ag2_logging.reports.charts", DeprecationWarning, stacklevel=2)
