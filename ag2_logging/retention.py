"""Deprecated: moved to :mod:`ag2_logging.pipeline.retention` (this alias goes in the next release)."""

import sys
import warnings

from ag2_logging.pipeline import retention as _moved

warnings.warn(
    "ag2_logging.retention moved to ag2_logging.pipeline.retention; this alias goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
