"""Import of old AG2 logs: a real classic AG2 FileLogger log and SqliteLogger database, the replaced
system's format, garbage lines, re-imports, sanitized copies and the command."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import autogen
import pytest
from autogen import runtime_logging
from django.core.management import call_command

from ag2_logging.integrations import classic
from ag2_logging.models import DailyRollup, LLMCall, Session
from ag2_logging.pipeline.legacy import import_log, summarize_autogen_runtime_file, summarize_runtime_log
from ag2_logging.pipeline.rollups import rebuild_rollups
from ag2_logging.testing import FakeLLMServer
from tests.conftest import expected_cost, llm_config
from tests.secrets_scan import planted_corpus, scan_database, scan_files

pytestmark = pytest.mark.django_db(transaction=True)

CORPUS = planted_corpus(seed=21)


def add(a: int, b: int) -> int:
    return a + b


def run_chat(server: FakeLLMServer, *, base_url_in_config: bool = True) -> None:
    """A real classic AG2 chat: one tool call, secrets in the prompt."""
    config = llm_config(server)
    if not base_url_in_config:
        del config["config_list"][0]["base_url"]
    assistant = autogen.AssistantAgent("assistant", llm_config=config)
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=2
    )
    autogen.register_function(add, caller=assistant, executor=user, description="Add two integers.")
    message = '[[tool:add {"a": 2, "b": 3}]] please, and keep these: ' + CORPUS.text(" ")
    user.initiate_chat(assistant, message=message, max_turns=2)


@pytest.fixture
def ag2_logger(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Start one of AG2's own runtime loggers; put the app's routing logger back afterwards."""
    monkeypatch.chdir(tmp_path)  # FileLogger writes ./autogen_logs/<filename>

    def start(logger_type: str, config: dict[str, Any]) -> None:
        runtime_logging.start(logger_type=logger_type, config=config)

    try:
        yield start
    finally:
        runtime_logging.stop()
        classic.install()


@pytest.fixture
def file_log(ag2_logger: Any, llm: FakeLLMServer, tmp_path: Path) -> Path:
    ag2_logger("file", {"filename": "runtime.log"})
    run_chat(llm)
    runtime_logging.stop()
    path = tmp_path / "autogen_logs" / "runtime.log"
    assert path.exists()
    return path


@pytest.fixture
def sqlite_log(ag2_logger: Any, llm: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ag2_runtime.db"
    ag2_logger("sqlite", {"dbname": str(path)})
    # AG2 0.14's SqliteLogger raises on a base_url in llm_config (json.dumps of a pydantic Url,
    # out of OpenAIWrapper.__init__): the SDK takes the fake server from the environment instead.
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    run_chat(llm, base_url_in_config=False)
    runtime_logging.stop()
    return path


def ag2_file_totals(path: Path) -> tuple[int, Decimal]:
    """Calls and cost as AG2's FileLogger recorded them (read independently of the importer)."""
    calls, cost = 0, Decimal(0)
    for line in path.read_text().splitlines():
        if line.startswith("{") and '"invocation_id"' in line:
            record = json.loads(line)
            calls += 1
            cost += Decimal(str(record["cost"]))
    return calls, cost


def assert_matches_server(server: FakeLLMServer, sessions: list[Session]) -> None:
    served = server.successful()
    calls = list(LLMCall.objects.filter(session__in=sessions))
    assert len(calls) == len(served) == 2
    total = server.total_usage()
    assert sum(c.prompt_tokens for c in calls) == total.prompt_tokens
    assert sum(c.completion_tokens for c in calls) == total.completion_tokens
    assert sum(c.cached_tokens for c in calls) == total.cached_tokens
    assert sum(c.reasoning_tokens for c in calls) == total.reasoning_tokens
    assert {c.response_id for c in calls} == {r.response_id for r in served}
    for call in calls:
        assert call.provider == "openai" and call.model == "gpt-4o-mini"
        assert call.cost == expected_cost(
            "gpt-4o-mini",
            call.prompt_tokens,
            call.completion_tokens,
            call.cached_tokens,
            call.reasoning_tokens,
        )
        assert call.price_status == "priced"
        assert call.agent_name == "assistant"
    for session in sessions:
        assert session.source == "imported"
        assert session.call_count == session.llm_calls.count()
        assert session.total_cost == sum((c.cost for c in session.llm_calls.all()), Decimal(0))
        assert session.sanitized_at is not None


def test_file_logger_log_is_imported_with_ag2_totals(
    file_log: Path, llm: FakeLLMServer, logs_dir: Path
) -> None:
    ag2_calls, ag2_cost = ag2_file_totals(file_log)
    original = file_log.read_bytes()
    result = import_log(file_log, progress=False)

    assert result.format == "file" and result.bad_lines == [] and result.calls == ag2_calls == 2
    sessions = list(Session.objects.all())
    assert len(sessions) == 1
    assert_matches_server(llm, sessions)
    assert abs(sum(c.ag2_cost for c in LLMCall.objects.all()) - ag2_cost) < Decimal("1e-9")  # 10 places
    assert result.summary["ag2_cost"] == ag2_cost
    assert result.summary["total_tokens"] == sessions[0].total_tokens
    assert result.summary["tool_calls"] == 1

    # the original is left as it was; the sanitized copy and the rows hold no planted secret
    assert file_log.read_bytes() == original
    assert result.sanitized_path == str(file_log) + ".sanitized"
    assert scan_files(file_log.parent, CORPUS.secrets) != []  # the untouched original
    sanitized = Path(result.sanitized_path)
    assert [str(f) for f in scan_files(file_log.parent, CORPUS.secrets) if f.where == str(sanitized)] == []
    assert [str(f) for f in scan_database(CORPUS.secrets)] == []
    assert sum(result.redactions.values()) >= len(CORPUS.samples)
    assert sessions[0].redactions == result.redactions


def test_reimport_adds_nothing_and_the_sanitized_copy_is_the_same_file(file_log: Path) -> None:
    first = import_log(file_log, progress=False)
    again = import_log(file_log, progress=False)
    copy = import_log(Path(first.sanitized_path or ""), progress=False)
    assert (first.sessions_created, first.calls_created) == (1, 2)
    assert (again.sessions_created, again.calls_created) == (0, 0)
    assert (copy.sessions_created, copy.calls_created) == (0, 0)
    assert Session.objects.count() == 1 and LLMCall.objects.count() == 2


def test_in_place_rewrites_the_original(file_log: Path) -> None:
    result = import_log(file_log, in_place=True, progress=False)
    assert result.sanitized_path == str(file_log)
    assert scan_files(file_log.parent, CORPUS.secrets) == []
    assert LLMCall.objects.count() == 2


def test_sqlite_logger_database_is_imported_with_ag2_totals(sqlite_log: Path, llm: FakeLLMServer) -> None:
    with sqlite3.connect(sqlite_log) as db:
        ag2_calls, ag2_cost = db.execute("SELECT count(*), sum(cost) FROM chat_completions").fetchone()
    result = import_log(sqlite_log, progress=False)
    assert result.format == "sqlite" and result.calls == ag2_calls == 2
    sessions = list(Session.objects.all())
    assert len(sessions) == 1
    assert_matches_server(llm, sessions)
    assert abs(sum(c.ag2_cost for c in LLMCall.objects.all()) - Decimal(str(ag2_cost))) < Decimal("1e-9")
    sanitized = Path(result.sanitized_path or "")
    assert sanitized.name == "ag2_runtime.sanitized.db"
    assert [f for f in scan_files(sanitized.parent, CORPUS.secrets) if f.where == str(sanitized)] == []
    assert scan_database(CORPUS.secrets) == []
    again = import_log(sanitized, progress=False)
    assert (again.sessions_created, again.calls_created) == (0, 0)


def test_garbage_lines_are_reported_and_the_good_lines_imported(file_log: Path, llm: FakeLLMServer) -> None:
    lines = file_log.read_text().splitlines()
    lines.insert(2, "garbage that is no log line at all")
    lines.insert(5, '{"invocation_id": "cut-off", "request": {"model": ')
    lines.append("{not json}")
    lines.append("")  # blank lines are fine
    damaged = file_log.with_name("damaged.log")
    damaged.write_text("\n".join(lines) + "\n")
    bad = [3, 6, len(lines) - 1]

    summary = summarize_runtime_log(damaged)
    assert summary["bad_lines"] == bad and summary["calls"] == 2

    out, err = io.StringIO(), io.StringIO()
    call_command("ag2_logging_import", str(damaged), "--no-progress", stdout=out, stderr=err)
    assert f"3 malformed line(s) skipped: {bad[0]}, {bad[1]}, {bad[2]}" in err.getvalue()
    assert "2 call(s) (2 new)" in out.getvalue()
    assert_matches_server(llm, list(Session.objects.all()))


def test_replaced_system_format_and_command_options(file_log: Path, llm: FakeLLMServer) -> None:
    lines = file_log.read_text().splitlines()
    assert lines[0].startswith("Started new session with Session ID: ")
    legacy_id = lines[0].rsplit(" ", 1)[1]
    start = {
        "event_type": "session_start",
        "session_info": {
            "session_id": legacy_id,
            "chat_id": "chat-42",
            "workflow_name": "support_triage",
            "enterprise_id": "acme",
            "start_time": "2025-05-01T10:00:00+00:00",
        },
    }
    lines.insert(1, "# MOZAIKS SESSION START: " + json.dumps(start))
    legacy = file_log.with_name("mozaiks_runtime.log")
    legacy.write_text("\n".join(lines) + "\n")

    summary = summarize_autogen_runtime_file(legacy)
    assert summary["format"] == "mozaiks"
    assert list(summary["by_session"]) == [legacy_id]
    assert summary["by_model"]["gpt-4o-mini"]["calls"] == 2
    assert summary["by_session"][legacy_id]["cost"] == summary["cost"] > 0

    out = io.StringIO()
    call_command(
        "ag2_logging_import",
        str(legacy),
        "--workflow",
        "imported_wf",
        "--json",
        stdout=out,
        stderr=io.StringIO(),
    )
    report = json.loads(out.getvalue())
    assert report["format"] == "mozaiks" and report["calls_created"] == 2
    session = Session.objects.get()
    assert (session.chat_id, session.workflow_name, session.enterprise_id) == (
        "chat-42",
        "imported_wf",
        "acme",
    )
    assert session.started_at.isoformat() == "2025-05-01T10:00:00+00:00"
    assert_matches_server(llm, [session])


def test_progress_bar_for_large_files(file_log: Path) -> None:
    stream = io.StringIO()
    import_log(file_log, progress=True, stream=stream, progress_min_bytes=0)
    assert "100% runtime.log" in stream.getvalue()
    quiet = io.StringIO()
    import_log(file_log, progress=True, stream=quiet)  # small file: no bar
    assert quiet.getvalue() == ""


def test_command_rejects_missing_files(tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    err = io.StringIO()
    with pytest.raises(CommandError, match="1 of 1 file"):
        call_command("ag2_logging_import", str(tmp_path / "nope.log"), stderr=err)
    assert f"{tmp_path / 'nope.log'}: no such file" in err.getvalue()


def three_call_log(path: Path, when: datetime) -> Path:
    """A FileLogger log of one session with three completed gpt-4o-mini calls, written by hand."""
    lines = ["Started new session with Session ID: 6f1c3e9a-0000-4000-8000-000000000003"]
    for i, (prompt, completion) in enumerate([(1000, 200), (2000, 300), (1500, 100)]):
        start = when + timedelta(minutes=i)
        response = {
            "id": f"chatcmpl-{i}",
            "model": "gpt-4o-mini",
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        record = {
            "invocation_id": f"inv-{i}",
            "client_id": 1,
            "wrapper_id": 1,
            "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {i}"}]},
            "response": response,
            "is_cached": 0,
            "cost": 0.001,
            "start_time": start.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "end_time": (start + timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S.%f"),
            "source_name": "assistant",
        }
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def rollup_rows() -> list[tuple[Any, ...]]:
    fields = (
        "day",
        "enterprise_id",
        "workflow_name",
        "model",
        "agent_name",
        "provider",
        "call_count",
        "cost",
    )
    return sorted(DailyRollup.objects.values_list(*fields))


def test_imported_calls_reach_the_reports_without_a_rebuild(tmp_path: Path) -> None:
    when = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    log = three_call_log(tmp_path / "runtime.log", when)
    call_command("ag2_logging_import", str(log), "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())

    expected = sum(
        (expected_cost("gpt-4o-mini", p, c, 0, 0) for p, c in [(1000, 200), (2000, 300), (1500, 100)]),
        Decimal(0),
    )
    out = io.StringIO()
    call_command("ag2_logging_report", "day", "--days", "1", "--format", "json", stdout=out)
    rows = {row["day"]: row for row in json.loads(out.getvalue())["rows"]}
    assert set(rows) == {when.date().isoformat(), "TOTAL"}
    for row in rows.values():
        assert row["calls"] == 3
        assert Decimal(str(row["cost"])) == expected > 0
        assert not row["unpriced_calls"]

    session = Session.objects.get()
    assert session.source == "imported" and session.summarized_at is not None
    assert session.status == "completed" and session.total_cost == expected
    journal = Path(session.journal_path)
    assert journal.parent.name == "imported" and journal.name == f"{session.pk}.jsonl"

    snapshot = rollup_rows()
    assert sum(row[6] for row in snapshot) == 3
    rebuild_rollups()
    assert rollup_rows() == snapshot

    # Importing the same log again adds nothing, to the rows or to the rollups.
    again = import_log(log, progress=False)
    assert (again.sessions_created, again.calls_created) == (0, 0)
    assert LLMCall.objects.count() == 3
    assert rollup_rows() == snapshot


def test_imported_journal_has_the_recorders_event_shapes(tmp_path: Path) -> None:
    """The importer writes what the recorder writes: same header, call and closing keys."""
    from ag2_logging.capture.recorder import SessionRecorder
    from ag2_logging.conf import conf

    recorder = SessionRecorder(settings=conf.resolved, chat_id="shape")
    live_call = recorder.record_llm_call(
        agent_name="a", provider="openai", model="gpt-4o-mini", prompt_tokens=10, completion_tokens=5
    )
    recorder.finish("completed")
    live = [json.loads(line) for line in recorder.journal_path.read_text().splitlines()]

    import_log(three_call_log(tmp_path / "runtime.log", datetime.now(UTC)), progress=False)
    journal = Path(Session.objects.get(source="imported").journal_path)
    imported = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["type"] for e in imported] == [
        "session_start",
        "llm_call",
        "llm_call",
        "llm_call",
        "session_end",
    ]
    assert set(imported[0]["session"]) == set(live[0]["session"])
    assert set(imported[1]) == set(live_call) | {"seq"}
    assert set(imported[-1]) == set(live[-1]) and set(imported[-1]["totals"]) == set(live[-1]["totals"])
    assert imported[-1]["totals"]["call_count"] == 3
