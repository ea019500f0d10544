"""The journal schema (ag2_logging.events) is the one the recorder writes and the rows keep."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, get_type_hints

import orjson
import pytest

from ag2_logging import ag2_logging_session, events
from ag2_logging.events import Totals
from ag2_logging.models import DailyRollup, Session

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMAS: dict[str, Any] = {
    events.SESSION_START: events.SessionStartEvent,
    events.LLM_CALL: events.LLMCallEvent,
    events.TOOL_CALL: events.ToolCallEvent,
    events.AGENT_EVENT: events.AgentEventEvent,
    events.SESSION_END: events.SessionEndEvent,
}


def test_counters_name_the_columns_that_keep_them() -> None:
    session_fields = {f.name for f in Session._meta.get_fields()}
    rollup_fields = {f.name for f in DailyRollup._meta.get_fields()}
    assert set(events.SESSION_COUNTERS) <= session_fields
    assert set(events.ROLLUP_COUNTERS) <= rollup_fields
    live = {f.name for f in dataclasses.fields(Totals)}
    assert live == {*events.SESSION_COUNTERS, *events.PROCESS_COUNTERS, "redactions"}
    assert set(get_type_hints(events.TotalsRecord)) == live


def test_every_line_the_recorder_writes_follows_the_schema() -> None:
    with ag2_logging_session("c-schema", "wf", "acme") as recorder:
        assert recorder is not None
        recorder.record_llm_call(
            agent_name="assistant", provider="openai", model="gpt-4o-mini", prompt_tokens=10,
            completion_tokens=2, request={"messages": [{"role": "user", "content": "hi"}]},
            response={"id": "r1"},
        )  # fmt: skip
        recorder.record_tool_call(agent_name="user", name="add", arguments={"a": 1}, result=2)
        recorder.record_agent_event(agent_name="assistant", name="received_message", data={"n": 1})
        path = Path(recorder.journal_path)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["type"] for line in lines] == [
        events.SESSION_START,
        events.LLM_CALL,
        events.TOOL_CALL,
        events.AGENT_EVENT,
        events.SESSION_END,
    ]
    for line in lines:
        allowed = set(get_type_hints(SCHEMAS[line["type"]]))
        assert set(line) <= allowed, (line["type"], set(line) - allowed)
        assert {"type", "id", "seq", "ts"} <= set(line)
    assert set(lines[0]["session"]) == set(get_type_hints(events.SessionHeader))
    assert set(lines[-1]["totals"]) <= set(get_type_hints(events.TotalsRecord))
