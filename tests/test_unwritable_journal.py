"""A journal directory that cannot be created or written: the database holds the whole session.

Real classic AG2 chats against the fake LLM server with ``LOG_FILE`` (so the journal directory)
somewhere the process cannot create its journal: under ``/proc``, in a read-only directory, or
under a path whose parent is a regular file. Every journal line is then spilled to the database
(``SpilledEvent``) and no journal file exists on any host. The session must still reach the
rows and the reports, through each way its chain runs: the inline pipeline, Celery (eagerly, as
in the rest of the suite) and ``ag2_logging_recover --local``.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ag2_logging import ag2_logging_session, flush
from ag2_logging.capture.recorder import SessionRecorder
from ag2_logging.conf import conf
from ag2_logging.models import DailyRollup, LLMCall, Session, SpilledEvent
from ag2_logging.pipeline import chain, modes
from ag2_logging.pipeline.rollups import rebuild_rollups
from ag2_logging.pipeline.store import JournalUnavailable
from ag2_logging.testing import FakeLLMServer
from tests.support import read_only_dir
from tests.test_classic import assert_calls_match_served, make_agents
from tests.test_disk_full import assert_session_is_the_recorders
from tests.test_rollups import table as rollup_table

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = '[[tool:add {"a": 2, "b": 3}]] [[marker:nodir]]'


@pytest.fixture(params=["under /proc", "read-only directory", "parent is a file"])
def unwritable_log_file(request: pytest.FixtureRequest, tmp_path: Path, settings: Any) -> Iterator[Path]:
    """LOG_FILE where neither its directory nor the journal directory beside it can be made."""
    stack = contextlib.ExitStack()
    if request.param == "under /proc":
        log_file = Path("/proc") / f"ag2-logging-{uuid.uuid4().hex}" / "logs" / "ag2_runtime.log"
    elif request.param == "read-only directory":
        log_file = stack.enter_context(read_only_dir(tmp_path)) / "logs" / "ag2_runtime.log"
    else:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory\n")
        log_file = blocker / "logs" / "ag2_runtime.log"
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LOG_FILE": str(log_file)}
    conf.reload()
    try:
        yield log_file
    finally:
        flush()
        stack.close()


def _chat(llm: FakeLLMServer, chat_id: str) -> SessionRecorder:
    assistant, user = make_agents(llm, max_auto=4)
    with ag2_logging_session(chat_id, "wf-nodir", "acme") as recorder:
        assert recorder is not None
        user.initiate_chat(assistant, message=CHAT, max_turns=3, silent=True)
    flush()
    return recorder


def _day_report() -> dict[str, Any]:
    out = io.StringIO()
    call_command("ag2_logging_report", "day", "--days", "1", "--format", "json", stdout=out)
    rows = {row["day"]: row for row in json.loads(out.getvalue())["rows"]}
    return rows["TOTAL"]


def _assert_ingested_from_the_database(recorder: SessionRecorder, llm: FakeLLMServer) -> None:
    assert not recorder.journal_path.exists()
    live = recorder.totals
    assert recorder.journal_failures > 0
    assert live.dropped_events == 0 and live.spilled_events > live.call_count >= 2
    assert SpilledEvent.objects.filter(session_id=recorder.session_id).count() == live.spilled_events

    session = Session.objects.get(pk=recorder.session_id)
    assert session.ingested_at is not None, session.pipeline_error
    assert session.summarized_at is not None
    assert session.sanitized_at is None  # no journal file was read, so none was marked sanitized
    assert (session.pipeline_error, session.pipeline_failed_at) == ("", None)
    assert_calls_match_served(session, llm)
    assert LLMCall.objects.filter(session=session).count() == live.call_count == len(llm.successful())
    assert_session_is_the_recorders(session, live, "c-nodir", "wf-nodir")

    # The reports read the rollups: the session is in them, and they equal a rebuild.
    assert sum(r.call_count for r in DailyRollup.objects.all()) == live.call_count
    assert sum((r.cost for r in DailyRollup.objects.all()), Decimal(0)) == live.total_cost
    total = _day_report()
    assert (total["calls"], Decimal(str(total["cost"]))) == (live.call_count, live.total_cost)
    before = rollup_table()
    rebuild_rollups()
    assert rollup_table() == before


def test_inline_pipeline_ingests_a_session_whose_journal_could_not_be_created(
    llm: FakeLLMServer, unwritable_log_file: Path, settings: Any
) -> None:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PIPELINE": "inline"}
    conf.reload()
    assert modes.effective_mode() == "inline"
    recorder = _chat(llm, "c-nodir")
    _assert_ingested_from_the_database(recorder, llm)


def test_celery_chain_ingests_a_session_whose_journal_could_not_be_created(
    llm: FakeLLMServer, unwritable_log_file: Path
) -> None:
    assert modes.effective_mode() == "celery"  # the suite's Celery app runs tasks eagerly
    recorder = _chat(llm, "c-nodir")
    _assert_ingested_from_the_database(recorder, llm)


def test_recovery_ingests_a_session_whose_journal_could_not_be_created(
    llm: FakeLLMServer, unwritable_log_file: Path, settings: Any
) -> None:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PIPELINE": "inline", "INGEST_ON_SESSION_END": False}
    conf.reload()
    recorder = _chat(llm, "c-nodir")
    assert Session.objects.get().ingested_at is None  # nothing ran at session end
    out, err = io.StringIO(), io.StringIO()
    call_command("ag2_logging_recover", "--local", stdout=out, stderr=err)
    assert "not on host" not in out.getvalue() + err.getvalue()
    assert "JOURNAL_STORAGE" not in out.getvalue() + err.getvalue()
    _assert_ingested_from_the_database(recorder, llm)


@pytest.mark.parametrize("unwritable_log_file", ["under /proc"], indirect=True)
def test_a_worker_on_another_host_ingests_a_whole_spilled_journal_but_waits_for_a_gap(
    llm: FakeLLMServer, unwritable_log_file: Path, settings: Any
) -> None:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PIPELINE": "inline", "INGEST_ON_SESSION_END": False}
    conf.reload()
    recorder = _chat(llm, "c-nodir")
    # The session was written on another host: this one cannot know whether a file there holds
    # lines, so it takes the database's lines alone only when they run without a gap.
    Session.objects.filter(pk=recorder.session_id).update(host="writer-elsewhere")
    session = Session.objects.get()
    assert chain.spilled_whole(session)
    middle = SpilledEvent.objects.filter(session_id=session.pk).order_by("seq")[2]
    kept = (middle.seq, middle.line)
    middle.delete()
    assert not chain.spilled_whole(session)
    with pytest.raises(JournalUnavailable, match=r"not on host .*JOURNAL_STORAGE"):
        chain.process_session(session.pk)
    assert Session.objects.get().ingested_at is None

    SpilledEvent.objects.create(session_id=session.pk, seq=kept[0], line=kept[1])
    result = chain.process_session(session.pk)
    assert result.ran == ["ingest", "summarize"]
    _assert_ingested_from_the_database(recorder, llm)


def test_recover_says_a_journal_gone_from_its_own_host_is_gone(llm: FakeLLMServer, settings: Any) -> None:
    """Nothing spilled, the file removed on the host that wrote it: the reason says so, and does
    not send people to JOURNAL_STORAGE (which could not have helped)."""
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PIPELINE": "inline", "INGEST_ON_SESSION_END": False}
    conf.reload()
    assistant, user = make_agents(llm)
    with ag2_logging_session("c-removed", "wf", "acme") as recorder:
        assert recorder is not None
        user.initiate_chat(assistant, message=CHAT, max_turns=2, silent=True)
    flush()
    recorder.journal_path.unlink()
    with pytest.raises(CommandError, match="could not be recovered"):
        call_command("ag2_logging_recover", "--local", stdout=io.StringIO(), stderr=io.StringIO())
    session = Session.objects.get()
    assert session.ingested_at is None and session.pipeline_failed_at is not None
    assert session.pipeline_error == (
        f"journal {recorder.journal_path} of session {session.pk} is missing on "
        f"{conf.resolved.host_name!r}, the host that wrote it, and its lines are not in the "
        "database either (the journal was removed, or its header was never spilled)"
    )
