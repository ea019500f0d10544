"""A full disk loses nothing the database can take: real AG2 chats with the logs on a 64 KB tmpfs.

The journal directory is a real, tiny filesystem (``mount -t tmpfs -o size=64k``), filled before
the session starts, so every journal write fails with ENOSPC as in production. The recorder
spills each refused line to the database (``SpilledEvent``) and ingest reads them after the file.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from ag2_logging import ag2_logging_session, flush
from ag2_logging.capture import spill
from ag2_logging.capture.recorder import SessionRecorder
from ag2_logging.conf import conf
from ag2_logging.models import LLMCall, Session, SpilledEvent, ToolCall
from ag2_logging.pipeline.ingest import ingest_journal
from ag2_logging.testing import FakeLLMServer
from tests.test_classic import make_agents

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = '[[tool:add {"a": 2, "b": 3}]] [[marker:full]]'


@pytest.fixture
def full_disk(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """LOG_FILE (and so the journals) on a 64 KB tmpfs that is already full."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        (mount / "logs" / "sessions").mkdir(parents=True)
        _fill(mount / "filler")
        settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LOG_FILE": str(mount / "logs" / "ag2_runtime.log")}
        conf.reload()
        yield mount
    finally:
        flush()
        # Lazy: the runtime log may still hold its descriptor; the mount goes when it closes.
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            try:
                os.write(fd, b"x" * 4096)
            except OSError as exc:
                failure = exc
                break
    finally:
        os.close(fd)
    assert failure.errno == errno.ENOSPC  # really full


def _chat(llm: FakeLLMServer, chat_id: str) -> SessionRecorder:
    assistant, user = make_agents(llm, max_auto=4)
    with ag2_logging_session(chat_id, "wf-full", "acme") as recorder:
        assert recorder is not None
        user.initiate_chat(assistant, message=CHAT, max_turns=3, silent=True)
    flush()
    return recorder


def assert_session_is_the_recorders(session: Session, live: Any, chat_id: str, workflow: str) -> None:
    """The ingested ``session`` (one tool call, completed, nothing dropped) holds what its
    recorder ``live`` counted while it ran: calls, tokens, cost and spilled lines."""
    assert ToolCall.objects.filter(session=session).count() == live.tool_calls == 1
    assert (session.call_count, session.prompt_tokens, session.completion_tokens, session.total_tokens) == (
        live.call_count,
        live.prompt_tokens,
        live.completion_tokens,
        live.total_tokens,
    )
    assert session.total_cost == live.total_cost > 0
    assert (session.status, session.chat_id, session.workflow_name) == ("completed", chat_id, workflow)
    assert (session.spilled_events, session.dropped_events, session.incomplete) == (
        live.spilled_events,
        0,
        False,
    )


def test_a_full_disk_spills_every_event_to_the_database_and_ingest_completes_the_session(
    llm: FakeLLMServer, full_disk: Path
) -> None:
    recorder = _chat(llm, "c-full")
    assert recorder.journal_path.is_relative_to(full_disk)
    assert recorder.journal_failures > 0 and recorder.journal_path.stat().st_size == 0
    live = recorder.totals
    served = llm.successful()
    assert len(served) == live.call_count >= 2
    assert live.dropped_events == 0 and live.spilled_events > live.call_count

    result = ingest_journal(recorder.journal_path)
    assert result.finished and result.bad_lines == [] and result.spilled_lines == live.spilled_events
    session = Session.objects.get()
    calls = list(session.llm_calls.all())
    assert sorted(c.response_id for c in calls) == sorted(r.response_id for r in served)
    assert_session_is_the_recorders(session, live, "c-full", "wf-full")
    assert SpilledEvent.objects.count() == live.spilled_events  # kept until retention

    again = ingest_journal(recorder.journal_path)  # the same again
    session.refresh_from_db()
    assert (again.spilled_lines, again.llm_calls, again.finished) == (live.spilled_events, len(served), True)
    assert LLMCall.objects.count() == len(served)
    assert (session.call_count, session.total_cost, session.status, session.spilled_events) == (
        live.call_count,
        live.total_cost,
        "completed",
        live.spilled_events,
    )
    assert not session.incomplete


@pytest.fixture
def database_refuses_spills() -> Iterator[None]:
    """A real refusal: a trigger makes every SpilledEvent insert fail (the Session row still works)."""
    table = SpilledEvent._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION ag2_refuse_spill() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER ag2_refuse BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ag2_refuse_spill()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER ag2_refuse BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
    try:
        yield
    finally:
        flush()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS ag2_refuse ON {table}")
                cursor.execute("DROP FUNCTION IF EXISTS ag2_refuse_spill()")
            else:
                cursor.execute("DROP TRIGGER IF EXISTS ag2_refuse")


def test_disk_and_database_both_refusing_drops_counted_and_the_session_is_incomplete(
    llm: FakeLLMServer, full_disk: Path, database_refuses_spills: None
) -> None:
    recorder = _chat(llm, "c-both")
    live = recorder.totals
    assert live.call_count == len(llm.successful()) >= 2
    # Every line was lost (header, calls, events, closing line); each is counted, none spilled.
    assert live.spilled_events == 0 and live.dropped_events > live.call_count
    assert SpilledEvent.objects.count() == 0

    result = ingest_journal(recorder.journal_path)
    assert result.issues == {"header_missing": 1} and result.llm_calls == 0
    session = Session.objects.get()
    assert session.incomplete
    assert session.call_count == 0 and LLMCall.objects.count() == 0
    assert session.dropped_events >= live.dropped_events - 1  # all but, at worst, the closing line
    assert session.recorded_totals is not None
    assert session.recorded_totals["call_count"] == live.call_count  # the process's figure is kept
    assert Decimal(session.recorded_totals["total_cost"]) == live.total_cost

    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/ag2_logging/session/{session.pk}/change/").content.decode()
    assert f"the process counted {live.call_count} calls" in page
    assert "the record holds 0" in page
    listing = client.get("/admin/ag2_logging/session/?incomplete__exact=1").content.decode()
    assert "c-both" in listing
    assert "c-both" not in client.get("/admin/ag2_logging/session/?incomplete__exact=0").content.decode()


def test_past_the_bound_of_pending_spills_lines_are_dropped_and_counted(
    llm: FakeLLMServer, full_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spill, "MAX_PENDING_SPILLS", 0)
    recorder = _chat(llm, "c-bound")
    assert recorder.totals.spilled_events == 0
    assert recorder.totals.dropped_events > recorder.totals.call_count >= 2
    ingest_journal(recorder.journal_path)
    session = Session.objects.get()
    assert session.incomplete and session.dropped_events > 0


def test_unrelated_sessions_spilled_lines_are_not_read(tmp_path: Path) -> None:
    """Spilled lines belong to their session only: another journal never picks them up."""
    other = uuid.uuid4()
    SpilledEvent.objects.create(session_id=other, seq=2, line=f'{{"type":"llm_call","id":"{uuid.uuid4()}"}}')
    sid = str(uuid.uuid4())
    path = tmp_path / f"{sid}.jsonl"
    path.write_text(f'{{"type":"session_start","id":"{sid}","session":{{"session_id":"{sid}"}}}}\n')
    result = ingest_journal(path)
    assert result.spilled_lines == 0 and SpilledEvent.objects.filter(session_id=other).count() == 1
