"""Callers first: the pipeline thread gives way to the database thread, whose row writes a caller
leaving ``with ag2_logging_session(...)`` waits for (``ag2_logging.pipeline.db``)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from concurrent.futures import Future

import pytest
from django.db import close_old_connections, connection

from ag2_logging import ag2_logging_session, flush
from ag2_logging.capture import db_thread
from ag2_logging.models import Session
from ag2_logging.pipeline import db as db_habits
from tests.support import in_fork

pytestmark = pytest.mark.django_db(transaction=True)


def _blocked_db_job() -> tuple[threading.Event, Future[None], list[str]]:
    """A job on the database thread that runs until the returned event is set."""
    release = threading.Event()
    order: list[str] = []

    def job() -> None:
        release.wait(30)
        order.append("database thread done")

    return release, db_thread.submit_db(job), order


def _in_thread(name: str, fn) -> threading.Thread:  # type: ignore[no-untyped-def]
    thread = threading.Thread(target=fn, name=name, daemon=True)
    thread.start()
    return thread


def test_the_pipeline_thread_waits_while_the_database_thread_has_work() -> None:
    release, future, order = _blocked_db_job()

    def pipeline() -> None:
        db_habits.give_way(timeout=30)
        order.append("pipeline went on")

    thread = _in_thread("ag2_logging-pipeline", pipeline)
    thread.join(0.3)
    assert thread.is_alive() and order == []  # still waiting for the database thread
    release.set()
    future.result(timeout=30)
    thread.join(30)
    assert order == ["database thread done", "pipeline went on"]


def test_each_query_of_the_pipeline_gives_way_outside_a_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_habits, "GIVE_WAY_SECONDS", 30.0)
    release, future, order = _blocked_db_job()

    def pipeline() -> None:
        try:
            with db_habits.give_way_before_queries():
                Session.objects.count()
                order.append("query ran")
        finally:
            close_old_connections()

    # Give the job time to be queued before the thread queries (it is queued at once: submit_db
    # counts it before returning).
    thread = _in_thread("ag2_logging-pipeline", pipeline)
    thread.join(0.3)
    assert thread.is_alive() and order == []
    release.set()
    future.result(timeout=30)
    thread.join(30)
    assert order == ["database thread done", "query ran"]


def test_the_database_thread_itself_never_waits_for_its_own_jobs() -> None:
    """Celery's eager mode runs a session's whole chain on the database thread, inside the job
    that saved the row: giving way there would wait for itself."""

    def job() -> None:
        db_habits.give_way(timeout=30)

    started = time.monotonic()
    db_thread.submit_db(job).result(timeout=10)
    assert time.monotonic() - started < 10


def test_a_job_that_never_ran_is_not_left_counted() -> None:
    flush()
    assert db_habits._callers == 0
    with ag2_logging_session("callers-first", "wf", "acme"):
        pass
    flush()
    assert db_habits._callers == 0
    assert Session.objects.filter(chat_id="callers-first").count() == 1


def test_a_job_cancelled_before_it_ran_is_not_left_counted() -> None:
    """A task awaiting ``asyncio.wrap_future`` of a job and then cancelled cancels the job; had
    it stayed counted, the pipeline would wait before every query for the rest of the process."""
    release, held, _ = _blocked_db_job()
    try:
        queued = db_thread.submit_db(lambda: None)
        assert db_habits._callers == 2
        assert queued.cancel()
        assert db_habits._callers == 1
    finally:
        release.set()
        held.result(timeout=30)
    flush()
    assert db_habits._callers == 0
    started = time.monotonic()
    db_habits.give_way(timeout=5)
    assert time.monotonic() - started < 1.0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_forked_child_does_not_wait_for_its_parents_queued_jobs() -> None:
    """A Celery prefork child or a gunicorn worker forked while the parent's database thread had
    work: the child has no such thread, so it must not give way to the parent's jobs."""
    release, held, _ = _blocked_db_job()
    try:
        assert db_habits._callers == 1

        def child() -> str:
            started = time.monotonic()
            db_habits.give_way(timeout=5)
            return f"{db_habits._callers} {time.monotonic() - started:.3f}"

        report = in_fork(child)
        callers, waited = report.split()
        assert callers == "0", report
        assert float(waited) < 1.0, report  # it did not wait out the 5 s
        assert db_habits._callers == 1  # the parent still counts its own job
    finally:
        release.set()
        held.result(timeout=30)
    assert db_habits._callers == 0


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite's single write lock (other databases lock rows)"
)
def test_a_row_write_takes_sqlites_lock_as_soon_as_another_writer_lets_go() -> None:
    """With SQLite's busy handler, a waiting writer sleeps in steps of up to 100 ms; the database
    thread's row writes poll instead, and leave the connection's busy timeout as they found it."""
    connection.ensure_connection()
    holder = sqlite3.connect(connection.settings_dict["NAME"], timeout=30)  # the test database's file
    holder.execute("BEGIN IMMEDIATE")
    attempts: list[int] = []
    seen_timeouts: list[int] = []

    @db_habits.take_lock_promptly
    def write() -> None:
        attempts.append(1)
        seen_timeouts.append(connection.connection.execute("PRAGMA busy_timeout").fetchone()[0])
        Session.objects.filter(chat_id="nobody").update(workflow_name="x")

    def run() -> None:
        try:
            write()
        finally:
            close_old_connections()

    thread = _in_thread("ag2_logging-db-test", run)
    thread.join(0.3)
    assert thread.is_alive()  # waiting for the lock, not failed
    holder.rollback()
    holder.close()
    thread.join(30)
    assert not thread.is_alive()
    assert len(attempts) > 1  # it tried while the lock was held, then got it
    assert set(seen_timeouts) == {0}  # SQLite's own sleeping handler was off meanwhile

    # Left as configured for the connection's next user.
    expected = int(float(connection.settings_dict["OPTIONS"].get("timeout", 5)) * 1000)

    def after() -> None:
        try:
            write()
            seen_timeouts.append(connection.connection.execute("PRAGMA busy_timeout").fetchone()[0])
        finally:
            close_old_connections()

    thread = _in_thread("ag2_logging-db-test", after)
    thread.join(30)
    assert seen_timeouts[-1] == expected


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's synchronous pragma")
def test_the_pipeline_threads_commits_skip_the_wal_flush_and_no_one_elses_do() -> None:
    got: dict[str, int] = {}

    def read(name: str) -> None:
        try:
            connection.ensure_connection()
            mode = connection.connection.execute("PRAGMA journal_mode").fetchone()[0]
            got[name] = connection.connection.execute("PRAGMA synchronous").fetchone()[0]
            got[name + " mode"] = mode
        finally:
            connection.close()

    for name in ("ag2_logging-pipeline", "ag2_logging-db_0", "a project thread"):
        _in_thread(name, lambda name=name: read(name)).join(30)  # type: ignore[misc]
    assert got["ag2_logging-pipeline mode"] == "wal"  # the test settings' init_command
    assert got["ag2_logging-pipeline"] == 1  # NORMAL
    assert got["ag2_logging-db_0"] == 2  # FULL, SQLite's default
    assert got["a project thread"] == 2


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's busy timeout")
def test_a_chain_started_by_a_row_write_waits_for_sqlites_lock_as_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Celery's eager mode runs the session's chain on the database thread, right after the row
    write: that chain's writes must wait for a taken lock (busy timeout as configured), not fail
    at once with "database is locked" as they did inside the row write's polling."""
    from ag2_logging.pipeline import handoff

    seen: list[int] = []

    def chain(session_id: object) -> None:
        seen.append(connection.connection.execute("PRAGMA busy_timeout").fetchone()[0])

    monkeypatch.setattr(handoff, "session_ended", chain)
    with ag2_logging_session("chain-timeout", "wf", "acme"):
        pass
    flush()
    expected = int(float(connection.settings_dict["OPTIONS"].get("timeout", 5)) * 1000)
    assert seen == [expected]
