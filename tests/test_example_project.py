"""The demo project end to end, as a user runs it: ``manage.py migrate`` then ``manage.py seed_demo``.

Everything runs in subprocesses with ``DJANGO_SETTINGS_MODULE=example_project.settings`` (the test
suite's own settings stay out of it), real AG2 agents (classic `autogen` or `ag2` 1.x, whichever this
virtualenv has: the suite runs in both) and the in-process fake LLM server.
The resulting SQLite file is then read with the stdlib ``sqlite3`` module.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "manage.py"
TIMEOUT = 120

#: Variables of the calling environment that would change what the demo does.
_SCRUBBED_PREFIXES = ("AG2_", "AUTOGEN_", "CELERY_", "DEMO_LLM_")
_SCRUBBED = {
    "DATABASE_URL",
    "LOGS_BASE_DIR",
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
}


def demo_env(run_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED and not key.startswith(_SCRUBBED_PREFIXES)
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=f"sqlite:///{run_dir / 'demo.sqlite3'}",
        LOGS_BASE_DIR=str(run_dir / "logs"),
        AG2_RUNTIME_LOGGING="true",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@dataclass(frozen=True)
class Seeded:
    run_dir: Path
    stdout: str
    #: The runtime log right after seeding (later tests add sessions to the same database).
    runtime_log: str


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    run_dir = tmp_path_factory.mktemp("demo")
    env = demo_env(run_dir)
    run([str(MANAGE), "migrate", "--verbosity", "0"], env)
    proc = run([str(MANAGE), "seed_demo", "--quiet", "--days", "1"], env)
    return Seeded(run_dir, proc.stdout, (run_dir / "logs" / "ag2_runtime.log").read_text())


@pytest.fixture
def demo_db(seeded: Seeded):
    connection = sqlite3.connect(seeded.run_dir / "demo.sqlite3")
    connection.row_factory = sqlite3.Row
    yield connection
    connection.close()


def test_seed_demo_reports_what_it_recorded(seeded: Seeded) -> None:
    assert "Recorded 6 sessions (6 completed, 6 ingested)" in seeded.stdout
    assert "(3 unpriced)" in seeded.stdout
    # A session whose calls are all unpriced is "unknown", never "$0.000000 (3 unpriced)".
    assert "$0.000000 (" not in seeded.stdout
    assert "unknown (3 unpriced)" in seeded.stdout
    assert "superuser demo / demo" in seeded.stdout
    # The logs went where LOGS_BASE_DIR says, not into the source tree.
    assert seeded.runtime_log.count("# AG2 SESSION START:") == 6
    assert seeded.runtime_log.count("# AG2 SESSION END:") == 6
    assert len([p for p in (seeded.run_dir / "logs" / "sessions").rglob("*") if p.is_file()]) >= 6


def test_sessions_completed_and_ingested_for_both_enterprises(demo_db: sqlite3.Connection) -> None:
    rows = demo_db.execute(
        "SELECT enterprise_id, workflow_name, status, ingested_at FROM ag2_logging_session "
        "WHERE enterprise_id IN ('acme', 'globex')"
    ).fetchall()
    assert len(rows) == 6
    assert {row["status"] for row in rows} == {"completed"}
    assert all(row["ingested_at"] is not None for row in rows)
    assert {row["enterprise_id"] for row in rows} == {"acme", "globex"}
    assert {row["workflow_name"] for row in rows} == {"support_triage", "invoice_review", "research_digest"}


def test_llm_call_sums_match_session_totals(demo_db: sqlite3.Connection) -> None:
    fields = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "total_tokens")
    sessions = demo_db.execute(
        f"SELECT id, call_count, unpriced_calls, total_cost, {', '.join(fields)} FROM ag2_logging_session"
    ).fetchall()
    assert sessions
    for session in sessions:
        sums = demo_db.execute(
            f"SELECT COUNT(*) AS n, {', '.join(f'COALESCE(SUM({f}), 0) AS {f}' for f in fields)}, "
            "COALESCE(SUM(cost), 0) AS cost, SUM(price_status = 'unknown') AS unknown "
            "FROM ag2_logging_llmcall WHERE session_id = ?",
            (session["id"],),
        ).fetchone()
        assert sums["n"] == session["call_count"] > 0
        for field in fields:
            assert sums[field] == session[field], (field, dict(session))
        assert (sums["unknown"] or 0) == session["unpriced_calls"]
        if session["unpriced_calls"] and not sums["cost"]:
            assert session["total_cost"] is None  # unknown, never 0
        else:
            assert float(sums["cost"]) == pytest.approx(float(session["total_cost"]), abs=1e-9)


def test_tool_calls_recorded(demo_db: sqlite3.Connection) -> None:
    rows = demo_db.execute(
        "SELECT t.name, t.arguments, t.result_summary, s.enterprise_id FROM ag2_logging_toolcall t "
        "JOIN ag2_logging_session s ON s.id = t.session_id"
    ).fetchall()
    assert len(rows) >= 1
    assert {row["name"] for row in rows} == {"lookup_price"}
    by_sku = {json.loads(row["arguments"])["sku"]: row["result_summary"] for row in rows}
    assert by_sku["SKU-1001"] == "19.99"


def test_unknown_model_is_unpriced_and_known_models_are_priced(demo_db: sqlite3.Connection) -> None:
    unknown = demo_db.execute(
        "SELECT price_status, cost FROM ag2_logging_llmcall WHERE model = 'acme-internal-llm'"
    ).fetchall()
    assert unknown
    assert all(row["price_status"] == "unknown" and row["cost"] is None for row in unknown)
    priced = demo_db.execute(
        "SELECT model, price_status, cost, provider FROM ag2_logging_llmcall WHERE model IN ('gpt-4o', 'gpt-4o-mini')"
    ).fetchall()
    assert {row["model"] for row in priced} == {"gpt-4o", "gpt-4o-mini"}
    assert all(row["price_status"] == "priced" and row["cost"] > 0 for row in priced)
    assert {row["provider"] for row in priced} == {"openai"}


def test_demo_superuser(demo_db: sqlite3.Connection) -> None:
    user = demo_db.execute("SELECT is_staff, is_superuser FROM auth_user WHERE username = 'demo'").fetchone()
    assert user is not None
    assert user["is_staff"] and user["is_superuser"]


def test_demo_views_record_sessions(seeded: Seeded, demo_db: sqlite3.Connection) -> None:
    """The sync and async views, through Django's test client, against a fake LLM server."""
    script = textwrap.dedent(
        """
        import json, os
        from ag2_logging.testing import FakeLLMServer

        with FakeLLMServer() as server:
            os.environ["DEMO_LLM_BASE_URL"] = server.base_url
            import django
            django.setup()
            from django.test import Client
            import ag2_logging

            client = Client()
            out = {
                "sync": client.get("/demo/run/", {"enterprise": "initech", "workflow": "web_sync"}).json(),
                "async": client.post("/demo/run-async/", {"enterprise": "initech", "workflow": "web_async"}).json(),
                "root": client.get("/").status_code,
            }
            # The seeded superuser sees the recorded sessions and calls in the admin.
            assert client.login(username="demo", password="demo")
            out["admin"] = [
                client.get(url).status_code
                for url in ("/admin/ag2_logging/session/", "/admin/ag2_logging/llmcall/")
            ]
            ag2_logging.flush()
        print(json.dumps(out))
        """
    )
    env = demo_env(seeded.run_dir, ALLOWED_HOSTS="testserver")
    proc = run(["-c", script], env)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["root"] == 302
    assert out["admin"] == [200, 200]
    for mode in ("sync", "async"):
        answer = out[mode]
        assert answer["logging_enabled"] is True
        assert answer["totals"]["call_count"] == 3
        assert answer["totals"]["tool_calls"] == 1
        assert answer["last_message"]["name"] == "planner"
        row = demo_db.execute(
            "SELECT status, call_count, total_tokens FROM ag2_logging_session WHERE id = ?",
            (answer["session_id"].replace("-", ""),),
        ).fetchone()
        assert row is not None, answer
        assert row["status"] == "completed"
        assert row["call_count"] == 3
        assert row["total_tokens"] == answer["totals"]["total_tokens"]


def test_manage_py_check_passes(tmp_path: Path) -> None:
    for logging_on in ("true", "false"):
        proc = run([str(MANAGE), "check"], demo_env(tmp_path, AG2_RUNTIME_LOGGING=logging_on))
        assert "System check identified no issues" in proc.stdout, proc.stdout + proc.stderr


def test_seed_demo_runs_the_generation_this_virtualenv_has(seeded: Seeded) -> None:
    from ag2_logging.integrations import classic_available

    assert f"AG2 generation: {'classic' if classic_available() else 'ag2'}" in seeded.stdout


def _demo_sessions(demo_db: sqlite3.Connection) -> list[tuple[str, str, Any]]:
    return [
        (row["chat_id"], row["id"], row["total_cost"])
        for row in demo_db.execute(
            "SELECT chat_id, id, total_cost FROM ag2_logging_session WHERE chat_id LIKE 'demo-%' ORDER BY chat_id"
        )
    ]


def test_seeding_twice_adds_nothing_and_reset_starts_over(
    seeded: Seeded, demo_db: sqlite3.Connection
) -> None:
    first = _demo_sessions(demo_db)
    assert len(first) == 6  # one per workflow, fixed chat ids
    rollup_cost = demo_db.execute("SELECT SUM(cost) AS c FROM ag2_logging_dailyrollup").fetchone()["c"]
    again = run([str(MANAGE), "seed_demo", "--quiet", "--days", "1"], demo_env(seeded.run_dir))
    assert "Already seeded" in again.stdout
    assert _demo_sessions(demo_db) == first  # nothing added, nothing changed
    assert (
        demo_db.execute("SELECT SUM(cost) AS c FROM ag2_logging_dailyrollup").fetchone()["c"] == rollup_cost
    )
    reset = run([str(MANAGE), "seed_demo", "--quiet", "--days", "1", "--reset"], demo_env(seeded.run_dir))
    assert "Reset: deleted the seeded sessions" in reset.stdout
    after = _demo_sessions(demo_db)
    assert [chat for chat, _id, _cost in after] == [chat for chat, _id, _cost in first]
    assert {i for _c, i, _cost in after}.isdisjoint({i for _c, i, _cost in first})  # recorded anew
    assert [cost for *_, cost in after] == [cost for *_, cost in first]  # same costs, not doubled
    cost_after = demo_db.execute("SELECT SUM(cost) AS c FROM ag2_logging_dailyrollup").fetchone()["c"]
    assert cost_after == pytest.approx(rollup_cost)


def test_the_demo_login_page_says_the_user_and_password(seeded: Seeded) -> None:
    script = textwrap.dedent(
        """
        import django
        django.setup()
        from django.test import Client
        print(Client().get("/admin/login/").content.decode())
        """
    )
    page = run(["-c", script], demo_env(seeded.run_dir, ALLOWED_HOSTS="testserver")).stdout
    assert "user <strong>demo</strong>, password <strong>demo</strong>" in page
    assert 'name="password"' in page  # still the admin's login form
