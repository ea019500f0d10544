"""Deprecated: the admin's report, timeline and export views moved to the ``ag2_logging.admin``
package (:mod:`~ag2_logging.admin.views`, :mod:`~ag2_logging.admin.timeline`,
:mod:`~ag2_logging.admin.exports`). This alias goes in the next release."""

from __future__ import annotations

import warnings

from ag2_logging.admin.exports import ExportViewMixin, Wrapper, wants_csv
from ag2_logging.admin.timeline import TimelineViewMixin
from ag2_logging.admin.views import ReportViewsMixin, cost_text

warnings.warn(
    "ag2_logging.admin_views is deprecated; import from ag2_logging.admin "
    "(ag2_logging.admin.views, .timeline, .exports) instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["ExportViewMixin", "ReportViewsMixin", "TimelineViewMixin", "Wrapper", "cost_text", "wants_csv"]
