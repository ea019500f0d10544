"""Rollups equal a rebuild after any interleaving of ingest, summarize, reprice and retention.

Real OS processes (``python -c``, ``DJANGO_SETTINGS_MODULE=tests.settings``, this test's database)
ingest and summarize generated journals while another reprices, with a price override added
mid-way, and another applies row retention. At the end every rollup row must equal, cent for
cent, what ``rebuild_rollups()`` computes from the raw rows.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.db import connection
from django.db.models import Sum

from ag2_logging import pricing
from ag2_logging.models import DailyRollup, LLMCall, ModelDayRollup, ModelPrice, Session

pytestmark = pytest.mark.django_db(transaction=True)

JOURNALS = 6
CALLS = 200
RETENTION_DAYS = 30
OVERRIDE_MODEL = "gpt-4o-mini"
#: (model, provider): a priced model, the one the override changes, one no price list knows.
MODELS = [("gpt-4o", "openai"), (OVERRIDE_MODEL, "openai"), ("acme-internal-llm", "openai")]
CHILD_TIMEOUT = 240.0
SUMMARIZED_FIELDS = (
    "day",
    "enterprise_id",
    "workflow_name",
    "model",
    "agent_name",
    "provider",
    "call_count",
    "error_count",
    "retry_count",
    "unpriced_calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost",
    "latency_ms_sum",
)
MODEL_FIELDS = (
    "day",
    "enterprise_id",
    "workflow_name",
    "model",
    "provider",
    "session_count",
    "latency_count",
    "latency_buckets",
)


# -- journals in the recorder's format ---------------------------------------------------------


def _call_event(rng: random.Random, seq: int, ended: dt.datetime) -> dict[str, Any]:
    model, provider = MODELS[rng.randrange(len(MODELS))]
    prompt, completion = rng.randrange(50, 5_000), rng.randrange(10, 800)
    cached, reasoning = rng.randrange(0, prompt // 2), rng.randrange(0, completion // 3)
    error = "RateLimitError: slow down" if rng.random() < 0.05 else ""
    is_cached = not error and rng.random() < 0.05
    usage = pricing.NormalizedUsage(
        prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached, reasoning_tokens=reasoning
    )
    cost = Decimal(0) if error or is_cached else pricing.price_call(provider, model, usage, at=ended).cost
    latency = rng.lognormvariate(7, 1.0)
    started = ended - dt.timedelta(milliseconds=latency)
    return {
        "type": "llm_call",
        "id": str(uuid.uuid4()),
        "ts": ended.isoformat(),
        "generation": "classic",
        "invocation_id": str(uuid.uuid4()),
        "agent_name": rng.choice(["assistant", "critic"]),
        "provider": provider,
        "model": model,
        "response_id": f"chatcmpl-{seq}",
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": cached,
        "cache_write_tokens": 0,
        "reasoning_tokens": reasoning,
        "total_tokens": prompt + completion,
        "cost": str(cost) if cost is not None else None,
        "price_status": "priced" if cost is not None else "unknown",
        "ag2_cost": None,
        "latency_ms": latency,
        "is_cached": is_cached,
        "status": "error" if error else "success",
        "error": error,
        "attempt": 1,
        "retries": rng.randrange(3) if error else 0,
        "started_at": started.isoformat(),
        "ended_at": ended.isoformat(),
        "request": {"model": model, "messages": [{"role": "user", "content": f"call {seq}"}]},
        "response": None,
        "seq": seq,
    }


def write_journal(directory: Path, index: int, started: dt.datetime, rng: random.Random) -> Path:
    """One session's journal: header, ``CALLS`` calls a few minutes apart, closing line."""
    session_id = str(uuid.uuid4())
    header = {
        "session_id": session_id,
        "chat_id": f"chat-{index}",
        "workflow_name": f"wf-{index % 2}",
        "enterprise_id": f"ent-{index % 3}",
        "parent_id": None,
        "started_at": started.isoformat(),
        "host": "test-host",
        "pid": 1,
        "journal_path": "",
    }
    path = directory / started.strftime("%Y-%m-%d") / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    header["journal_path"] = str(path)
    events: list[dict[str, Any]] = [
        {"type": "session_start", "id": session_id, "ts": started.isoformat(), "session": header, "seq": 1}
    ]
    ended = started
    for seq in range(2, CALLS + 2):
        ended += dt.timedelta(seconds=rng.randrange(30, 600))  # long sessions cross midnight
        events.append(_call_event(rng, seq, ended))
    events.append(
        {
            "type": "session_end",
            "id": session_id,
            "ts": ended.isoformat(),
            "status": "completed",
            "error": "",
            "ended_at": ended.isoformat(),
            "totals": {"dropped_events": 0, "redactions": {}},
            "seq": CALLS + 2,
        }
    )
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


# -- what the child processes do -----------------------------------------------------------------


def _deadline() -> float:
    return time.monotonic() + CHILD_TIMEOUT - 30


def _all_summarized(expected: int) -> bool:
    # Every session rolled up (pruned ones were rolled up by retention before their rows went).
    rolled = DailyRollup.objects.aggregate(n=Sum("call_count"))["n"] or 0
    return rolled >= expected * CALLS


def ingest_worker(paths: list[str]) -> None:
    from ag2_logging.pipeline.ingest import ingest_journal
    from ag2_logging.pipeline.rollups import summarize_session

    rng = random.Random(len(paths))
    for path in paths:
        result = ingest_journal(path)
        assert result.session_id is not None and result.llm_calls == CALLS, result
        # Ingested but not yet rolled up for a while, as when summarize is a task of its own:
        # the moment reprice and summarize race.
        time.sleep(rng.uniform(0, 0.5))
        summarize_session(result.session_id)
    # A re-delivered task adds nothing. (Not the pruned session's journal: keeping a journal past
    # row retention from being ingested again is the pipeline's job, not ingest_journal's.)
    ingest_journal(paths[-1])


def summarize_worker(expected: int) -> None:
    """Summarizes what is left several sessions at a time (``summarize_sessions``, as the inline
    pipeline and recovery do), beside the ingest workers that summarize one at a time."""
    from ag2_logging.pipeline.rollups import summarize_sessions

    deadline = _deadline()
    while time.monotonic() < deadline and not _all_summarized(expected):
        left = list(Session.objects.filter(summarized_at__isnull=True).values_list("pk", flat=True))
        for start in range(0, len(left), 3):
            summarize_sessions(left[start : start + 3])
        time.sleep(0.01)


def reprice_worker(expected: int) -> None:
    from ag2_logging.pipeline.reprice import reprice
    from ag2_logging.pricing import cache as price_overrides

    deadline = _deadline()
    added = False
    while time.monotonic() < deadline:
        done = _all_summarized(expected)
        if not added and LLMCall.objects.count() >= expected * CALLS // 3:
            ModelPrice.objects.create(
                provider="openai",
                model=OVERRIDE_MODEL,
                input_per_mtok=Decimal("1.10"),
                cached_input_per_mtok=Decimal("0.30"),
                output_per_mtok=Decimal("4.70"),
            )
            price_overrides.invalidate()
            added = True
        reprice(batch_size=37)
        if done and added:
            return
    raise AssertionError("reprice worker timed out")


def retention_worker(expected: int) -> None:
    from ag2_logging.pipeline.retention import prune_rows

    deadline = _deadline()
    while time.monotonic() < deadline:
        done = _all_summarized(expected)
        prune_rows(RETENTION_DAYS, batch_size=2)
        # Sessions locked by a repricing batch are skipped (SKIP LOCKED): go on until it is gone.
        if done and not Session.objects.older_than(RETENTION_DAYS).exists():
            return
        time.sleep(0.05)
    raise AssertionError("retention worker timed out")


WORKERS = {
    "ingest": ingest_worker,
    "summarize": summarize_worker,
    "reprice": reprice_worker,
    "retention": retention_worker,
}


def main(role: str, argument: str) -> None:
    """Entry point of a child process (``django.setup()`` done by the caller)."""
    WORKERS[role](json.loads(argument))


CHILD = (
    "import sys, django; django.setup(); "
    "from tests.test_rollup_interleaving import main; main(sys.argv[1], sys.argv[2])"
)


# -- the test ------------------------------------------------------------------------------------


def rollup_tables() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Both rollup tables, sorted. Latency sums are floats added up in another order by a
    rebuild than by summarize: they are rounded to a microsecond (money is compared exactly)."""
    daily = sorted(
        (*row[:-1], round(row[-1], 3)) for row in DailyRollup.objects.values_list(*SUMMARIZED_FIELDS)
    )
    models = sorted(ModelDayRollup.objects.values_list(*MODEL_FIELDS))
    return daily, models


def override_cost(call: LLMCall) -> Decimal:
    """The override's price for a call, by hand (prompt includes cached tokens)."""
    uncached = call.prompt_tokens - call.cached_tokens
    return (
        uncached * Decimal("1.10")
        + call.cached_tokens * Decimal("0.30")
        + call.completion_tokens * Decimal("4.70")
    ) / Decimal(1_000_000)


def test_rollups_equal_a_rebuild_after_interleaved_ingest_summarize_reprice_and_retention(
    tmp_path: Path, settings: Any
) -> None:
    from ag2_logging.conf import conf
    from ag2_logging.pipeline.reprice import reprice
    from ag2_logging.pipeline.rollups import rebuild_rollups
    from tests.support import REPO, child_env

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "RETENTION_DAYS": RETENTION_DAYS}
    conf.reload()
    rng = random.Random(20260131)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    starts = [now - dt.timedelta(days=40)] + [
        now - dt.timedelta(days=i % 3, hours=20 + i) for i in range(1, JOURNALS)
    ]
    paths = [str(write_journal(tmp_path / "journals", i, start, rng)) for i, start in enumerate(starts)]
    shares = [paths[0::3], paths[1::3], paths[2::3]]
    jobs = [("ingest", share) for share in shares]
    jobs += [("summarize", JOURNALS), ("reprice", JOURNALS), ("retention", JOURNALS)]
    env = child_env(tmp_path)
    children = [
        (
            role,
            subprocess.Popen(
                [sys.executable, "-c", CHILD, role, json.dumps(argument)],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
        for role, argument in jobs
    ]
    failures = []
    for role, child in children:
        output, _ = child.communicate(timeout=CHILD_TIMEOUT)
        if child.returncode != 0:
            failures.append(f"{role} exited with {child.returncode}:\n{output[-4000:]}")
    assert failures == []

    # Retention took the 40-day-old session (after rolling it up); the others are all rolled up.
    assert Session.objects.count() == JOURNALS - 1
    assert not Session.objects.filter(summarized_at__isnull=True).exists()
    assert LLMCall.objects.count() == (JOURNALS - 1) * CALLS
    daily, models = rollup_tables()
    assert sum(row[6] for row in daily) == JOURNALS * CALLS  # every call rolled up once, pruned ones too
    assert sum(row[5] for row in models) >= JOURNALS  # each session counted once per model it used

    rebuild_rollups()
    rebuilt_daily, rebuilt_models = rollup_tables()
    assert [r for r in daily if r not in rebuilt_daily] == [r for r in rebuilt_daily if r not in daily]
    assert (rebuilt_daily, rebuilt_models) == (daily, models)

    # A second reprice converges: every call of the overridden model has the override's price,
    # and the rollups still equal a rebuild.
    again = reprice()
    overridden = LLMCall.objects.filter(model=OVERRIDE_MODEL, status="success", is_cached=False)
    assert overridden.exists()
    for call in overridden:
        assert (call.cost, call.price_status) == (override_cost(call), "override")
    assert reprice().changed == 0
    after = rollup_tables()
    rebuild_rollups()
    assert rollup_tables() == after
    assert again.examined > 0


def test_a_session_summarized_while_a_batch_is_repriced_is_rolled_up_at_the_new_price(
    tmp_path: Path,
) -> None:
    """The race itself, made certain: ``summarize_session`` runs (on its own connection) while
    reprice is pricing a batch of that session's calls. It must either see the new prices or
    have its rollups moved by the difference; a second reprice must leave nothing to correct."""
    from ag2_logging.pipeline import reprice as repricing
    from ag2_logging.pipeline.ingest import ingest_journal
    from ag2_logging.pipeline.rollups import rebuild_rollups, summarize_session
    from ag2_logging.pricing import cache as price_overrides

    path = write_journal(tmp_path, 0, dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), random.Random(5))
    session_id = ingest_journal(path).session_id
    ModelPrice.objects.create(
        provider="openai", model=OVERRIDE_MODEL, input_per_mtok=Decimal("1.10"),
        cached_input_per_mtok=Decimal("0.30"), output_per_mtok=Decimal("4.70"),
    )  # fmt: skip
    price_overrides.invalidate()
    threads: list[threading.Thread] = []
    real_price_of = repricing.price_of

    def summarize_meanwhile() -> None:
        try:
            summarize_session(session_id)  # type: ignore[arg-type]
        finally:
            connection.close()

    def price_of(*args: Any) -> Any:
        if not threads:
            threads.append(threading.Thread(target=summarize_meanwhile))
            threads[0].start()
            # Long enough for summarize to finish unless it waits for reprice's lock.
            threads[0].join(timeout=1.0)
        return real_price_of(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(repricing, "price_of", price_of)
        first = repricing.reprice(batch_size=CALLS + 10)
    threads[0].join(timeout=30)
    assert not threads[0].is_alive()
    assert first.changed > 0
    assert Session.objects.get(pk=session_id).summarized_at is not None
    assert repricing.reprice().changed == 0
    after = rollup_tables()
    assert sum(row[6] for row in after[0]) == CALLS
    assert sum((row[15] for row in after[0]), Decimal(0)) == sum(
        (c.cost for c in LLMCall.objects.exclude(cost=None)), Decimal(0)
    )
    rebuild_rollups()
    assert rollup_tables() == after
