"""Logging off: what ``ag2_logging_session`` and ``@ag2_logged`` cost when ``ENABLED`` is off.

Each figure is the median time of a decorated (or wrapped) call minus that of the same undecorated
call, measured side by side; the target is under 2 microseconds per call.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from typing import Any

from bench._common import interleaved, row, setup_django, us

TARGET_S = 2e-6


def _work(x: int) -> int:
    return x + 1


async def _awork(x: int) -> int:
    return x + 1


def run(quick: bool = False) -> list[dict[str, Any]]:
    setup_django()
    from django.conf import settings
    from django.test import override_settings

    from ag2_logging import ag2_logging_session
    from ag2_logging.conf import conf

    has_decorator = importlib.util.find_spec("ag2_logging.decorators") is not None

    def sync_case(fn: Callable[[int], int]) -> Callable[[int], None]:
        def calls(n: int) -> None:
            for i in range(n):
                fn(i)

        return calls

    def session_case(n: int) -> None:
        for i in range(n):
            with ag2_logging_session("bench-chat", "bench", "acme"):
                _work(i)

    def async_case(fn: Callable[[int], Any]) -> Callable[[int], None]:
        async def drive(n: int) -> None:
            for i in range(n):
                await fn(i)

        return lambda n: loop.run_until_complete(drive(n))

    async def _async_session_body(i: int) -> int:
        async with ag2_logging_session("bench-chat", "bench", "acme"):
            return await _awork(i)

    cases: dict[str, Callable[[int], None]] = {
        "plain": sync_case(_work),
        "session": session_case,
        "aplain": async_case(_awork),
        "asession": async_case(_async_session_body),
    }
    if has_decorator:
        from ag2_logging.decorators import ag2_logged

        cases["logged"] = sync_case(ag2_logged(_work))
        cases["logged_args"] = sync_case(ag2_logged(workflow_name="wf", enterprise_id="acme")(_work))
        cases["alogged"] = async_case(ag2_logged(_awork))

    loop = asyncio.new_event_loop()
    try:
        with override_settings(AG2_LOGGING={**settings.AG2_LOGGING, "ENABLED": False}):
            assert not conf.enabled
            medians = interleaved(cases, rounds=10 if quick else 40, block_seconds=0.01 if quick else 0.03)
    finally:
        loop.close()

    def overhead(name: str, base: str, figure: str) -> dict[str, Any]:
        extra = medians[name] - medians[base]
        return row(
            figure,
            f"+{us(extra)}",
            f"{us(medians[base])} undecorated",
            medians[name] / medians[base],
            "< +2 µs per call",
            extra < TARGET_S,
        )

    rows = [
        overhead("session", "plain", "Logging off: with ag2_logging_session(...)"),
        overhead("asession", "aplain", "Logging off: async with ag2_logging_session(...)"),
    ]
    if has_decorator:
        rows += [
            overhead("logged", "plain", "Logging off: @ag2_logged"),
            overhead("logged_args", "plain", "Logging off: @ag2_logged(workflow_name=..., ...)"),
            overhead("alogged", "aplain", "Logging off: @ag2_logged on an async function"),
        ]
    else:
        rows.append(row("Logging off: @ag2_logged", "n/a", "", None, "decorators module not present", None))
    return rows
