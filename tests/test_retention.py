"""Retention: rows past RETENTION_DAYS and journals past JOURNAL_RETENTION_DAYS go, in batches;
rollups, running sessions and journals not yet ingested stay.

Sessions are recorded for real (``ag2_logging_session``, the recorder's own API, the journal, the
eager ingest and summarize tasks) and then backdated; the rest are inserted directly.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.management import call_command
from django.db.models.signals import pre_delete
from django.utils import timezone

from ag2_logging import ag2_logging_session, flush, tasks
from ag2_logging.conf import conf
from ag2_logging.models import AgentEvent, DailyRollup, LLMCall, Session, SpilledEvent, ToolCall
from ag2_logging.pipeline import retention

pytestmark = pytest.mark.django_db(transaction=True)

DAY = dt.timedelta(days=1)


def configure(settings: Any, **values: Any) -> None:
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, **values}
    conf.reload()


def record(chat_id: str, enterprise_id: str = "acme", calls: int = 2) -> Session:
    """A real session: journal, Session row, then ingest and rollups (eager Celery)."""
    with ag2_logging_session(chat_id, "triage", enterprise_id) as recorder:
        assert recorder is not None
        for n in range(calls):
            recorder.record_llm_call(
                agent_name="assistant",
                provider="openai",
                model="gpt-4o-mini",
                prompt_tokens=100 + n,
                completion_tokens=20,
                started_at=timezone.now(),
            )
        recorder.record_agent_event(agent_name="assistant", name="received_message", data={"n": 1})
        recorder.record_tool_call(agent_name="user", name="add", arguments={"a": 1}, result=3)
    flush()
    assert recorder.session_id is not None
    session = Session.objects.get(pk=recorder.session_id)
    assert session.ingested_at is not None and session.summarized_at is not None
    assert session.llm_calls.count() == calls
    return session


def backdate(session: Session, age: dt.timedelta, *, move_journal: bool = True) -> Path:
    """Make ``session`` (and its rows and journal) look as if it ended ``age`` ago."""
    ended = timezone.now() - age
    started = ended - dt.timedelta(minutes=5)
    Session.objects.filter(pk=session.pk).update(started_at=started, ended_at=ended)
    LLMCall.objects.filter(session=session).update(started_at=started, ended_at=ended)
    AgentEvent.objects.filter(session=session).update(created_at=ended)
    ToolCall.objects.filter(session=session).update(started_at=started, ended_at=ended)
    journal = Path(session.journal_path)
    if move_journal:
        target = conf.resolved.journal_dir / started.strftime("%Y-%m-%d") / journal.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(journal, target)
        Session.objects.filter(pk=session.pk).update(journal_path=str(target))
        journal = target
    return journal


def insert_session(
    age: dt.timedelta, *, status: str = "completed", ingested: bool = True, calls: int = 2, **fields: Any
) -> Session:
    ended = timezone.now() - age
    session = Session.objects.create(
        chat_id=f"direct-{uuid.uuid4().hex[:8]}",
        workflow_name="bulk",
        enterprise_id="acme",
        status=status,
        started_at=ended - dt.timedelta(minutes=1),
        ended_at=None if status == "running" else ended,
        ingested_at=ended if ingested else None,
        summarized_at=ended if ingested else None,
        **fields,
    )
    LLMCall.objects.bulk_create(
        LLMCall(
            id=uuid.uuid4(),
            session=session,
            seq=n,
            model="gpt-4o-mini",
            provider="openai",
            total_tokens=10,
            cost=Decimal("0.001"),
            price_status="priced",
            started_at=ended,
            ended_at=ended,
        )
        for n in range(calls)
    )
    return session


def write_journal(day: dt.date, session_id: uuid.UUID) -> Path:
    path = conf.resolved.journal_dir / day.isoformat() / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"type":"session_start","id":"{session_id}","seq":1}}\n')
    return path


def rollup_table() -> list[tuple[Any, ...]]:
    return sorted(DailyRollup.objects.values_list("day", "enterprise_id", "model", "call_count", "cost"))


def counts() -> dict[str, int]:
    return {
        "sessions": Session.objects.count(),
        "calls": LLMCall.objects.count(),
        "events": AgentEvent.objects.count(),
        "tools": ToolCall.objects.count(),
    }


# -- rows ------------------------------------------------------------------------------------------


def test_rows_past_the_limit_go_with_their_calls_and_rollups_stay(settings: Any) -> None:
    configure(settings, RETENTION_DAYS=30)
    old = record("old", calls=3)
    inside = record("inside")
    recent = record("recent")
    backdate(old, 30 * DAY + dt.timedelta(minutes=1))
    backdate(inside, 30 * DAY - dt.timedelta(hours=1))  # just inside the limit
    running = insert_session(45 * DAY, status="running", ingested=False)
    interrupted = insert_session(45 * DAY, status="interrupted")
    Session.objects.filter(pk=interrupted.pk).update(ended_at=None)  # age from its start
    not_ingested = insert_session(45 * DAY, ingested=False)
    long_ago = timezone.now() - 31 * DAY
    LLMCall.objects.create(id=uuid.uuid4(), model="m", started_at=long_ago, ended_at=long_ago)
    orphan_new = LLMCall.objects.create(id=uuid.uuid4(), model="m", ended_at=timezone.now() - 29 * DAY)
    AgentEvent.objects.create(id=uuid.uuid4(), name="stray", created_at=long_ago)
    ToolCall.objects.create(id=uuid.uuid4(), name="stray", ended_at=long_ago)
    rollups_before = rollup_table()
    assert rollups_before

    result = retention.apply_retention()

    assert set(Session.objects.values_list("pk", flat=True)) == {
        inside.pk,
        recent.pk,
        running.pk,
        not_ingested.pk,
    }
    assert set(LLMCall.objects.values_list("session_id", flat=True)) == {
        inside.pk,
        recent.pk,
        running.pk,
        not_ingested.pk,
        None,
    }
    assert list(LLMCall.objects.unattributed().values_list("pk", flat=True)) == [orphan_new.pk]
    assert not AgentEvent.objects.filter(session__isnull=True).exists()
    assert not ToolCall.objects.filter(session__isnull=True).exists()
    assert set(AgentEvent.objects.values_list("session_id", flat=True)) == {inside.pk, recent.pk}
    assert rollup_table() == rollups_before
    assert (result.sessions, result.llm_calls, result.unattributed_calls) == (2, 3 + 2 + 1, 1)
    assert (result.agent_events, result.tool_calls) == (1 + 1, 1 + 1)
    assert result.not_ingested == 1
    assert result.summarized == 0

    again = retention.apply_retention()  # idempotent
    assert (again.sessions, again.llm_calls, again.agent_events, again.tool_calls) == (0, 0, 0, 0)


def test_lines_spilled_to_the_database_go_with_their_session(settings: Any) -> None:
    configure(settings, RETENTION_DAYS=30)
    old = insert_session(45 * DAY)
    kept = insert_session(1 * DAY)
    for session in (old, kept):
        SpilledEvent.objects.create(session_id=session.pk, seq=2, line='{"type":"llm_call"}')
    # A session whose row was never written (the database was down too) but whose lines are recent.
    SpilledEvent.objects.create(session_id=uuid.uuid4(), seq=1, line='{"type":"session_start"}')
    SpilledEvent.objects.update(created_at=timezone.now() - 45 * DAY)
    fresh = SpilledEvent.objects.create(session_id=uuid.uuid4(), seq=1, line='{"type":"session_start"}')

    result = retention.apply_retention()

    assert set(SpilledEvent.objects.values_list("session_id", flat=True)) == {kept.pk, fresh.session_id}
    assert result.spilled_lines == 2  # the pruned session's line and the old row-less one
    assert retention.apply_retention().spilled_lines == 0


def test_a_session_not_rolled_up_yet_is_rolled_up_before_its_rows_go(settings: Any) -> None:
    configure(settings, RETENTION_DAYS=30)
    session = insert_session(40 * DAY, calls=3)
    Session.objects.filter(pk=session.pk).update(summarized_at=None)
    assert not DailyRollup.objects.exists()

    result = retention.apply_retention()

    assert result.summarized == 1 and result.sessions == 1 and result.llm_calls == 3
    rollup = DailyRollup.objects.get()
    assert (rollup.call_count, rollup.total_tokens, rollup.cost) == (3, 30, Decimal("0.003"))
    assert (rollup.day, rollup.workflow_name) == ((timezone.now() - 40 * DAY).date(), "bulk")


def test_deletes_in_batches_each_in_its_own_transaction(settings: Any) -> None:
    configure(settings, RETENTION_DAYS=30)
    sessions = [insert_session(31 * DAY) for _ in range(7)]
    child = insert_session(1 * DAY, parent=sessions[0])  # a recent child of an old parent
    seen: list[tuple[int, int]] = []

    deleted = 0

    def fail_in_third_batch(sender: Any, instance: Session, **kwargs: Any) -> None:
        nonlocal deleted
        deleted += 1
        if deleted == 7:  # the first session of the third batch of 3
            raise RuntimeError("boom")

    pre_delete.connect(fail_in_third_batch, sender=Session, weak=False)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            Session.objects.older_than(30).ingested().delete_in_batches(3)
    finally:
        pre_delete.disconnect(fail_in_third_batch, sender=Session)
    # The first two batches were committed; the third was rolled back whole.
    assert Session.objects.filter(pk__in=[s.pk for s in sessions]).count() == 1
    assert LLMCall.objects.count() == 1 * 2 + 2

    for _ in range(6):  # as many old sessions as were deleted, to count the batches of a clean run
        insert_session(31 * DAY)
    assert Session.objects.older_than(30).count() == 7

    result = retention.prune_rows(30, batch_size=3, progress=lambda label: lambda d, t: seen.append((d, t)))

    assert result.sessions == 7 and result.llm_calls == 14
    assert result.batches == 3  # 3 + 3 + 1 sessions; no unattributed rows
    assert seen == [(0, 7), (3, 7), (6, 7), (7, 7)]  # no bar for the empty unattributed phases
    child.refresh_from_db()
    assert child.parent_id is None  # SET_NULL: the child outlives its parent


def test_older_than_never_returns_running_sessions() -> None:
    running = insert_session(100 * DAY, status="running")
    finished = insert_session(100 * DAY, status="failed")
    assert list(Session.objects.older_than(30)) == [finished]
    assert running not in Session.objects.older_than(0)


def test_dry_run_deletes_nothing_and_predicts_the_real_run(settings: Any) -> None:
    configure(settings, RETENTION_DAYS=30, JOURNAL_RETENTION_DAYS=30)
    journal = backdate(record("old"), 40 * DAY)
    record("recent")
    insert_session(35 * DAY, calls=4)
    LLMCall.objects.create(id=uuid.uuid4(), model="m", ended_at=timezone.now() - 40 * DAY)
    before, rollups_before = counts(), rollup_table()

    out = io.StringIO()
    call_command("ag2_logging_prune", "--dry-run", stdout=out, stderr=io.StringIO())

    assert counts() == before and rollup_table() == rollups_before and journal.exists()
    text = out.getvalue()
    assert "Would delete 2 sessions, 7 LLM calls (1 unattributed), 1 agent events and 1 tool calls" in text
    assert "Would delete 1 journals of sessions" in text

    dry = retention.apply_retention(dry_run=True)
    real = retention.apply_retention()
    differ = ("dry_run", "batches", "directories", "rows_cutoff", "journals_cutoff")
    assert {k: v for k, v in dry.as_dict().items() if k not in differ} == {
        k: v for k, v in real.as_dict().items() if k not in differ
    }
    assert counts() == {"sessions": 1, "calls": 2, "events": 1, "tools": 1}
    assert not journal.exists() and not journal.parent.exists()


# -- journals --------------------------------------------------------------------------------------


def test_journals_are_archived_to_a_storage_then_deleted(settings: Any, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    settings.STORAGES = {
        **settings.STORAGES,
        "journals": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(archive)},
        },
    }
    configure(settings, JOURNAL_RETENTION_DAYS=7, JOURNAL_ARCHIVE_STORAGE="journals")
    old = record("old")
    old_journal = backdate(old, 10 * DAY)
    content = old_journal.read_bytes()
    inside = record("inside")
    inside_journal = backdate(inside, 7 * DAY - dt.timedelta(hours=1))
    recent_journal = Path(record("recent").journal_path)
    # Never deleted, however old: a running session's journal and one not ingested yet.
    old_day = (timezone.now() - 20 * DAY).date()
    running = insert_session(20 * DAY, status="running", ingested=False)
    running_journal = write_journal(old_day, running.pk)
    pending = insert_session(20 * DAY, ingested=False)
    pending_journal = write_journal(old_day, pending.pk)
    (old_journal.parent / "notes.txt").write_text("not a journal")

    out = io.StringIO()
    call_command("ag2_logging_prune", stdout=out, stderr=io.StringIO())

    day = old_journal.parent.name
    copy = archive / "ag2_logging" / "journals" / day / old_journal.name
    assert copy.read_bytes() == content
    assert not old_journal.exists()
    assert inside_journal.exists() and recent_journal.exists()
    assert running_journal.exists() and pending_journal.exists()
    assert (old_journal.parent / "notes.txt").exists()
    assert "Deleted 1 journals (1 archived first)" in out.getvalue()
    # The journal just inside the limit is looked at (and kept) when its directory is the cutoff's day.
    walked = inside_journal.parent.name <= (timezone.now() - 7 * DAY).date().isoformat()
    assert f"kept {2 + walked} (running, not ingested, or ended later)" in out.getvalue()
    assert LLMCall.objects.filter(session=old).count() == 2  # rows have their own retention (off)

    (old_journal.parent / "notes.txt").unlink()
    again = retention.apply_retention()
    assert (again.journals, again.archived, again.directories) == (0, 0, 1)  # the emptied directory
    assert not old_journal.parent.exists()
    assert [p.name for p in archive.rglob("*.jsonl")] == [old_journal.name]


class FailingStorage(FileSystemStorage):
    def _save(self, name: str, content: Any) -> str:
        raise OSError("bucket unreachable")


def test_a_journal_that_cannot_be_archived_is_kept(settings: Any, tmp_path: Path) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "journals": {"BACKEND": f"{__name__}.FailingStorage", "OPTIONS": {"location": str(tmp_path / "a")}},
    }
    configure(settings, JOURNAL_RETENTION_DAYS=7, JOURNAL_ARCHIVE_STORAGE="journals")
    journal = backdate(record("old"), 10 * DAY)

    result = retention.apply_retention()

    assert (result.journals, result.archived, result.archive_failures) == (0, 0, 1)
    assert journal.exists()


def test_a_journal_whose_row_is_gone_goes_once_past_both_limits(settings: Any) -> None:
    configure(settings, RETENTION_DAYS=30, JOURNAL_RETENTION_DAYS=7)
    now = timezone.now()
    within_rows = write_journal((now - 10 * DAY).date(), uuid.uuid4())  # may still be recovered
    past_both = write_journal((now - 40 * DAY).date(), uuid.uuid4())

    result = retention.apply_retention()

    assert within_rows.exists() and not past_both.exists()
    assert (result.journals, result.journals_kept) == (1, 1)

    configure(settings, RETENTION_DAYS=None, JOURNAL_RETENTION_DAYS=7)  # no row is ever deleted
    kept = write_journal((now - 40 * DAY).date(), uuid.uuid4())
    retention.apply_retention()
    assert kept.exists()


def test_rows_and_journals_with_the_same_limit_leave_no_orphan_journal(settings: Any) -> None:
    configure(settings, RETENTION_DAYS=30, JOURNAL_RETENTION_DAYS=30)
    journal = backdate(record("old"), 31 * DAY)

    result = retention.apply_retention()

    assert (result.sessions, result.journals) == (1, 1)
    assert not journal.exists() and not Session.objects.exists()


# -- command and task ------------------------------------------------------------------------------


def test_prune_says_when_retention_is_off() -> None:
    insert_session(400 * DAY)
    out = io.StringIO()
    call_command("ag2_logging_prune", stdout=out)
    assert "Retention is off" in out.getvalue()
    assert Session.objects.count() == 1


def test_prune_rejects_a_bad_batch_size() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--batch-size"):
        call_command("ag2_logging_prune", "--batch-size", "0")


def test_prune_json_and_the_celery_task(settings: Any) -> None:
    configure(settings, RETENTION_DAYS=30)
    insert_session(31 * DAY)
    out = io.StringIO()
    call_command("ag2_logging_prune", "--dry-run", "--json", stdout=out)
    assert '"sessions": 1' in out.getvalue() and '"dry_run": true' in out.getvalue()

    summary = tasks.apply_retention.delay(batch_size=10).get()
    assert summary["sessions"] == 1 and summary["llm_calls"] == 2 and summary["dry_run"] is False
    assert tasks.apply_retention.name == "ag2_logging.apply_retention"
    assert not Session.objects.exists()


def test_recovery_never_resurrects_pruned_sessions_and_rebuild_keeps_old_days(settings: Any) -> None:
    """Rows past RETENTION_DAYS are gone on purpose: their journals (kept longer) must not be
    ingested again, and a rollup rebuild must not drop the days only the rollups remember."""
    from ag2_logging.pipeline.recovery import recover_sessions
    from ag2_logging.pipeline.rollups import rebuild_rollups

    configure(settings, RETENTION_DAYS=30, JOURNAL_RETENTION_DAYS=None)
    old = record("old", calls=2)
    backdate(old, 40 * DAY)
    DailyRollup.objects.all().delete()
    rebuild_rollups(since=dt.date(2000, 1, 1))  # the old session's day gets its rollup
    new = record("new", calls=3)
    before = sorted(DailyRollup.objects.values_list("day", "call_count"))
    assert sum(n for _, n in before) == 5

    retention.apply_retention()
    assert list(Session.objects.values_list("chat_id", flat=True)) == ["new"]
    assert Path(Session.objects.get().journal_path).exists()

    result = recover_sessions()
    assert result.orphans == []
    assert list(Session.objects.values_list("chat_id", flat=True)) == ["new"]
    assert sorted(DailyRollup.objects.values_list("day", "call_count")) == before

    assert rebuild_rollups() == 1  # only days since the cutoff are recomputed
    assert sorted(DailyRollup.objects.values_list("day", "call_count")) == before
    assert new.llm_calls.count() == 3
