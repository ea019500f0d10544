"""Scenarios both AG2 generations run against the fake LLM server, with the totals they must record.

Imports neither generation: tests/test_classic.py runs them with classic ``autogen`` agents,
tests/ag2/ with ``ag2`` 1.x agents, and both assert the same ``Session`` totals.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import expected_cost

MODEL = "gpt-4o-mini"

#: Fake-server usage of every LLM call of the tool round trip (prompt includes cached,
#: completion includes reasoning: the OpenAI convention).
TOOL_ROUND_TRIP_USAGE = {"prompt": 200, "completion": 50, "cached": 80, "reasoning": 20}

#: The user's message: the model calls ``add(2, 3)``, then answers the tool's result.
TOOL_ROUND_TRIP_MESSAGE = (
    '[[tool:add {"a": 2, "b": 3}]] [[usage:'
    + ",".join(f"{key}={value}" for key, value in TOOL_ROUND_TRIP_USAGE.items())
    + "]] [[marker:round-trip]]"
)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def tool_round_trip_totals() -> dict[str, Any]:
    """Two LLM calls (the tool call, then the answer to the tool's result) and one tool call."""
    u = TOOL_ROUND_TRIP_USAGE
    per_call = expected_cost(MODEL, u["prompt"], u["completion"], u["cached"], u["reasoning"])
    return {
        "status": "completed",
        "call_count": 2,
        "error_count": 0,
        "retry_count": 0,
        "unpriced_calls": 0,
        "prompt_tokens": 2 * u["prompt"],
        "completion_tokens": 2 * u["completion"],
        "cached_tokens": 2 * u["cached"],
        "reasoning_tokens": 2 * u["reasoning"],
        "total_tokens": 2 * (u["prompt"] + u["completion"]),
        "total_cost": 2 * per_call,
    }


def session_totals(session: Any) -> dict[str, Any]:
    """The fields of a ``Session`` row that ``tool_round_trip_totals()`` names."""
    return {key: getattr(session, key) for key in tool_round_trip_totals()}


def tool_rows(session: Any) -> list[tuple[str, Any, str, str]]:
    """(name, arguments, result summary, error) of the session's tool calls."""
    return [
        (row.name, row.arguments, row.result_summary, row.error) for row in session.tool_calls.order_by("seq")
    ]


TOOL_ROUND_TRIP_TOOL_ROWS = [("add", {"a": 2, "b": 3}, "5", "")]
