"""The recorder's journal lines: bodies redacted and cut exactly as before the fast path, ids, seq."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from ag2_logging import signals
from ag2_logging.capture.journal import read_journal
from ag2_logging.capture.recorder import SessionRecorder
from ag2_logging.conf import conf
from ag2_logging.serialize import new_id, truncate_strings

SECRET = "sk-proj-Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdFgHjK"


@pytest.fixture
def recorder(settings: Any, tmp_path: Path) -> SessionRecorder:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "MAX_BODY_CHARS": 50}
    conf.reload()
    return SessionRecorder(settings=conf.resolved, chat_id="c-recorder", workflow_name="wf")


def record(recorder: SessionRecorder, request: Any, response: Any = None) -> dict[str, Any]:
    recorder.record_llm_call(
        agent_name="assistant",
        provider="openai",
        model="gpt-4o-mini",
        prompt_tokens=10,
        completion_tokens=5,
        request=request,
        response=response,
    )
    recorder.finish("completed")
    calls = [line.event for line in read_journal(recorder.journal_path) if line.event]
    return next(e for e in calls if e["type"] == "llm_call")


def test_a_clean_short_body_is_written_as_it_was_given(recorder: SessionRecorder) -> None:
    request = {"messages": [{"role": "user", "content": 'tab\there "quoted" \\ é ✓'}], "n": 1.5, "k": None}
    event = record(recorder, request, {"id": "r1", "choices": []})
    assert event["request"] == request
    assert event["response"] == {"id": "r1", "choices": []}
    assert recorder.totals.redactions == {}


def test_long_strings_are_cut_with_a_marker_and_short_ones_kept(recorder: SessionRecorder) -> None:
    event = record(recorder, {"messages": [{"content": "x" * 80}, {"content": "short"}]})
    assert event["request"] == {
        "messages": [{"content": "x" * 50 + "...[TRUNCATED:30 chars]"}, {"content": "short"}]
    }


def test_a_long_clean_body_with_no_long_string_is_kept_whole(recorder: SessionRecorder) -> None:
    request = {"messages": [{"content": f"message {i}"} for i in range(20)]}
    assert len(orjson.dumps(request)) > 50
    assert record(recorder, request)["request"] == request


def test_secrets_are_redacted_and_counted_before_the_line_is_written(recorder: SessionRecorder) -> None:
    event = record(recorder, {"api_key": SECRET, "messages": [{"content": f"use {SECRET} now"}]})
    text = recorder.journal_path.read_text()
    assert SECRET not in text
    assert event["request"]["api_key"].startswith("[REDACTED:")
    assert "[REDACTED:" in event["request"]["messages"][0]["content"]
    assert recorder.totals.redactions


def test_unserializable_parts_become_markers(recorder: SessionRecorder) -> None:
    event = record(recorder, {"lock": threading.Lock(), "ok": 1})
    assert event["request"] == {"lock": "<unserializable: lock>", "ok": 1}


def test_lines_are_numbered_in_file_order_with_unique_uuid4_ids(recorder: SessionRecorder) -> None:
    for _ in range(3):
        recorder.record_agent_event(agent_name="a", name="tick")
    record(recorder, {"messages": []})
    events = [line.event for line in read_journal(recorder.journal_path) if line.event]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    ids = [e["id"] for e in events if e["type"] != "session_end"]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids[1:])


def test_signal_receivers_get_plain_bodies(recorder: SessionRecorder) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, call: dict[str, Any], **kwargs: Any) -> None:
        seen.append(call)

    signals.llm_call_recorded.connect(receiver)
    try:
        record(recorder, {"messages": [{"content": "hi"}]}, {"id": "r"})
    finally:
        signals.llm_call_recorded.disconnect(receiver)
    assert seen[0]["request"] == {"messages": [{"content": "hi"}]}
    assert seen[0]["response"] == {"id": "r"}


def test_truncate_strings_copies_only_what_it_cuts() -> None:
    value = {"a": ["short", {"b": "long" * 5}], "c": 1}
    assert truncate_strings(value, 100) is value
    cut = truncate_strings(value, 4)
    assert cut == {
        "a": ["short"[:4] + "...[TRUNCATED:1 chars]", {"b": "long...[TRUNCATED:16 chars]"}],
        "c": 1,
    }
    assert value == {"a": ["short", {"b": "long" * 5}], "c": 1}


def test_new_id_is_a_random_uuid4() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in list(ids)[:50]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_text_that_is_not_valid_unicode_is_recorded_not_lost(recorder: SessionRecorder) -> None:
    event = record(recorder, {"messages": [{"content": "bytes \udcff decoded with surrogateescape"}]})
    assert event["request"] == {"messages": [{"content": "bytes \ufffd decoded with surrogateescape"}]}


def test_a_secret_across_the_summary_limit_does_not_leave_its_head(tmp_path: Path) -> None:
    """Tool results are redacted before they are cut to 2,000 characters."""
    from ag2_logging.capture.recorder import UnattributedRecorder

    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    recorder = UnattributedRecorder(conf.resolved)
    recorder.record_tool_call(
        agent_name="user", name="fetch", arguments={}, result="x" * 1_990 + " " + secret
    )
    recorder.close_journal()
    event = next(line.event for line in read_journal(recorder.journal_path) if line.event)
    assert secret[:8] not in event["result_summary"]
    assert recorder.totals.redactions.get("github_token") == 1


def test_a_line_the_disk_refuses_goes_to_the_spill_with_its_seq(settings: Any) -> None:
    """The recorder hands a refused line to the injected spill; when that refuses too, it is dropped."""
    import os
    from concurrent.futures import Future

    taken: list[tuple[uuid.UUID, int, bytes]] = []
    failures: list[Any] = []
    accept = True

    def spill(session_id: uuid.UUID, seq: int, data: bytes, on_fail: Any) -> Future[None] | None:
        if not accept:
            return None
        taken.append((session_id, seq, data))
        failures.append(on_fail)
        done: Future[None] = Future()
        done.set_result(None)
        return done

    conf.reload()
    recorder = SessionRecorder(settings=conf.resolved, chat_id="c-spill", spill=spill)
    journal = recorder._journal
    assert journal._fd is not None
    os.close(journal._fd)
    journal._fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    recorder.record_agent_event(agent_name="a", name="one")
    recorder.record_agent_event(agent_name="a", name="two")
    assert [(sid, seq) for sid, seq, _ in taken] == [(recorder.session_id, 2), (recorder.session_id, 3)]
    line = orjson.loads(taken[1][2])
    assert (line["type"], line["name"], line["seq"]) == ("agent_event", "two", 3)
    assert taken[1][2].endswith(b"}\n")
    assert (recorder.totals.spilled_events, recorder.totals.dropped_events) == (2, 0)

    failures[0]()  # the database refused the first one after all
    assert (recorder.totals.spilled_events, recorder.totals.dropped_events) == (1, 1)
    accept = False
    recorder.finish("completed")
    assert (recorder.totals.spilled_events, recorder.totals.dropped_events) == (1, 2)
    assert recorder.journal_path.read_bytes().count(b"\n") == 1  # only the header reached the disk
