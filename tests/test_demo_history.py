"""The demo's 60 days of history (``seed_demo``, ``example_project.demo.history``).

The schedule is checked as data; then ``manage.py seed_demo`` runs as ``make demo`` runs it (a
subprocess with the demo's settings, real AG2 agents, the in-process fake LLM server) and the
SQLite file is read back: 60 distinct days in the daily rollup, back-dated sessions recorded by
the app itself (their journals in their day's folder, their calls at their time, ingested), and a
second run adds nothing.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from example_project.demo.history import (
    BURST_FAILURES,
    HISTORY_PREFIX,
    SWITCH_DAYS_AGO,
    schedule,
)
from tests.test_example_project import MANAGE, ROOT, demo_env

TODAY = dt.date(2026, 12, 1)  # a Tuesday


def test_schedule_has_a_weekly_rhythm_a_switch_a_burst_and_an_unpriced_model() -> None:
    sessions = schedule(TODAY, 60)
    days = {s.at.date() for s in sessions}
    assert len(days) == 59  # today's sessions are seed_demo's own
    assert min(days) == TODAY - dt.timedelta(days=59)
    assert max(days) == TODAY - dt.timedelta(days=1)
    per_day = Counter(s.at.date() for s in sessions if s.fail is None)
    assert {n for day, n in per_day.items() if day.weekday() >= 5} == {1}
    assert {n for day, n in per_day.items() if day.weekday() < 5} == {3, 4}
    assert {s.enterprise for s in sessions} == {"acme", "globex", "initech"}
    assert {s.workflow for s in sessions} == {"support_triage", "invoice_review", "research_digest"}

    acme = [s for s in sessions if (s.enterprise, s.workflow) == ("acme", "support_triage")]
    switch = TODAY - dt.timedelta(days=SWITCH_DAYS_AGO)
    assert {s.model for s in acme if s.at.date() <= switch} == {"gpt-4o"}
    assert {s.model for s in acme if s.at.date() > switch} == {"gpt-4o-mini"}

    failing = [s for s in sessions if s.fail is not None]
    assert len(failing) == BURST_FAILURES
    assert len({s.at.date() for s in failing}) == 1
    assert "acme-internal-llm" in {s.model for s in sessions}
    assert len({s.chat_id for s in sessions}) == len(sessions)  # what idempotency keys on
    assert all(s.chat_id.startswith(HISTORY_PREFIX) for s in sessions)
    assert schedule(TODAY, 60) == sessions  # deterministic
    assert schedule(TODAY, 1) == []


def _seed(run_dir: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(MANAGE), "seed_demo", "--quiet"],
        cwd=ROOT,
        env=demo_env(run_dir),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"seed_demo failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _counts(db: sqlite3.Connection) -> tuple[object, ...]:
    return db.execute(
        "SELECT (SELECT COUNT(*) FROM ag2_logging_session), (SELECT COUNT(*) FROM ag2_logging_llmcall), "
        "(SELECT COUNT(*) FROM ag2_logging_toolcall), (SELECT COUNT(*) FROM ag2_logging_agentevent), "
        "(SELECT SUM(call_count) FROM ag2_logging_dailyrollup), (SELECT SUM(cost) FROM ag2_logging_dailyrollup)"
    ).fetchone()


def test_seed_gives_60_days_and_a_second_run_adds_nothing(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(MANAGE), "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=demo_env(tmp_path),
        check=True,
        timeout=120,
    )
    first = _seed(tmp_path)
    assert "History: " in first.stdout
    # --quiet: AG2's per-call "The cost will be 0" for the demo's unpriced model is not repeated
    # (the app records those calls with an unknown cost and says so once).
    assert "The cost will be 0" not in first.stdout + first.stderr
    assert "No price for model 'acme-internal-llm'" in first.stderr
    db = sqlite3.connect(tmp_path / "demo.sqlite3")
    try:
        today = dt.datetime.now(dt.UTC).date()
        days = [row[0] for row in db.execute("SELECT DISTINCT day FROM ag2_logging_dailyrollup ORDER BY day")]
        assert len(days) == 60
        assert days[0] == (today - dt.timedelta(days=59)).isoformat()
        assert days[-1] == today.isoformat()

        # Recorded by the app, as live sessions are: each back-dated session finished and was
        # ingested, its journal is in its day's folder, its calls happened on its day.
        rows = db.execute(
            "SELECT id, chat_id, started_at, status, ingested_at, journal_path FROM ag2_logging_session "
            "WHERE chat_id LIKE ?",
            (HISTORY_PREFIX + "%",),
        ).fetchall()
        planned = schedule(today, 60)
        assert {row[1] for row in rows} == {s.chat_id for s in planned}
        for _id, chat_id, started_at, _status, ingested_at, journal in rows:
            day = chat_id.removeprefix(HISTORY_PREFIX)[:10]
            assert started_at.startswith(day)
            assert ingested_at is not None
            assert f"/{day}/" in journal and Path(journal).exists(), journal
        # The error burst: each of its sessions' calls failed (classic AG2 raises and the session
        # fails; ag2 1.x records the failed call and ends the run).
        burst = db.execute(
            "SELECT COUNT(*) FROM ag2_logging_session WHERE chat_id LIKE ? AND (status = 'failed' OR error_count > 0)",
            (HISTORY_PREFIX + "%",),
        ).fetchone()[0]
        assert burst == BURST_FAILURES
        off_day = db.execute(
            "SELECT COUNT(*) FROM ag2_logging_llmcall c JOIN ag2_logging_session s ON s.id = c.session_id "
            "WHERE s.chat_id LIKE ? AND substr(c.started_at, 1, 10) != substr(s.started_at, 1, 10)",
            (HISTORY_PREFIX + "%",),
        ).fetchone()[0]
        assert off_day == 0
        # The model switch, the error burst and the unpriced model are in the rollups.
        models = dict(
            db.execute(
                "SELECT model, MIN(day) FROM ag2_logging_dailyrollup WHERE enterprise_id = 'acme' "
                "AND workflow_name = 'support_triage' GROUP BY model"
            ).fetchall()
        )
        assert set(models) == {"gpt-4o", "gpt-4o-mini"}
        assert (
            db.execute(
                "SELECT COUNT(DISTINCT day) FROM ag2_logging_dailyrollup WHERE error_count > 0"
            ).fetchone()[0]
            == 1
        )
        unpriced_days = db.execute(
            "SELECT COUNT(DISTINCT day) FROM ag2_logging_dailyrollup WHERE unpriced_calls > 0"
        ).fetchone()[0]
        assert unpriced_days >= 8

        before = _counts(db)
        again = _seed(tmp_path)
        assert "Already seeded" in again.stdout
        assert _counts(db) == before
    finally:
        db.close()


@pytest.mark.parametrize("days", ["0", "-3"])
def test_days_must_be_positive(tmp_path: Path, days: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(MANAGE), "seed_demo", "--quiet", f"--days={days}"],
        cwd=ROOT,
        env=demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "--days must be 1 or more" in proc.stderr
