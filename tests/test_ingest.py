"""Journal -> rows: idempotent, tolerant of bad lines, and complete after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ag2_logging import ag2_logging_session
from ag2_logging.ingest import ingest_journal
from ag2_logging.journal import JournalWriter, read_journal
from ag2_logging.models import LLMCall, Session, ToolCall
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
