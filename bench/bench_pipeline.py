"""Session end: what leaving ``with ag2_logging_session(...)`` costs the caller, inline vs celery.

Each mode runs in a fresh interpreter on its own SQLite database: sessions of one recorded call
(the hot path's request and response, through the classic logger hook) back to back, a few
milliseconds apart as a busy web process would see them; the figure is the time ``__exit__``
takes (p50 and p99), which includes the journal's fsync and the Session row's final write on the
app's database thread. ``inline`` then runs sanitize, ingest and rollups on the app's pipeline
thread; ``celery`` sanitizes there and sends ``ag2_logging.process_session`` to Redis (no worker
consumes it here; the queue is purged afterwards). The reference is the same session with
``INGEST_ON_SESSION_END`` off: nothing started at session end. The issue's target: inline adds
nothing measurable beyond the journal's fsync, i.e. its p50 within noise of the reference. The
rows "less the journal's fsync" take the time the caller spent in ``fsync(2)`` out of each exit
(timed around ``os.fsync`` on the caller's thread): a pipeline writing to the same disk makes
the fsync itself slower, which those rows show apart from the rest.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from typing import Any

from bench._common import call_args, make_agent, row, run_child, run_dir, setup_django

BROKER = "redis://127.0.0.1:6379/6"
#: Scratch PostgreSQL databases are <prefix>_<mode> (``AG2_BENCH_PIPE_DB``: one per engineer on a
#: shared server).
PIPE_DB = os.environ.get("AG2_BENCH_PIPE_DB", "ag2_bench_pipe")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def child(mode: str, sessions: int) -> dict[str, Any]:
    setup_django()
    from django.conf import settings

    queue = f"ag2-bench-{uuid.uuid4().hex[:8]}"
    if mode == "celery":
        from celery import Celery

        app = Celery("ag2_bench")
        app.conf.update(broker_url=BROKER, task_always_eager=False)
    settings.AG2_LOGGING = {
        **settings.AG2_LOGGING,
        "INGEST_ON_SESSION_END": mode != "off",
        "PIPELINE": "celery" if mode == "celery" else "inline",
        "CELERY_QUEUE": queue,
        "RECOVER_ON_START": False,
    }
    from ag2_logging.conf import conf

    conf.reload()
    from ag2_logging import ag2_logging_session, flush
    from ag2_logging.integrations import classic
    from ag2_logging.models import LLMCall

    ours = classic.install()
    agent = make_agent()
    fsyncs = _time_fsyncs()
    exits: list[float] = []
    # The same exits less the time the caller spent in fsync(2) (the journal's, at its close):
    # what the pipeline adds beyond the fsync, which a disk shared with its writes may slow.
    beyond: list[float] = []
    for i in range(sessions):
        scope = ag2_logging_session(f"bench-{i}", "bench", "acme")
        scope.__enter__()
        args = call_args(agent)
        ours.log_chat_completion(
            args["invocation_id"], args["client_id"], args["wrapper_id"], agent, args["request"],
            args["response"], 0, args["cost"], args["start_time"],
        )  # fmt: skip
        before = len(fsyncs)
        started = time.perf_counter()
        scope.__exit__(None, None, None)
        exits.append(time.perf_counter() - started)
        beyond.append(exits[-1] - sum(fsyncs[before:]))
        time.sleep(0.005)
    flush(timeout=300)
    rows = LLMCall.objects.count()
    if mode == "celery":
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)
    return {
        "p50": statistics.median(exits),
        "p99": _percentile(exits, 0.99),
        "beyond_fsync_p50": statistics.median(beyond),
        "beyond_fsync_p99": _percentile(beyond, 0.99),
        "rows": rows,
        "sessions": sessions,
    }


def _time_fsyncs() -> list[float]:
    """Time every ``os.fsync`` this thread makes from now on (the child's own process only); the
    list the durations go to, in seconds."""
    durations: list[float] = []
    real, caller = os.fsync, threading.get_ident()

    def fsync(fd: Any) -> None:
        started = time.perf_counter()
        try:
            real(fd)
        finally:
            if threading.get_ident() == caller:
                durations.append(time.perf_counter() - started)

    os.fsync = fsync
    return durations


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _measure(root: Any, backend: str, url: str, sessions: int) -> dict[str, dict[str, Any]]:
    return {
        mode: run_child(
            "bench.bench_pipeline", "--child", mode, str(sessions),
            env={"AG2_BENCH_DATABASE_URL": url.format(mode=mode)},
        )
        for mode in ("off", "inline", "celery")
    }  # fmt: skip


def run(quick: bool = False) -> list[dict[str, Any]]:
    from bench.bench_ingest import _pg, _pg_admin_url

    sessions = 30 if quick else 300
    root = run_dir() / "pipeline"
    root.mkdir(parents=True, exist_ok=True)
    base = _pg_admin_url().rsplit("/", 1)[0]
    backends = {
        "SQLite": f"sqlite:///{root}/{{mode}}.sqlite3",
        "PostgreSQL": f"{base}/{PIPE_DB}_{{mode}}",
    }
    rows = []
    for backend, url in backends.items():
        if backend == "PostgreSQL":
            for mode in ("off", "inline", "celery"):
                _pg(f"DROP DATABASE IF EXISTS {PIPE_DB}_{mode}")
                _pg(f"CREATE DATABASE {PIPE_DB}_{mode}")
        try:
            got = _measure(root, backend, url, sessions)
        finally:
            if backend == "PostgreSQL":
                for mode in ("off", "inline", "celery"):
                    _pg(f"DROP DATABASE IF EXISTS {PIPE_DB}_{mode} WITH (FORCE)")
        assert got["inline"]["rows"] == sessions, got  # the inline chain really ran
        assert got["off"]["rows"] == 0 and got["celery"]["rows"] == 0, got
        rows += _rows(backend, got, sessions)
    return rows


def _rows(backend: str, got: dict[str, dict[str, Any]], sessions: int) -> list[dict[str, Any]]:
    ref = got["off"]
    figures = [(stat, f"{stat} ({sessions} sessions)") for stat in ("p50", "p99")]
    figures += [(f"beyond_fsync_{stat}", f"{stat}, less the journal's fsync") for stat in ("p50", "p99")]
    return [
        row(
            f"{backend}: leaving a 1-call session, {mode} pipeline, {label}",
            _ms(got[mode][key]),
            f"{_ms(ref[key])} nothing at session end",
            got[mode][key] / ref[key],
            "",
            None,
        )
        for mode in ("inline", "celery")
        for key, label in figures
    ]


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
