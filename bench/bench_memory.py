"""Memory: RSS growth while one session records 100,000 calls, and across 10,000 short sessions.

Each figure runs in a fresh interpreter (``python -m bench.bench_memory --child ...``): set up,
warm up (first calls fill caches that are meant to stay: pricing plans, AG2's and pydantic's
lazily built validators...), collect garbage, read RSS from /proc, run, collect, read again.

* One session: calls go through AG2 classic's ``log_chat_completion`` into one open session
  (the hot path's request and response). Reference: AG2's ``FileLogger`` on the same calls.
* Short sessions: the whole public scope, ``with ag2_logging_session(...)`` around three LLM
  calls and one agent event, with a real database (SQLite in the scratch directory) so Session
  rows are written by the app's database thread, journals fsynced at session end, bindings made
  and released; ``INGEST_ON_SESSION_END`` is off (ingest is measured on its own, and Celery
  would add its own caches). Reference: the same loop with logging off.
"""

from __future__ import annotations

import gc
import json
import sys
from typing import Any

from bench._common import call_args, make_agent, row, rss_bytes, run_child, run_dir, setup_django

MB = 1024 * 1024


def _calls(logger_kind: str, calls: int) -> int:
    setup_django()
    import os

    from autogen import runtime_logging

    from ag2_logging import ag2_logging_session
    from ag2_logging.integrations import classic

    ours = classic.install()
    if logger_kind == "file":
        from autogen.logger.file_logger import FileLogger

        os.chdir(os.environ["AG2_BENCH_RUN_DIR"])
        runtime_logging.start(logger=FileLogger({"filename": "memory-file-logger.log"}))
    agent = make_agent()
    kwargs = call_args(agent)
    log = runtime_logging.log_chat_completion

    def measure() -> int:
        for _ in range(1_000):
            log(**kwargs)
        gc.collect()
        before = rss_bytes()
        for _ in range(calls):
            log(**kwargs)
        gc.collect()
        return rss_bytes() - before

    if logger_kind == "file":
        return measure()
    with ag2_logging_session("bench-memory", "bench", "acme") as session:
        assert session is not None
        growth = measure()
        assert session.totals.call_count == calls + 1_000
    del ours
    return growth


def _sessions(enabled: bool, sessions: int) -> int:
    setup_django()
    from django.conf import settings
    from django.test import override_settings

    with override_settings(AG2_LOGGING={**settings.AG2_LOGGING, "ENABLED": enabled}):
        from autogen import runtime_logging

        from ag2_logging import ag2_logging_session, flush
        from ag2_logging.capture.context import bindings
        from ag2_logging.integrations import classic

        if enabled:
            classic.install()
        agent = make_agent()
        kwargs = call_args(agent)

        def one(i: int) -> None:
            with ag2_logging_session(f"bench-{i}", "bench", "acme"):
                for _ in range(3):
                    if runtime_logging.logging_enabled():
                        runtime_logging.log_chat_completion(**kwargs)
                if runtime_logging.logging_enabled():
                    runtime_logging.log_event(agent, "received_message", message="hello", sender="user")

        for i in range(min(200, sessions)):
            one(i)
        flush()
        gc.collect()
        before = rss_bytes()
        for i in range(sessions):
            one(i)
        flush()
        gc.collect()
        after = rss_bytes()
        assert len(bindings) == 0
        if enabled:
            from ag2_logging.models import Session

            assert Session.objects.filter(status="completed").count() == sessions + min(200, sessions)
    return after - before


def _mb(value: float) -> str:
    return f"{value / MB:+.2f} MB"


def _child(*args: str) -> int:
    """One figure in a fresh interpreter with a scratch directory (and database) of its own."""
    scratch = run_dir() / "memory" / "-".join(args)
    scratch.mkdir(parents=True, exist_ok=True)
    env = {"AG2_BENCH_RUN_DIR": str(scratch), "AG2_BENCH_DATABASE_URL": f"sqlite:///{scratch / 'db.sqlite3'}"}
    result: int = run_child("bench.bench_memory", "--child", *args, env=env)
    return result


def run(quick: bool = False) -> list[dict[str, Any]]:
    calls = 5_000 if quick else 100_000
    sessions = 100 if quick else 10_000
    ours_calls = _child("calls", "ours", str(calls))
    file_calls = _child("calls", "file", str(calls))
    ours_sessions = _child("sessions", "on", str(sessions))
    off_sessions = _child("sessions", "off", str(sessions))
    return [
        row(
            f"Memory: RSS growth, {calls:,} calls in one session",
            _mb(ours_calls),
            f"{_mb(file_calls)} FileLogger",
            None,
            "< 20 MB",
            ours_calls < 20 * MB,
        ),
        row(
            f"Memory: RSS growth across {sessions:,} sessions",
            _mb(ours_sessions),
            f"{_mb(off_sessions)} logging off",
            None,
            "< 5 MB (flat)",
            ours_sessions < 5 * MB,
        ),
    ]


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    what, kind, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
    print(json.dumps(_calls(kind, count) if what == "calls" else _sessions(kind == "on", count)))
