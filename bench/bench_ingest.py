"""Ingest: LLMCall rows per second from journals into PostgreSQL and SQLite.

Journals are made from lines the real recorder wrote for one call (the hot path's ~2 KB request
and ~1 KB response, bodies kept): one journal of 100,000 calls, and 1,000 journals of 100 calls
(one Celery task per session, as in production). Each backend runs in a fresh interpreter on a
scratch database: SQLite in the scratch directory, and a PostgreSQL database ``ag2_bench`` created
on the loopback server (``AG2_BENCH_POSTGRES_URL``, default ``postgres://postgres@127.0.0.1:5432/
postgres``) and dropped afterwards. The reference is Django's ``bulk_create(ignore_conflicts=True)``
of the same rows, 1,000 per batch (what ingest did before it was tuned), timed on 20,000 calls.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench._common import call_args, make_agent, row, run_child, run_dir, setup_django

TARGET_ROWS_PER_S = 20_000
#: The journals ingested together are timed this many times (each from empty tables and a
#: checkpoint); the figure is the median.
BATCHED_RUNS = 3
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
#: The scratch database (``AG2_BENCH_SCRATCH_DB``: engineers sharing one server each take their own).
SCRATCH_DB = os.environ.get("AG2_BENCH_SCRATCH_DB", "ag2_bench")


def _template() -> list[dict[str, Any]]:
    """session_start, llm_call and session_end events exactly as the recorder writes them."""
    import orjson

    from ag2_logging.capture.context import current_session
    from ag2_logging.capture.recorder import SessionRecorder
    from ag2_logging.conf import conf
    from ag2_logging.integrations import classic

    ours = classic.install()
    agent = make_agent()
    recorder = SessionRecorder(settings=conf.resolved, chat_id="bench-ingest", workflow_name="bench")
    token = current_session.set(recorder)
    try:
        args = call_args(agent)
        ours.log_chat_completion(
            args["invocation_id"],
            args["client_id"],
            args["wrapper_id"],
            agent,
            args["request"],
            args["response"],
            0,
            args["cost"],
            args["start_time"],
        )
    finally:
        current_session.reset(token)
    recorder.finish("completed")
    events = [orjson.loads(line) for line in recorder.journal_path.read_bytes().splitlines()]
    assert [e["type"] for e in events] == ["session_start", "llm_call", "session_end"], events
    assert events[1]["request"] and events[1]["response"] and events[1]["cost"]
    return events


def write_journal(path: Path, template: list[dict[str, Any]], calls: int) -> None:
    import orjson

    start, call, end = template
    session_id = str(uuid.uuid4())
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        header = {**start, "id": session_id, "seq": 1}
        header["session"] = {**start["session"], "session_id": session_id, "journal_path": str(path)}
        fh.write(orjson.dumps(header) + b"\n")
        for seq in range(2, calls + 2):
            fh.write(orjson.dumps({**call, "id": str(uuid.uuid4()), "seq": seq}) + b"\n")
        totals = {**end["totals"], "call_count": calls}
        fh.write(orjson.dumps({**end, "id": session_id, "seq": calls + 2, "totals": totals}) + b"\n")


def make_journals(root: Path, quick: bool) -> dict[str, Any]:
    setup_django()
    template = _template()
    big = 5_000 if quick else 100_000
    small_count, small_calls = (20, 100) if quick else (1_000, 100)
    ref = 2_000 if quick else 20_000
    write_journal(root / "one" / "big.jsonl", template, big)
    for i in range(small_count):
        write_journal(root / "many" / f"{i:05d}.jsonl", template, small_calls)
    write_journal(root / "reference" / "ref.jsonl", template, ref)
    return {"big": big, "many": small_count * small_calls, "ref": ref, "sessions": small_count}


# -- the child: one backend ----------------------------------------------------------------------------


def _clear() -> None:
    from django.db import connection

    from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall

    tables = [m._meta.db_table for m in (LLMCall, AgentEvent, ToolCall)] + [Session._meta.db_table]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE " + ", ".join(tables) + " CASCADE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")
    _settle(connection)


def _settle(connection: Any) -> None:
    """Start each timed phase from a clean server: on PostgreSQL a ``CHECKPOINT`` writes out what
    earlier phases (and earlier benchmarks of a full run) left dirty, so a checkpoint they caused
    does not land inside the next phase's timing (a superuser or ``pg_checkpoint`` may run it;
    otherwise the phase starts as it is)."""
    if connection.vendor != "postgresql":
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
    except Exception:  # not allowed for this role: measure anyway
        pass


def _reference(path: Path) -> int:
    """What ingest did before tuning: model instances, then bulk_create in batches of 1,000."""
    from django.db import transaction

    from ag2_logging.capture.journal import read_journal
    from ag2_logging.models import LLMCall, Session
    from ag2_logging.pipeline import ingest

    events = [line.event for line in read_journal(path) if line.event]
    header = events[0]["session"]
    session_id = uuid.UUID(header["session_id"])
    rows = [LLMCall(**ingest._llm_call(e, session_id)) for e in events if e["type"] == "llm_call"]
    with transaction.atomic():
        Session.objects.get_or_create(id=session_id, defaults=ingest._session_fields(header))
        LLMCall.objects.bulk_create(rows, batch_size=1_000, ignore_conflicts=True)
    return len(rows)


def child(root: Path) -> dict[str, Any]:
    setup_django()
    from django.db import connection

    from ag2_logging.models import LLMCall, Session
    from ag2_logging.pipeline.ingest import IngestResult, ingest_journal, ingest_journals

    out: dict[str, Any] = {"vendor": connection.vendor}
    _clear()
    t0 = time.perf_counter()
    rows = _reference(root / "reference" / "ref.jsonl")
    out["reference"] = rows / (time.perf_counter() - t0)

    _clear()
    t0 = time.perf_counter()
    result = ingest_journal(root / "one" / "big.jsonl")
    out["one"] = result.llm_calls / (time.perf_counter() - t0)
    assert LLMCall.objects.count() == result.llm_calls and not result.bad_lines
    session = Session.objects.get()
    assert session.call_count == result.llm_calls and session.status == "completed"

    t0 = time.perf_counter()
    again = ingest_journal(root / "one" / "big.jsonl")
    out["again"] = again.llm_calls / (time.perf_counter() - t0)
    assert LLMCall.objects.count() == result.llm_calls

    _clear()
    paths = sorted((root / "many").glob("*.jsonl"))
    t0 = time.perf_counter()
    total = sum(ingest_journal(p).llm_calls for p in paths)
    out["many"] = total / (time.perf_counter() - t0)
    assert LLMCall.objects.count() == total and Session.objects.count() == len(paths)

    rates = []
    for _ in range(BATCHED_RUNS):
        _clear()
        t0 = time.perf_counter()
        results = ingest_journals(paths)
        total = sum(r.llm_calls for r in results if isinstance(r, IngestResult))
        rates.append(total / (time.perf_counter() - t0))
        assert LLMCall.objects.count() == total
        assert Session.objects.filter(ingested_at__isnull=False).count() == len(paths)
    out["batched"] = statistics.median(rates)
    out["batched_runs"] = rates
    _clear()
    out["load"] = os.getloadavg()[0]
    return out


# -- the parent ----------------------------------------------------------------------------------------


def _pg_admin_url() -> str:
    return os.environ.get("AG2_BENCH_POSTGRES_URL", DEFAULT_PG_URL)


def _pg(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        _pg_admin_url().replace("postgres://", "postgresql://"), autocommit=True, connect_timeout=5
    ) as conn:
        conn.execute(sql)


def _rate(value: float) -> str:
    return f"{value:,.0f} rows/s"


def run(quick: bool = False) -> list[dict[str, Any]]:
    root = run_dir() / "ingest"
    sizes = make_journals(root, quick)
    rows: list[dict[str, Any]] = []
    backends: list[tuple[str, str | None]] = [("SQLite", f"sqlite:///{root / 'ingest.sqlite3'}")]
    try:
        _pg(f"DROP DATABASE IF EXISTS {SCRATCH_DB}")
        _pg(f"CREATE DATABASE {SCRATCH_DB}")
        base = _pg_admin_url().rsplit("/", 1)[0]
        backends.insert(0, ("PostgreSQL", f"{base}/{SCRATCH_DB}"))
    except Exception as exc:  # no server on loopback: say so, measure SQLite anyway
        rows.append(row("Ingest into PostgreSQL", "skipped", str(exc).splitlines()[0][:60], None, "", None))
    try:
        for name, url in backends:
            got = run_child(
                "bench.bench_ingest", "--child", str(root), env={"AG2_BENCH_DATABASE_URL": url or ""}
            )
            target = f">= {TARGET_ROWS_PER_S:,} rows/s" if name == "PostgreSQL" else ""
            ok = got["one"] >= TARGET_ROWS_PER_S if name == "PostgreSQL" else None
            rows.append(
                row(
                    f"Ingest into {name}: one journal, {sizes['big']:,} calls",
                    _rate(got["one"]),
                    f"{_rate(got['reference'])} bulk_create",
                    got["one"] / got["reference"],
                    target,
                    ok,
                )
            )
            rows.append(
                row(
                    f"Ingest into {name}: {sizes['sessions']:,} journals x {sizes['many'] // sizes['sessions']} calls",
                    _rate(got["many"]),
                    f"{_rate(got['reference'])} bulk_create",
                    got["many"] / got["reference"],
                    "",  # the target is about bulk throughput; this one pays a transaction per session
                    None,
                )
            )
            rows.append(
                row(
                    f"Ingest into {name}: {sizes['sessions']:,} journals x "
                    f"{sizes['many'] // sizes['sessions']} calls, together (ingest_journals)",
                    _rate(got["batched"]),
                    f"{_rate(got['many'])} one by one",
                    got["batched"] / got["many"],
                    f">= {TARGET_ROWS_PER_S:,} rows/s" if name == "PostgreSQL" else "",
                    got["batched"] >= TARGET_ROWS_PER_S if name == "PostgreSQL" else None,
                )
            )
            rows.append(
                row(
                    f"Ingest into {name}: the same journal again (idempotent)",
                    _rate(got["again"]),
                    "",
                    None,
                    "",
                    None,
                )
            )
    finally:
        if any(name == "PostgreSQL" for name, _ in backends):
            _pg(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
    return rows


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    print(json.dumps(child(Path(sys.argv[2]))))
