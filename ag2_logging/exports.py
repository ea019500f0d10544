"""Deprecated alias of the CSV writer in :mod:`ag2_logging.reports.tables` (removed in the next release)."""

import warnings

from ag2_logging.reports.tables import FORMULA_PREFIXES, csv_lines, csv_response, safe_cell

__all__ = ["FORMULA_PREFIXES", "csv_lines", "csv_response", "safe_cell"]
warnings.warn("ag2_logging.exports moved to ag2_logging.reports.tables", DeprecationWarning, stacklevel=2)
