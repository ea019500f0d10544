"""Ingest never gets stuck on one value: every case gives the same rows on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall
from ag2_logging.pipeline.ingest import JournalRefused, ingest_journal
from ag2_logging.pipeline.rows import CUT_MARKER
from tests.test_ingest import _call, _journal, _start

pytestmark = pytest.mark.django_db(transaction=True)


def _end(session_id: str, status: str = "completed", **totals: Any) -> dict[str, Any]:
    return {
        "type": "session_end",
        "id": session_id,
        "ts": "2026-03-01T10:05:00+00:00",
        "status": status,
        "error": "",
        "ended_at": "2026-03-01T10:05:00+00:00",
        "totals": {"dropped_events": 0, "redactions": {}, **totals},
    }


def _event(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": "agent_event",
        "id": str(uuid.uuid4()),
        "seq": seq,
        "ts": "2026-03-01T10:00:02+00:00",
        "agent_name": "a",
        "name": "received_message",
        **fields,
    }


def _tool(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": "tool_call",
        "id": str(uuid.uuid4()),
        "seq": seq,
        "ts": "2026-03-01T10:00:03+00:00",
        "name": "add",
        "arguments": {"a": 1},
        "result_summary": "2",
        **fields,
    }


def _write(path: Path, events: list[dict[str, Any]]) -> Path:
    """Like ``_journal``, with the standard library's encoder: it writes integers of any size."""
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _named(tmp_path: Path, session_id: str) -> Path:
    return tmp_path / f"{session_id}.jsonl"


def test_nul_characters_are_removed_from_text_and_json_and_counted(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    body = {"messages": [{"role": "user", "content": "hello\x00world"}], "k\x00ey": ["a\x00", 1]}
    _journal(
        path,
        [
            _start(sid, path),
            _call(sid, 1, error="bad\x00error", agent_name="ag\x00ent", request=body, response={"t": "\x00"}),
            _event(2, data={"message": "hi\x00there"}, name="n\x00ame"),
            _tool(3, result_summary="res\x00ult", arguments={"x\x00": "y\x00"}),
            _end(sid),
        ],
    )
    result = ingest_journal(path)
    assert result.bad_lines == [] and (result.llm_calls, result.agent_events, result.tool_calls) == (1, 1, 1)
    call = LLMCall.objects.get()
    assert (call.error, call.agent_name) == ("baderror", "agent")
    assert call.request == {"messages": [{"role": "user", "content": "helloworld"}], "key": ["a", 1]}
    assert call.response == {"t": ""}
    event = AgentEvent.objects.get()
    assert (event.data, event.name) == ({"message": "hithere"}, "name")
    tool = ToolCall.objects.get()
    assert (tool.result_summary, tool.arguments) == ("result", {"x": "y"})
    # error, agent_name, content, key, "a\x00", "\x00"; data, name; summary, key, value
    assert result.issues == {"nul_removed": 11}
    assert Session.objects.get().ingest_issues == {"nul_removed": 11}


def test_a_nul_in_the_session_ids_still_gives_a_session_row(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    start = _start(sid, path)
    start["session"].update(chat_id="chat\x00one", workflow_name="wf\x00", enterprise_id="\x00acme")
    _journal(path, [start, _call(sid, 1), _end(sid)])
    ingest_journal(path)
    session = Session.objects.get()
    assert (session.chat_id, session.workflow_name, session.enterprise_id) == ("chatone", "wf", "acme")
    assert session.call_count == 1 and session.ingest_issues == {"nul_removed": 3}


def test_ids_and_names_longer_than_their_column_are_cut_with_a_marker(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    start = _start(sid, path)
    start["session"].update(chat_id="c" * 300, workflow_name="w" * 256, enterprise_id="e" * 255)
    long_model = "m" * 1000
    _journal(
        path,
        [
            start,
            _call(sid, 1, model=long_model, invocation_id="i" * 65, status="x" * 17),
            _event(2, name="n" * 400),
            _end(sid),
        ],
    )
    result = ingest_journal(path)
    session = Session.objects.get()
    assert session.chat_id == "c" * (255 - len(CUT_MARKER)) + CUT_MARKER
    assert session.workflow_name == "w" * (255 - len(CUT_MARKER)) + CUT_MARKER
    assert session.enterprise_id == "e" * 255  # exactly the column: kept whole
    call = LLMCall.objects.get()
    assert len(call.model) == 255 and call.model.endswith(CUT_MARKER) and call.model.startswith("mmm")
    assert len(call.invocation_id) == 64 and call.invocation_id.endswith(CUT_MARKER)
    assert len(call.status) == 16
    assert len(AgentEvent.objects.get().name) == 255
    assert result.issues == {"id_cut": 6} == session.ingest_issues
    assert session.call_count == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt_tokens": 10**30},
        {"total_tokens": "1" + "0" * 30},
        {"completion_tokens": -(10**20)},
        {"seq": 2**31},
        {"seq": -1},
        {"retries": 10**12},
        {"cost": "1e30"},
        {"cost": "NaN"},
        {"ag2_cost": "-Infinity"},
        {"ag2_cost": 1e300},
        {"latency_ms": "inf"},
        {"latency_ms": "nan"},
        {"latency_ms": "1e400"},
    ],
    ids=lambda f: next(iter(f)) + "=" + str(next(iter(f.values())))[:12],
)
def test_an_out_of_range_number_makes_one_counted_bad_line(tmp_path: Path, fields: dict[str, Any]) -> None:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    _write(path, [_start(sid, path), _call(sid, 1), _call(sid, 2) | fields, _call(sid, 3), _end(sid)])
    result = ingest_journal(path)
    assert result.bad_lines == [3]
    assert result.issues == {"out_of_range": 1}
    assert sorted(LLMCall.objects.values_list("seq", flat=True)) == [1, 3]
    session = Session.objects.get()
    assert (session.call_count, session.prompt_tokens, session.bad_journal_lines) == (2, 20, 1)
    assert session.total_cost == Decimal("0.0001234567") * 2
    assert session.ingest_issues == {"out_of_range": 1} and session.status == "completed"


def test_out_of_range_durations_of_events_and_tools(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    _journal(
        path,
        [
            _start(sid, path),
            _event(1, duration_ms="Infinity"),
            _tool(2, duration_ms="nan"),
            _tool(3),
            _end(sid),
        ],
    )
    result = ingest_journal(path)
    assert result.bad_lines == [2, 3] and result.issues == {"out_of_range": 2}
    assert (AgentEvent.objects.count(), ToolCall.objects.count()) == (0, 1)


def test_bad_header_and_closing_values_do_not_block_the_journal(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    start = _start(sid, path)
    start["session"].update(pid=10**30, started_at="yesterday", parent_id="not-a-uuid")
    end = _end(sid, status="exploded", dropped_events=10**30)
    end["ended_at"] = "never"
    end["totals"]["redactions"] = ["not", "a", "dict"]
    _write(path, [start, _call(sid, 1), {"type": ["unhashable"]}, {"type": "llm_call", "id": 5}, end])
    result = ingest_journal(path)
    assert result.bad_lines == [3, 4] and result.llm_calls == 1
    session = Session.objects.get()
    assert (session.pid, session.parent_id, session.status, session.dropped_events) == (
        None,
        None,
        "completed",
        0,
    )
    assert session.ended_at is not None and session.call_count == 1
    assert session.ingest_issues == {"bad_value": 6, "out_of_range": 1}


def test_a_parent_without_a_row_is_dropped_and_counted(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    start = _start(sid, path)
    start["session"]["parent_id"] = str(uuid.uuid4())
    _journal(path, [start, _call(sid, 1), _end(sid)])
    assert ingest_journal(path).issues == {"parent_missing": 1}
    assert Session.objects.get().parent_id is None


# -- where the header is ---------------------------------------------------------------------------


def test_a_byte_order_mark_at_the_start_is_removed_and_counted(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    _journal(path, [_start(sid, path), _call(sid, 1), _end(sid)])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = ingest_journal(path)
    assert result.session_id == uuid.UUID(sid) and result.bad_lines == []
    assert result.issues == {"bom_removed": 1}
    session = Session.objects.get()
    assert (session.chat_id, session.call_count, session.status) == ("c-values", 1, "completed")
    assert LLMCall.objects.get().session_id == uuid.UUID(sid)


def test_a_torn_first_line_and_a_header_out_of_order_are_found_and_counted(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    torn = _named(tmp_path, sid)
    _journal(torn, [_start(sid, torn), _call(sid, 1), _end(sid)])
    torn.write_bytes(b'{"type": "llm_call", "id": "tor\n' + torn.read_bytes())
    result = ingest_journal(torn)
    assert result.bad_lines == [1] and result.issues == {"header_not_first": 1}
    assert Session.objects.get(pk=sid).call_count == 1

    other = str(uuid.uuid4())
    late = _named(tmp_path, other)
    _journal(late, [_call(other, 1), _call(other, 2), _start(other, late), _end(other)])
    result = ingest_journal(late)
    assert result.bad_lines == [] and result.issues == {"header_not_first": 1}
    session = Session.objects.get(pk=other)
    assert (session.chat_id, session.call_count) == ("c-values", 2)
    assert session.ingest_issues == {"header_not_first": 1}


def test_a_journal_without_header_is_its_file_names_session(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    _journal(path, [_call(sid, 2), _call(sid, 3), _end(sid)])
    result = ingest_journal(path)
    assert result.session_id == uuid.UUID(sid) and result.issues == {"header_missing": 1}
    session = Session.objects.get()
    assert session.call_count == 2 and session.status == "completed"
    assert session.started_at.isoformat() == "2026-03-01T10:00:01.250000+00:00"  # its first event


# -- refused journals --------------------------------------------------------------------------------


def _completed_session(tmp_path: Path) -> tuple[str, Path]:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    _journal(path, [_start(sid, path), _call(sid, 1), _end(sid)])
    ingest_journal(path)
    return sid, path


def _snapshot() -> list[Any]:
    return [
        list(Session.objects.values_list("id", "status", "call_count", "total_cost", "ingest_issues")),
        sorted(LLMCall.objects.values_list("id", "session_id")),
    ]


def test_a_journal_naming_another_session_than_its_file_is_refused(tmp_path: Path) -> None:
    """The attack: a file <new-uuid>.jsonl whose header names an existing completed session, with
    one call costing 999 and status failed; ingest (recovery) must not touch that session."""
    sid, _ = _completed_session(tmp_path)
    before = _snapshot()
    forged = _named(tmp_path, str(uuid.uuid4()))
    _journal(forged, [_start(sid, forged), _call(sid, 2, cost="999"), _end(sid, "failed")])
    with pytest.raises(JournalRefused, match="file name"):
        ingest_journal(forged)
    assert _snapshot() == before
    assert Session.objects.get().total_cost == Decimal("0.0001234567")


def test_a_journal_naming_another_session_than_expected_is_refused(tmp_path: Path) -> None:
    sid, _ = _completed_session(tmp_path)
    before = _snapshot()
    copy = tmp_path / "download-1234.jsonl"  # a downloaded copy: its name says nothing
    _journal(copy, [_start(sid, copy), _call(sid, 2, cost="999"), _end(sid, "failed")])
    with pytest.raises(JournalRefused, match="expected"):
        ingest_journal(copy, expected_session_id=uuid.uuid4())
    assert _snapshot() == before


def test_another_file_for_a_recorded_session_is_refused_unless_expected(tmp_path: Path) -> None:
    sid, path = _completed_session(tmp_path)
    before = _snapshot()
    copy = tmp_path / "elsewhere" / path.name  # same name, another directory
    copy.parent.mkdir()
    _journal(copy, [_start(sid, path), _call(sid, 2, cost="999"), _end(sid, "failed")])
    with pytest.raises(JournalRefused, match="recorded in"):
        ingest_journal(copy)
    assert _snapshot() == before
    # The pipeline ingesting a downloaded copy of the published journal names the session.
    result = ingest_journal(copy, expected_session_id=uuid.UUID(sid))
    assert result.llm_calls == 1
    assert Session.objects.get().call_count == 2


def test_a_header_whose_session_id_is_not_a_uuid_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    start = _start(str(uuid.uuid4()), path)
    start["session"]["session_id"] = "not-a-uuid"
    _journal(path, [start, _call(None, 1)])
    with pytest.raises(JournalRefused, match="no valid session id"):
        ingest_journal(path)
    assert (Session.objects.count(), LLMCall.objects.count()) == (0, 0)


# -- collisions and idempotence --------------------------------------------------------------------


def test_an_event_id_of_another_session_is_counted_not_silently_dropped(tmp_path: Path) -> None:
    first = str(uuid.uuid4())
    first_path = _named(tmp_path, first)
    taken = _call(first, 1)
    _journal(first_path, [_start(first, first_path), taken, _end(first)])
    ingest_journal(first_path)

    second = str(uuid.uuid4())
    path = _named(tmp_path, second)
    _journal(path, [_start(second, path), {**taken, "seq": 1}, _call(second, 2), _end(second)])
    result = ingest_journal(path)
    assert result.issues == {"id_collision": 1}
    session = Session.objects.get(pk=second)
    assert session.call_count == 1 and session.ingest_issues == {"id_collision": 1}
    assert LLMCall.objects.get(pk=taken["id"]).session_id == uuid.UUID(first)  # never moved
    again = ingest_journal(path)  # recomputed, not added
    assert again.issues == {"id_collision": 1}
    session.refresh_from_db()
    assert session.ingest_issues == {"id_collision": 1} and session.call_count == 1


def test_issues_are_recomputed_at_each_ingest_and_other_kinds_kept(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    _journal(
        path, [_start(sid, path), _call(sid, 1, error="a\x00b"), _call(sid, 2) | {"seq": 2**40}, _end(sid)]
    )
    ingest_journal(path)
    Session.objects.filter(pk=sid).update(ingest_issues={"nul_removed": 5, "pipeline_note": 2})
    result = ingest_journal(path)
    assert result.issues == {"nul_removed": 1, "out_of_range": 1}
    assert Session.objects.get().ingest_issues == {"nul_removed": 1, "out_of_range": 1, "pipeline_note": 2}


def test_the_raw_line_check_finds_every_escaped_nul(tmp_path: Path) -> None:
    """A NUL is written as \\u0000 by every JSON encoder; a literal backslash-u is not a NUL."""
    sid = str(uuid.uuid4())
    path = _named(tmp_path, sid)
    lines = [
        orjson.dumps(_start(sid, path)),
        orjson.dumps(_call(sid, 1, error="literal \\u0000 text")),
        b'{"type":"llm_call","id":"%s","seq":2,"error":"esc\\u0000aped","model":"m\\u0000"}'
        % str(uuid.uuid4()).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = ingest_journal(path)
    assert result.issues == {"nul_removed": 2}
    assert sorted(LLMCall.objects.values_list("error", flat=True)) == ["escaped", "literal \\u0000 text"]
