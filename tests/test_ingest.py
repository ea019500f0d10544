"""Journal -> rows: idempotent, tolerant of bad lines, and complete after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.db import transaction

from ag2_logging import ag2_logging_session
from ag2_logging.capture.journal import JournalWriter, read_journal
from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall
from ag2_logging.pipeline.ingest import ingest_journal
from ag2_logging.testing import FakeLLMServer
from tests.test_classic import make_agents

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parent.parent


def test_ingesting_twice_yields_the_same_rows(llm: FakeLLMServer) -> None:
    assistant, user = make_agents(llm)
    with ag2_logging_session("c-twice", "wf", "acme") as recorder:
        user.initiate_chat(assistant, message='[[tool:add {"a": 1, "b": 1}]]', max_turns=2)
    assert recorder is not None
    session = Session.objects.get()
    before = (
        list(LLMCall.objects.values_list("id", "total_tokens", "cost")),
        list(ToolCall.objects.values_list("id", "result_summary")),
        (session.call_count, session.total_tokens, session.total_cost),
    )
    again = ingest_journal(recorder.journal_path)
    assert again.llm_calls == 2 and again.tool_calls == 1 and again.finished
    session.refresh_from_db()
    after = (
        list(LLMCall.objects.values_list("id", "total_tokens", "cost")),
        list(ToolCall.objects.values_list("id", "result_summary")),
        (session.call_count, session.total_tokens, session.total_cost),
    )
    assert after == before
    assert LLMCall.objects.count() == 2


def test_bad_lines_are_skipped_and_counted(llm: FakeLLMServer) -> None:
    assistant, user = make_agents(llm)
    with ag2_logging_session("c-bad", "wf", "acme") as recorder:
        user.initiate_chat(assistant, message="hi [[terminate]]", max_turns=1)
    assert recorder is not None
    with open(recorder.journal_path, "ab") as fh:
        fh.write(b'this is not json\n[1, 2]\n{"type": "mystery"}\n{"truncated": ')
    result = ingest_journal(recorder.journal_path)
    lines = sum(1 for _ in read_journal(recorder.journal_path))
    assert result.bad_lines == [lines - 3, lines - 2, lines - 1, lines]
    session = Session.objects.get()
    assert session.bad_journal_lines == 4
    assert session.call_count == 1 and LLMCall.objects.count() == 1


def test_journal_writer_counts_failures_instead_of_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    writer = JournalWriter(blocker / "x.jsonl")  # its parent is a file: cannot be created
    assert writer.write(b"{}") is False
    assert writer.failures == 2
    assert "not-a-dir" in str(writer.path) and writer.last_error


CRASHING_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import django
    django.setup()
    import tests.celery_app  # noqa: F401
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    import autogen
    from ag2_logging import ag2_logging_session
    cfg = {"config_list": [{"model": "gpt-4o-mini", "api_key": "sk-x", "base_url": os.environ["LLM_URL"]}],
           "cache_seed": None}
    assistant = autogen.AssistantAgent("assistant", llm_config=cfg)
    user = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False,
                                  max_consecutive_auto_reply=3)
    with ag2_logging_session("c-crash", "wf-crash", "acme") as recorder:
        user.initiate_chat(assistant, message="one [[marker:k]]", max_turns=3)
        print(recorder.journal_path, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # dies before the session ends
    """
)


def test_a_killed_process_leaves_a_journal_with_every_call(llm: FakeLLMServer, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "AG2_TEST_RUN_DIR": str(tmp_path / "child"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'child.sqlite3'}",
        "LLM_URL": llm.base_url,
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    journal = Path(proc.stdout.strip().splitlines()[-1])
    assert journal.exists()
    served = llm.successful()
    assert len(served) == 3

    result = ingest_journal(journal, unfinished_status="interrupted")
    assert not result.finished
    assert result.llm_calls == 3 and result.bad_lines == []
    session = Session.objects.get()
    assert (session.chat_id, session.workflow_name, session.status) == ("c-crash", "wf-crash", "interrupted")
    assert session.call_count == 3
    assert session.prompt_tokens == sum(r.usage.prompt_tokens for r in served if r.usage)
    assert sorted(LLMCall.objects.values_list("response_id", flat=True)) == sorted(
        r.response_id for r in served
    )


def _journal(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def _call(session_id: str | None, seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": "llm_call",
        "id": str(uuid.uuid4()),
        "seq": seq,
        "ts": "2026-03-01T10:00:01.250000+00:00",
        "agent_name": "assistant",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "cost": "0.0001234567",
        "price_status": "priced",
        "started_at": "2026-03-01T10:00:00.125000+00:00",
        "ended_at": "2026-03-01T10:00:01.250000+00:00",
        **fields,
    }


def _start(session_id: str, path: Path) -> dict[str, Any]:
    session = {
        "session_id": session_id,
        "chat_id": "c-values",
        "workflow_name": "wf",
        "enterprise_id": "acme",
        "parent_id": None,
        "started_at": "2026-03-01T10:00:00+00:00",
        "host": "h",
        "pid": 1,
        "journal_path": str(path),
    }
    return {"type": "session_start", "id": session_id, "seq": 0, "session": session}


TRICKY = 'tab\there, new\nline, cr\r, back\\slash \\N, "quotes", é ✓ 😀'


def test_rows_hold_exactly_what_the_journal_says(tmp_path: Path) -> None:
    session_id = str(uuid.uuid4())
    path = tmp_path / "values.jsonl"
    body = {"messages": [{"role": "user", "content": TRICKY}], "n": 1.5, "none": None, "nested": [[1, {}]]}
    calls = [
        _call(session_id, 1, error=TRICKY, agent_name=TRICKY, request=body, response={"text": TRICKY}),
        _call(session_id, 2, cost=None, ag2_cost=3.5e-05, latency_ms=12, is_cached=True, started_at=None),
    ]
    event = {
        "type": "agent_event",
        "id": str(uuid.uuid4()),
        "seq": 3,
        "ts": "2026-03-01T10:00:02+00:00",
        "agent_name": "a",
        "name": "received_message",
        "data": {"message": TRICKY},
    }
    tool = {
        "type": "tool_call",
        "id": str(uuid.uuid4()),
        "seq": 4,
        "ts": "2026-03-01T10:00:03+00:00",
        "name": "add",
        "arguments": {"a": TRICKY},
        "result_summary": TRICKY,
        "duration_ms": None,
    }
    _journal(path, [_start(session_id, path), *calls, event, tool])
    result = ingest_journal(path)
    assert (result.llm_calls, result.agent_events, result.tool_calls, result.bad_lines) == (2, 1, 1, [])

    first, second = LLMCall.objects.order_by("seq")
    assert (first.error, first.agent_name, first.request, first.response) == (
        TRICKY,
        TRICKY,
        body,
        {"text": TRICKY},
    )
    assert first.cost == Decimal("0.0001234567") and first.ag2_cost is None
    assert first.started_at == datetime(2026, 3, 1, 10, 0, 0, 125000, tzinfo=UTC)
    assert (second.cost, second.ag2_cost, second.latency_ms, second.is_cached, second.started_at) == (
        None,
        Decimal("0.000035"),
        12.0,
        True,
        None,
    )
    assert second.request is None and second.response is None
    assert AgentEvent.objects.get().data == {"message": TRICKY}
    saved_tool = ToolCall.objects.get()
    assert (saved_tool.arguments, saved_tool.result_summary, saved_tool.duration_ms) == (
        {"a": TRICKY},
        TRICKY,
        None,
    )
    session = Session.objects.get()
    assert (session.call_count, session.unpriced_calls) == (2, 0)


def test_a_repeated_line_is_ingested_once(tmp_path: Path) -> None:
    session_id = str(uuid.uuid4())
    path = tmp_path / "repeated.jsonl"
    call = _call(session_id, 1)
    _journal(path, [_start(session_id, path), call, _call(session_id, 2), call])
    assert ingest_journal(path).llm_calls == 3
    assert LLMCall.objects.count() == 2
    assert Session.objects.get().call_count == 2


def test_lines_added_after_an_ingest_are_added_by_the_next(tmp_path: Path) -> None:
    session_id = str(uuid.uuid4())
    path = tmp_path / "growing.jsonl"
    events = [_start(session_id, path), *(_call(session_id, i) for i in range(1, 4))]
    _journal(path, events)
    ingest_journal(path, unfinished_status="interrupted")
    _journal(path, [*events, *(_call(session_id, i) for i in range(4, 6))])
    with transaction.atomic():  # twice in one transaction: the staging table is reused
        ingest_journal(path)
        ingest_journal(path)
    assert LLMCall.objects.count() == 5
    assert Session.objects.get().call_count == 5


def test_batches_larger_than_one_copy_and_interleaved_kinds(tmp_path: Path, monkeypatch: Any) -> None:
    from ag2_logging.pipeline import ingest

    monkeypatch.setattr(ingest, "BATCH_SIZE", 7)
    monkeypatch.setattr(ingest, "COPY_CHUNK_ROWS", 3)
    session_id = str(uuid.uuid4())
    path = tmp_path / "batches.jsonl"
    events: list[dict[str, Any]] = [_start(session_id, path)]
    for i in range(1, 40):
        events.append(_call(session_id, i))
        if i % 4 == 0:
            events.append(
                {
                    "type": "agent_event",
                    "id": str(uuid.uuid4()),
                    "seq": 1000 + i,
                    "ts": "2026-03-01T10:00:00Z",
                    "name": "e",
                }
            )
    _journal(path, events)
    result = ingest_journal(path)
    assert (result.llm_calls, result.agent_events) == (39, 9)
    assert (LLMCall.objects.count(), AgentEvent.objects.count()) == (39, 9)
    ingest_journal(path)
    assert (LLMCall.objects.count(), AgentEvent.objects.count()) == (39, 9)


def test_a_header_that_is_not_the_first_line_still_names_the_session(tmp_path: Path) -> None:
    session_id = str(uuid.uuid4())
    path = tmp_path / "late-header.jsonl"
    path.write_bytes(b"not json\n")
    with open(path, "ab") as fh:
        fh.write(orjson.dumps(_call(session_id, 1)) + b"\n" + orjson.dumps(_start(session_id, path)) + b"\n")
    result = ingest_journal(path)
    assert result.session_id == uuid.UUID(session_id) and result.bad_lines == [1]
    assert LLMCall.objects.get().session_id == uuid.UUID(session_id)
