"""Deprecated: moved to :mod:`ag2_logging.pipeline.ingest` (this alias goes in the next release)."""

import sys
import warnings

from ag2_logging.pipeline import ingest as _moved

warnings.warn(
    "ag2_logging.ingest moved to ag2_logging.pipeline.ingest; this alias goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
