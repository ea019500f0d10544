"""AG2 integrations, one module per generation; neither generation is required.

``classic`` (the ``autogen`` package, 0.x) is attached automatically through AG2's runtime
logging. ``ag2`` (1.x) is attached per agent with a middleware (see its module).
"""

from __future__ import annotations

import importlib.util
from functools import cache


@cache
def classic_available() -> bool:
    return (
        importlib.util.find_spec("autogen") is not None
        and importlib.util.find_spec("autogen.runtime_logging") is not None
    )


@cache
def ag2_available() -> bool:
    return importlib.util.find_spec("ag2") is not None


def installed_generations() -> list[str]:
    return [name for name, ok in (("classic", classic_available()), ("ag2", ag2_available())) if ok]


def install_integrations() -> None:
    """Attach to every AG2 generation that can be attached process-wide (idempotent, cheap)."""
    if classic_available():
        from ag2_logging.integrations import classic

        if not classic.is_installed():
            classic.install()
    if ag2_available():
        # ag2 1.x: the hook on the OpenAI SDK's request boundary, so a call made inside a session
        # by an agent without ``logging_middleware()`` is recorded too (idempotent).
        from ag2_logging.integrations import ag2

        ag2.install()
