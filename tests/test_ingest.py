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
    # The second call has no cost: every call without one is unpriced (querysets.totals).
    assert (session.call_count, session.unpriced_calls) == (2, 1)
    assert session.total_cost == Decimal("0.0001234567")  # the known cost: a lower bound


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


# (calls as (cost, price_status, status, retries, prompt_tokens), then the session's expected
# (call_count, error_count, unpriced_calls, retry_count, prompt_tokens, total_cost)), by hand.
TOTALS_CASES = [
    pytest.param([], (0, 0, 0, 0, 0, Decimal(0)), id="no calls: cost 0"),
    pytest.param(
        [("0.25", "priced", "success", 0, 10), ("0.5", "priced", "success", 2, 7)],
        (2, 0, 0, 2, 17, Decimal("0.75")),
        id="all priced",
    ),
    pytest.param([(None, "unknown", "success", 0, 3)], (1, 0, 1, 0, 3, None), id="none priced: unknown"),
    pytest.param(
        [("0", "priced", "error", 1, 0), (None, "no_usage", "success", 0, 0)],
        (2, 1, 1, 1, 0, None),
        id="known costs sum to 0 beside an unpriced call: unknown",
    ),
    pytest.param(
        [("0.1", "priced", "success", 0, 4), (None, "unknown", "success", 3, 6)],
        (2, 0, 1, 3, 10, Decimal("0.1")),
        id="mixed: the known cost",
    ),
    pytest.param([("0", "priced", "success", 0, 5)], (1, 0, 0, 0, 5, Decimal(0)), id="priced at 0"),
]


@pytest.mark.parametrize(("calls", "expected"), TOTALS_CASES)
def test_session_totals_are_the_rows_totals(
    tmp_path: Path, calls: list[tuple[Any, ...]], expected: Any
) -> None:
    from ag2_logging.pipeline import ingest

    session_id = str(uuid.uuid4())
    path = tmp_path / "totals.jsonl"
    events = [_start(session_id, path)]
    for seq, (cost, price_status, status, retries, prompt) in enumerate(calls, start=1):
        fields = {"prompt_tokens": prompt, "completion_tokens": 0, "total_tokens": prompt}
        events.append(
            _call(
                session_id,
                seq,
                cost=cost,
                price_status=price_status,
                status=status,
                retries=retries,
                **fields,
            )
        )
    ingest_journal(_journal(path, events))
    session = Session.objects.get()
    got = (
        session.call_count,
        session.error_count,
        session.unpriced_calls,
        session.retry_count,
        session.prompt_tokens,
        session.total_cost,
    )
    assert got == expected
    # The SQL written for PostgreSQL gives what the ORM's aggregate gives, on every backend.
    assert ingest._session_totals(session.pk) == LLMCall.objects.for_session(session.pk).totals()


@pytest.mark.parametrize("outer_atomic", [False, True], ids=["alone", "inside a transaction"])
def test_rows_already_there_for_a_session_never_ingested(tmp_path: Path, outer_atomic: bool) -> None:
    """A direct COPY (the session was never ingested) that meets its own rows starts over staged."""
    session_id = str(uuid.uuid4())
    path = tmp_path / "again.jsonl"
    events = [_start(session_id, path), *(_call(session_id, i) for i in range(1, 4))]
    ingest_journal(_journal(path, events), unfinished_status="interrupted")
    Session.objects.update(ingested_at=None)  # rows without the mark: written by another tool
    _journal(path, [*events, _call(session_id, 4, cost="0.5")])
    if outer_atomic:
        with transaction.atomic():
            result = ingest_journal(path)
    else:
        result = ingest_journal(path)
    assert (result.llm_calls, result.issues) == (4, {})
    session = Session.objects.get()
    assert (LLMCall.objects.count(), session.call_count) == (4, 4)
    assert session.total_cost == Decimal("0.0001234567") * 3 + Decimal("0.5")
    assert session.ingested_at is not None


def test_a_chain_for_an_unknown_session_does_nothing() -> None:
    from ag2_logging.pipeline import chain

    key = uuid.uuid4()
    result = chain.process_session(key)
    assert (result.skipped, result.ran) == ("unknown session", [])
    assert not Session.objects.filter(pk=key).exists()


@pytest.mark.parametrize(
    ("recorded", "differs"),
    [
        # The cost is never compared (a reprice changes the rows' cost on purpose), known or not.
        ({"call_count": 2, "total_cost": None}, False),
        ({"call_count": 2, "total_cost": "0"}, False),
        ({"call_count": 2, "total_cost": "0.5"}, False),
        ({"call_count": 2, "total_cost": "not a number"}, False),
        # Calls and tokens are.
        ({"call_count": 3, "total_cost": None}, True),
        ({"call_count": 2, "prompt_tokens": 7}, True),
        ({"call_count": "two"}, True),
    ],
)
def test_the_process_totals_compare_calls_and_tokens_never_cost(
    recorded: dict[str, Any], differs: bool
) -> None:
    from ag2_logging.pipeline.ingest import _differs

    session = Session(call_count=2, unpriced_calls=1, total_cost=None)
    assert _differs(recorded, session) is differs
