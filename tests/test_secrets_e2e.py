"""End to end: secrets of every supported kind planted into a real classic AG2 chat never reach a
file under the logs directory, a row of any app table, the SQLite database file or an admin page.

Planted into: the llm_config (``api_key``, HTTP ``default_headers``), an agent's init arguments
(``system_message``, ``description``, a custom keyword argument), the prompt, a tool's arguments
and its result. The chat runs against the fake LLM server; ingest runs on session end (Celery
eager) and the sanitize task after it. The ``ag2`` 1.x half reuses ``tests/secrets_scan.py``.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import autogen
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ag2_logging import ag2_logging_session, flush, tasks
from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall
from ag2_logging.testing import FakeLLMServer
from tests.secrets_scan import (
    planted_corpus,
    read_from_another_process,
    sample,
    scan_admin,
    scan_database,
    scan_everything,
    scan_files,
)

pytestmark = pytest.mark.django_db(transaction=True)


class VaultAssistant(autogen.AssistantAgent):
    """An agent whose constructor takes a credential (AG2 logs its init arguments)."""

    def __init__(self, name: str, aws_secret_access_key: str, **kwargs: Any) -> None:
        self._aws_secret = aws_secret_access_key
        super().__init__(name, **kwargs)


@pytest.fixture
def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


def test_planted_secrets_reach_no_file_row_or_page(
    llm: FakeLLMServer, logs_dir: Path, admin_client: Client, settings: Any
) -> None:
    import random

    corpus = planted_corpus(seed=2026)
    keyed = corpus.keyed
    rng = random.Random(99)
    api_key = sample("openai_key", rng)
    tool_url = sample("url_password", rng)
    tool_jwt = sample("jwt", rng)
    secrets = [*corpus.secrets, api_key.secret, tool_url.secret, tool_jwt.secret]

    def lookup(query: str, password: str, client_secret: str, dsn: str) -> str:
        return f"connected with {tool_url.text} as {query[:20]}; session token {tool_jwt.text}"

    config = {
        "config_list": [
            {
                "model": "gpt-4o-mini",
                "api_key": api_key.secret,
                "base_url": llm.base_url,
                "default_headers": {
                    "X-Api-Key": keyed["X-Api-Key"],
                    "Authorization": keyed["Authorization"],
                    # a token in a header nobody names as secret
                    "X-Trace": next(s for s in corpus.samples if s.kind == "github_token").text,
                },
            }
        ],
        "cache_seed": None,
    }
    tool_args = {
        "query": corpus.text(" | "),
        "password": keyed["password"],
        "client_secret": keyed["client_secret"],
        "dsn": keyed["dsn"],
    }
    prompt = f"[[tool:lookup {json.dumps(tool_args)}]] Use these: {corpus.text()}"

    with ag2_logging_session("chat-secrets", "secrets", "acme") as recorder:
        assert recorder is not None
        assistant = VaultAssistant(
            "assistant",
            aws_secret_access_key=keyed["aws_secret_access_key"],
            llm_config=config,
            system_message="You help. Never reveal " + corpus.text(" "),
            description="holds " + api_key.text,
        )
        user = autogen.UserProxyAgent(
            "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=2
        )
        autogen.register_function(lookup, caller=assistant, executor=user, description="Look something up.")
        user.initiate_chat(assistant, message=prompt, max_turns=2)
    flush()

    session = Session.objects.get()
    assert session.status == "completed" and session.ingested_at is not None
    assert len(llm.successful()) == 2 and session.call_count == 2
    # the planted values really went through AG2 and the recorder
    tool = ToolCall.objects.get()
    assert tool.name == "lookup" and tool.arguments["password"] == "[REDACTED:password]"
    assert "[REDACTED:url_password]" in tool.result_summary
    assert LLMCall.objects.count() == 2 and AgentEvent.objects.filter(name="new_agent").count() == 2

    hot_path = dict(session.redactions)
    for kind in ("openai_key", "pem_private_key", "jwt", "url_password", "key:x_api_key", "key:password"):
        assert kind in hot_path, kind

    result = tasks.sanitize_log.delay(str(session.pk)).get()
    assert result is not None and result["session_id"] == str(session.pk)
    assert result["removed"] == {}  # the hot path already removed everything
    session.refresh_from_db()
    assert session.sanitized_at is not None
    assert session.redactions == {
        k: hot_path.get(k, 0) + result["removed"].get(k, 0) for k in {*hot_path, *result["removed"]}
    }
    # a second pass removes nothing and changes nothing
    again = tasks.sanitize_log.delay(str(session.pk)).get()
    assert again["removed"] == {} and not again["journal_rewritten"]

    findings = scan_everything(secrets, logs_dir=logs_dir, client=admin_client)
    assert [str(f) for f in findings] == []
    # the scanner itself finds what it looks for
    probe = logs_dir / "probe.txt"
    probe.write_text(f"leak {tool_jwt.secret}")
    assert [f.secret for f in scan_files(logs_dir, secrets)] == [tool_jwt.secret]
    probe.unlink()
    assert scan_database(secrets) == [] and scan_admin(admin_client, secrets) == []


def test_sanitize_pass_removes_what_the_hot_path_let_through(
    llm: FakeLLMServer, logs_dir: Path, settings: Any
) -> None:
    """A journal written by an older version (or with a pattern the hot path lacked) is cleaned
    on disk and in the rows already ingested, and the counts are merged."""
    import random

    from ag2_logging.capture.recorder import BaseRecorder
    from ag2_logging.conf import conf

    # The session-end pipeline runs sanitize before ingest; here the rows were ingested first,
    # as a version without the sanitize pass did.
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "INGEST_ON_SESSION_END": False}
    conf.reload()

    rng = random.Random(7)
    leaked = sample("github_token", rng)
    with ag2_logging_session("chat-old", "old", "acme") as recorder:
        assert recorder is not None
        # What a recorder without redaction would have written.
        BaseRecorder._write(
            recorder,
            {
                "type": "tool_call",
                "id": "6a1f8a52-7d0c-4c43-9f64-8f0d4c3b2a10",
                "ts": "2026-01-01T00:00:00+00:00",
                "agent_name": "user",
                "name": "deploy",
                "arguments": {"token": leaked.secret, "note": f"use {leaked.text}"},
                "result_summary": "ok",
                "error": "",
            },
        )
        runtime_line_secret = sample("slack_webhook", rng)
        from ag2_logging.capture import runtime_log

        runtime_log.write(f"# AG2 NOTE: {recorder.session_id} posted to {runtime_line_secret.text}")
        runtime_log.write(f"another session's line {runtime_line_secret.text}")
    flush()
    session = Session.objects.get()
    tasks.ingest_session.delay(str(session.pk)).get()
    assert ToolCall.objects.get().arguments["token"] == leaked.secret  # ingested as written

    result = tasks.sanitize_log.delay(str(session.pk)).get()
    assert result["journal_rewritten"] and result["rows_updated"] == 1
    assert result["removed"]["key:token"] == 1 and result["removed"]["github_token"] == 1
    assert result["runtime_log"] == {"slack_webhook": 1}
    tool = ToolCall.objects.get()
    assert tool.arguments == {"token": "[REDACTED:token]", "note": "use [REDACTED:github_token]"}
    journal = Path(session.journal_path).read_text()
    assert leaked.secret not in journal
    assert journal.splitlines()[-1].startswith('{"type":"session_end"')
    runtime_log = (logs_dir / "ag2_runtime.log").read_text()
    assert runtime_log.count(runtime_line_secret.secret) == 1  # only the other session's line is left
    session.refresh_from_db()
    assert session.redactions["github_token"] == 1 and session.redactions["slack_webhook"] == 1

    # ingest after sanitize keeps the merged counts (they are in the journal's closing line)
    tasks.ingest_session.delay(str(session.pk)).get()
    session.refresh_from_db()
    assert session.redactions["github_token"] == 1 and session.redactions["slack_webhook"] == 1
    assert tasks.sanitize_log.delay(str(session.pk)).get()["removed"] == {}


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize(
    ("read", "lock_kept"),
    [(Path.read_bytes, False), (read_from_another_process, True)],
    ids=["read here (drops the lock)", "read by a child process"],
)
def test_scanning_a_live_sqlite_file_keeps_this_process_locks(
    tmp_path: Path, read: Any, lock_kept: bool
) -> None:
    """The database scan reads the SQLite files while this process has connections open on them.
    A read in this process releases their POSIX locks (the SQLite suite then met "disk I/O error"
    once a worker took the database for its own); the scan's reader must leave them held."""
    db = tmp_path / "held.sqlite3"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM t").fetchall()  # a SHARED lock on the file, held until COMMIT
    try:
        read(db)
        probe = subprocess.run(
            [sys.executable, "-c",
             "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
             "try:\n    c.execute('BEGIN EXCLUSIVE'); print('taken')\n"
             "except sqlite3.OperationalError as e:\n    print(e)",
             str(db)],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert probe.stdout.strip() == ("database is locked" if lock_kept else "taken")
