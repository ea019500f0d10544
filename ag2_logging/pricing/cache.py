"""The admin's ``ModelPrice`` rows as ``PriceOverride`` rules, cached for the hot path.

The recorder never touches the ORM, so the rows are loaded off the hot path (on the app's
database thread when a session opens, at most every ``REFRESH_SECONDS``, and at once after a
``ModelPrice`` is saved or deleted) into an immutable tuple the recorder reads. The rules
themselves (matching, costs) are in ``pricing.overrides``, which reads no rows.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ag2_logging.pricing.overrides import PriceOverride

logger = logging.getLogger("ag2_logging.pricing")

REFRESH_SECONDS = 60.0

_lock = threading.Lock()
_cache: tuple[PriceOverride, ...] = ()
_loaded_at: float | None = None


def to_override(row: Any) -> PriceOverride:
    return PriceOverride(
        provider=row.provider or "",
        model_pattern=row.model,
        input=row.input_per_mtok,
        cached_input=row.cached_input_per_mtok,
        cache_write=row.cache_write_per_mtok,
        output=row.output_per_mtok,
        reasoning=row.reasoning_per_mtok,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
    )


def read() -> tuple[PriceOverride, ...]:
    """Every ``ModelPrice`` row as an override, read now (sync ORM), without touching the cache."""
    from ag2_logging.models import ModelPrice

    return tuple(to_override(row) for row in ModelPrice.objects.all())


def load() -> tuple[PriceOverride, ...]:
    """Read every ModelPrice row now (sync ORM: not on an event loop) and cache them."""
    global _cache, _loaded_at
    overrides = read()
    with _lock:
        _cache = overrides
        _loaded_at = time.monotonic()
    return overrides


def current() -> tuple[PriceOverride, ...]:
    """The cached overrides (what the recorder prices with)."""
    return _cache


def is_stale() -> bool:
    loaded = _loaded_at
    return loaded is None or time.monotonic() - loaded > REFRESH_SECONDS


def refresh_if_stale() -> None:
    if is_stale():
        try:
            load()
        except Exception:
            logger.exception("ag2_logging could not load price overrides; keeping the previous ones")


def invalidate(**kwargs: Any) -> None:
    global _loaded_at
    _loaded_at = None


def connect() -> None:
    from django.db.models.signals import post_delete, post_save

    from ag2_logging.models import ModelPrice

    post_save.connect(invalidate, sender=ModelPrice, dispatch_uid="ag2_logging.prices.saved")
    post_delete.connect(invalidate, sender=ModelPrice, dispatch_uid="ag2_logging.prices.deleted")
