"""django-ag2-logging: see what every AG2 agent session did and what it cost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ag2_logging.budgets.errors import BudgetExceeded
    from ag2_logging.capture.scope import (
        AG2RuntimeLogger,
        ag2_logging_session,
        current_session_id,
        flush,
        get_ag2_runtime_logger,
        is_enabled,
        session_totals,
    )
    from ag2_logging.decorators import ag2_logged
    from ag2_logging.pipeline.legacy import summarize_autogen_runtime_file, summarize_runtime_log

__all__ = [
    "AG2RuntimeLogger",
    "BudgetExceeded",
    "ag2_logged",
    "ag2_logging_session",
    "current_session_id",
    "flush",
    "get_ag2_runtime_logger",
    "is_enabled",
    "session_totals",
    "summarize_autogen_runtime_file",
    "summarize_runtime_log",
]


def _version() -> str:
    # Looked up on first use: importlib.metadata costs every process start ~15 ms otherwise.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("django-ag2-logging")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0.0.0"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    # Lazy so that importing the package (settings files, apps loading) imports no models.
    if name in {"summarize_runtime_log", "summarize_autogen_runtime_file"}:
        from ag2_logging.pipeline import legacy as legacy_import

        return getattr(legacy_import, name)
    if name == "BudgetExceeded":
        from ag2_logging.budgets.errors import BudgetExceeded

        return BudgetExceeded
    if name == "ag2_logged":
        from ag2_logging.decorators import ag2_logged

        return ag2_logged
    if name in __all__:
        from ag2_logging.capture import scope as sessions

        return getattr(sessions, name)
    raise AttributeError(name)
