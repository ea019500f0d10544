"""The post-session chain: modes, order, leases, journal storage, failures that stay visible.

Real classic AG2 chats against the fake LLM server; the chain runs as it does in production
(inline on the app's own thread, or eagerly through Celery as in the rest of the suite).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from ag2_logging import ag2_logging_session, flush
from ag2_logging.conf import conf
from ag2_logging.models import DailyRollup, LLMCall, Session, ToolCall
from ag2_logging.pipeline import chain, handoff, modes, store
from ag2_logging.pipeline.recovery import recover_sessions
from ag2_logging.pipeline.store import JournalUnavailable
from ag2_logging.testing import FakeLLMServer
from tests.report_data import session
from tests.test_classic import assert_calls_match_served, make_agents

pytestmark = pytest.mark.django_db(transaction=True)

TOOL_MESSAGE = '[[tool:add {"a": 2, "b": 3}]] [[marker:p]]'


@pytest.fixture
def inline(settings: Any) -> Any:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PIPELINE": "inline"}
    conf.reload()
    return settings


def run_chat(llm: FakeLLMServer, chat_id: str = "c-p") -> Session:
    assistant, user = make_agents(llm)
    with ag2_logging_session(chat_id, "wf", "acme") as recorder:
        assert recorder is not None
        user.initiate_chat(assistant, message=TOOL_MESSAGE, max_turns=2, silent=True)
    return Session.objects.get(pk=recorder.session_id)


def test_inline_mode_runs_the_whole_chain_off_the_caller_thread(llm: FakeLLMServer, inline: Any) -> None:
    seen: list[str] = []
    original = chain.ingest_step

    def spy(session: Session, **kwargs: Any) -> Any:  # records where ingest runs; does the real work
        seen.append(threading.current_thread().name)
        return original(session, **kwargs)

    chain.ingest_step = spy  # type: ignore[assignment]
    try:
        session = run_chat(llm)
        flush()
    finally:
        chain.ingest_step = original  # type: ignore[assignment]
    assert modes.effective_mode() == "inline"
    assert seen == ["ag2_logging-pipeline"]
    session.refresh_from_db()
    assert session.sanitized_at is not None and session.ingested_at is not None
    assert session.summarized_at is not None
    assert session.sanitized_at <= session.ingested_at <= session.summarized_at  # one ordered chain
    assert_calls_match_served(session, llm)
    assert ToolCall.objects.filter(session=session).count() == 1
    assert DailyRollup.objects.get().call_count == len(llm.successful())
    assert session.recorded_totals is not None
    assert session.recorded_totals["call_count"] == session.call_count
    assert session.lease_owner == "" and session.lease_until is None


def test_rerunning_the_chain_is_harmless(llm: FakeLLMServer, inline: Any) -> None:
    session = run_chat(llm)
    flush()
    before = (LLMCall.objects.count(), DailyRollup.objects.get().call_count)
    again = chain.process_session(session.pk)
    assert again.ran == [] and again.skipped == ""
    assert (LLMCall.objects.count(), DailyRollup.objects.get().call_count) == before


def test_a_held_lease_keeps_a_second_chain_out(llm: FakeLLMServer, inline: Any) -> None:
    session = run_chat(llm)
    flush()
    Session.objects.filter(pk=session.pk).update(ingested_at=None, summarized_at=None)
    with chain.lease(session.pk) as owner:
        assert owner is not None
        result = chain.process_session(session.pk)
        assert result.skipped == "leased by another chain" and result.ran == []
    result = chain.process_session(session.pk)
    assert result.ran == ["ingest", "summarize"]


def test_missing_journal_is_a_visible_failure_not_a_success(llm: FakeLLMServer, inline: Any) -> None:
    inline.AG2_LOGGING = {**inline.AG2_LOGGING, "PIPELINE_MAX_RETRIES": 0}
    conf.reload()
    assistant, user = make_agents(llm)
    with ag2_logging_session("c-gone", "wf", "acme") as recorder:
        assert recorder is not None
        user.initiate_chat(assistant, message=TOOL_MESSAGE, max_turns=2, silent=True)
        journal = Path(recorder.journal_path)
    # The journal vanishes before the chain runs (another host's disk, a wiped volume).
    journal.unlink()
    flush()
    session = Session.objects.get()
    assert session.ingested_at is None and session.summarized_at is None
    assert session.sanitized_at is None  # the sanitize pass never marks a journal it did not read
    assert session.pipeline_failed_at is not None
    # Its own host wrote it: the reason says the file is gone, not that another host lacks it.
    assert f"is missing on {conf.resolved.host_name!r}, the host that wrote it" in session.pipeline_error
    assert "JOURNAL_STORAGE" not in session.pipeline_error and "not on host" not in session.pipeline_error
    assert session.call_count == len(llm.successful())  # what the process counted stays
    assert Session.objects.pipeline_failed().count() == 1
    with pytest.raises(CommandError, match="sessions in the reports"):
        call_command("ag2_logging_doctor", stdout=_Sink())
    with pytest.raises(CommandError, match="could not be recovered"):
        call_command("ag2_logging_recover", stdout=_Sink())


def test_eager_celery_missing_journal_fails_visibly(llm: FakeLLMServer) -> None:
    assert modes.effective_mode() == "celery"  # the suite's Celery app runs tasks eagerly
    assistant, user = make_agents(llm)
    with ag2_logging_session("c-gone2", "wf", "acme") as recorder:
        assert recorder is not None
        user.initiate_chat(assistant, message=TOOL_MESSAGE, max_turns=2, silent=True)
        Path(recorder.journal_path).unlink()
    session = Session.objects.get()
    assert session.ingested_at is None and session.pipeline_failed_at is not None
    assert "is missing on" in session.pipeline_error


def test_journal_published_to_storage_is_ingested_where_the_file_is_absent(
    llm: FakeLLMServer, inline: Any, tmp_path: Path
) -> None:
    inline.STORAGES = {
        **inline.STORAGES,
        "journals": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "shared")},
        },
    }
    inline.AG2_LOGGING = {**inline.AG2_LOGGING, "JOURNAL_STORAGE": "journals"}
    conf.reload()
    session = run_chat(llm)
    flush()
    session.refresh_from_db()
    assert session.journal_published_at is not None
    assert session.journal_published_at >= session.sanitized_at
    published = tmp_path / "shared" / session.journal_storage_name
    assert published.read_bytes() == Path(session.journal_path).read_bytes()
    expected = sorted(LLMCall.objects.values_list("id", "cost", "total_tokens"))

    # Another host: the local file is not there; ingest reads the published copy.
    LLMCall.objects.all().delete()
    Path(session.journal_path).unlink()
    Session.objects.filter(pk=session.pk).update(ingested_at=None)
    result = chain.process_session(session.pk)
    assert result.ran == ["ingest"]
    assert sorted(LLMCall.objects.values_list("id", "cost", "total_tokens")) == expected
    session.refresh_from_db()
    assert_calls_match_served(session, llm)


def test_unreadable_published_copy_raises_a_retryable_error(inline: Any, tmp_path: Path) -> None:
    inline.STORAGES = {
        **inline.STORAGES,
        "journals": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "shared")},
        },
    }
    inline.AG2_LOGGING = {**inline.AG2_LOGGING, "JOURNAL_STORAGE": "journals"}
    conf.reload()
    with pytest.raises(JournalUnavailable, match="cannot be read"):
        with store.local_copy("ag2_logging/journals/2026-01-01/nope.jsonl"):
            pass
    assert store.reachable()[0] is True


def test_storage_reachability_reports_a_broken_backend(settings: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    settings.STORAGES = {
        **settings.STORAGES,
        "journals": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(blocker / "below")},
        },
    }
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "JOURNAL_STORAGE": "journals"}
    conf.reload()
    ok, detail = store.reachable()
    assert ok is False and detail


def test_recovery_finishes_what_the_pipeline_left(llm: FakeLLMServer, inline: Any) -> None:
    inline.AG2_LOGGING = {**inline.AG2_LOGGING, "INGEST_ON_SESSION_END": False}
    conf.reload()
    session = run_chat(llm)
    flush()
    session.refresh_from_db()
    assert session.ingested_at is None
    result = recover_sessions(local=True)
    assert result.ingested == [str(session.pk)]
    session.refresh_from_db()
    assert session.sanitized_at is not None and session.summarized_at is not None
    assert_calls_match_served(session, llm)


def test_doctor_reports_an_inline_pipeline_as_healthy(inline: Any) -> None:
    out = _Sink()
    call_command("ag2_logging_doctor", stdout=out)
    text = out.text()
    assert "pipeline mode: inline" in text
    assert "broker reachable: not used (inline)" in text
    assert "0 finished session(s)" in text


def test_doctor_always_says_whether_logging_is_on_and_which_setting_says_so(
    inline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new user's doctor printed a line only when logging was off; on, it said nothing of it."""
    out = _Sink()
    call_command("ag2_logging_doctor", stdout=out)
    (line,) = [x for x in out.text().splitlines() if "AG2 logging:" in x]
    assert line.endswith("AG2 logging: on (AG2_LOGGING['ENABLED']=True)"), line
    inline.AG2_LOGGING = {k: v for k, v in inline.AG2_LOGGING.items() if k != "ENABLED"}
    monkeypatch.delenv("AUTOGEN_RUNTIME_LOGGING", raising=False)
    monkeypatch.setenv("AG2_RUNTIME_LOGGING", "off")
    conf.reload()
    out = _Sink()
    call_command("ag2_logging_doctor", stdout=out)
    (line,) = [x for x in out.text().splitlines() if "AG2 logging:" in x]
    assert "AG2 logging: off (AG2_RUNTIME_LOGGING='off'): nothing is recorded" in line, line
    monkeypatch.delenv("AG2_RUNTIME_LOGGING")
    conf.reload()
    out = _Sink()
    call_command("ag2_logging_doctor", "--json", stdout=out)
    first = json.loads(out.text())[0]
    assert first["check"] == "AG2 logging" and first["ok"] is None
    assert first["detail"].startswith("off (AG2_RUNTIME_LOGGING is not set; the default is off)")


def test_pipeline_stats_count_retries_then_failure(llm: FakeLLMServer, inline: Any) -> None:
    inline.AG2_LOGGING = {**inline.AG2_LOGGING, "PIPELINE_MAX_RETRIES": 1}
    conf.reload()
    before = dict(handoff.stats)
    assistant, user = make_agents(llm)
    with ag2_logging_session("c-r", "wf", "acme") as recorder:
        assert recorder is not None
        user.initiate_chat(assistant, message=TOOL_MESSAGE, max_turns=2, silent=True)
        Path(recorder.journal_path).unlink()
    flush()
    assert handoff.stats["retries"] == before["retries"] + 1
    session = Session.objects.get()
    assert session.pipeline_failed_at is None  # the retry is scheduled, not yet spent
    assert session.pipeline_attempts == 1
    assert handoff._runner.wait_idle(0.1)  # the retry is not due yet


class _Sink:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str, *args: Any, **kwargs: Any) -> None:
        self.parts.append(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(self.parts)


def test_admin_shows_sessions_missing_from_the_reports(
    llm: FakeLLMServer, inline: Any, admin_client: Any
) -> None:
    inline.AG2_LOGGING = {**inline.AG2_LOGGING, "PIPELINE_MAX_RETRIES": 0}
    conf.reload()
    ok = run_chat(llm, "c-ok")
    flush()
    assistant, user = make_agents(llm)
    with ag2_logging_session("c-lost", "wf", "acme") as recorder:
        assert recorder is not None
        user.initiate_chat(assistant, message=TOOL_MESSAGE, max_turns=2, silent=True)
        Path(recorder.journal_path).unlink()
    flush()
    lost = Session.objects.get(chat_id="c-lost")

    page = admin_client.get("/admin/ag2_logging/session/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "1 finished session(s) are not in the cost reports" in text
    assert "ag2_logging_recover" in text

    failed = admin_client.get("/admin/ag2_logging/session/?pipeline=failed").content.decode()
    assert "c-lost" in failed and "c-ok" not in failed
    in_reports = admin_client.get("/admin/ag2_logging/session/?pipeline=yes").content.decode()
    assert "c-ok" in in_reports and "c-lost" not in in_reports

    detail = admin_client.get(f"/admin/ag2_logging/session/{lost.pk}/change/").content.decode()
    assert "not in the reports" in detail and "is missing on" in detail
    assert (
        "not in the reports"
        not in admin_client.get(f"/admin/ag2_logging/session/{ok.pk}/change/").content.decode()
    )


# -- sessions left out of the reports: every place that shows figures says so ---------------------

_NOW = dt.datetime.now(dt.UTC)
LEFT_OUT = {
    # A session whose chain gave up (its retries spent).
    "failed": {"pipeline_failed_at": _NOW, "pipeline_error": "journal x is missing on 'web1'"},
    # Retrying after an error, ended a minute ago (a new-user trial: the doctor said "ok").
    "retrying": {
        "pipeline_error": "journal x is not on host 'worker1' (written on 'web1') and it has not been "
        "published yet; JOURNAL_STORAGE was read and had no copy of it, try again later " * 3,
        "pipeline_attempts": 3,
    },
    # No error, but still not in the reports long after it ended.
    "pending": {"ended_long_ago": True},
}


def _left_out_session(kind: str) -> Session:
    fields = dict(LEFT_OUT[kind])
    started = _NOW - dt.timedelta(hours=2 if fields.pop("ended_long_ago", False) else 0, minutes=1)
    return session(f"c-{kind}", "acme", "wf", started, **fields)


def _surfaces(admin_client: Any) -> dict[str, str]:
    """What each place that shows figures or health says: the sessions list, a report page, the
    report command's stderr and the doctor."""
    err = _Sink()
    call_command("ag2_logging_report", "day", stdout=_Sink(), stderr=err)
    out = _Sink()
    try:
        call_command("ag2_logging_doctor", stdout=out, stderr=out)
    except CommandError as exc:
        out.write(str(exc))
    return {
        "sessions list": admin_client.get("/admin/ag2_logging/session/").content.decode(),
        "overview": admin_client.get(reverse("admin:ag2_logging_report_overview")).content.decode(),
        "report command": err.text(),
        "doctor": out.text(),
    }


@pytest.mark.parametrize("kind", LEFT_OUT)
def test_every_surface_says_a_session_is_left_out_of_the_reports(kind: str, admin_client: Any) -> None:
    _left_out_session(kind)
    session("c-fine", "acme", "wf", _NOW - dt.timedelta(hours=3), ingested_at=_NOW, summarized_at=_NOW)
    # Just ended, no error: on its way, never a warning.
    session("c-new", "acme", "wf", _NOW - dt.timedelta(seconds=40))
    said = _surfaces(admin_client)
    assert "1 finished session(s) are not in the cost reports" in said["sessions list"]
    assert "1 finished session(s) are not in the cost reports" in said["overview"]
    assert "warning: 1 finished session(s) are not in these figures" in said["report command"]
    doctor = said["doctor"]
    assert "1 finished session(s) not in the reports" in doctor and "problems found" in doctor
    counts = {
        "failed": "1 failed, 0 retrying",
        "retrying": "0 failed, 1 retrying",
        "pending": "0 failed, 0 retrying",
    }
    assert counts[kind] in doctor
    assert "1 more just ended and are on their way" in doctor
    # The filter the banner points to lists it (failed under "failed", the others under "pending").
    choice = "failed" if kind == "failed" else "pending"
    listed = admin_client.get(f"/admin/ag2_logging/session/?pipeline={choice}").content.decode()
    assert f"c-{kind}" in listed and "c-new" not in listed and "c-fine" not in listed
    if kind == "retrying":  # a long reason is cut at a word's end, never mid-word
        reason = str(LEFT_OUT["retrying"]["pipeline_error"])
        shown = doctor.split("e.g. ", 1)[1].split(" \u2026", 1)[0]
        assert reason.startswith(shown) and reason[len(shown)] == " " and len(shown) <= 300


def test_nothing_is_said_while_every_finished_session_is_in_the_reports(admin_client: Any) -> None:
    session("c-fine", "acme", "wf", _NOW - dt.timedelta(hours=3), ingested_at=_NOW, summarized_at=_NOW)
    session("c-new", "acme", "wf", _NOW - dt.timedelta(seconds=40))
    said = _surfaces(admin_client)
    for place in ("sessions list", "overview"):
        assert "not in the cost reports" not in said[place], place
    assert said["report command"] == ""
    assert "0 finished session(s) not in the reports" in said["doctor"]
