"""Model rollups: sessions per model counted once, latency histograms merged exactly (also under
concurrency), equal to a rebuild; the model comparison reads them on big periods."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection

from ag2_logging.models import LLMCall, ModelDayRollup, ModelDayTotalRollup, Session
from ag2_logging.pipeline.rollups import rebuild_rollups, summarize_session
from ag2_logging.querysets import LATENCY_BUCKET_BOUNDS_MS, LATENCY_BUCKET_RATIO, latency_bucket
from ag2_logging.reports import ReportFilter, histogram_percentile, percentile
from ag2_logging.reports import queries as reports  # where EXACT_LIMIT is read
from tests.report_data import at, call, session, today

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = [("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-sonnet-4", "anthropic")]


def table() -> list[tuple[object, ...]]:
    return sorted(
        ModelDayRollup.objects.values_list(
            "day",
            "enterprise_id",
            "workflow_name",
            "model",
            "provider",
            "session_count",
            "latency_count",
            "latency_buckets",
        )
    )


def totals() -> list[tuple[object, ...]]:
    return sorted(
        ModelDayTotalRollup.objects.values_list(
            "day", "model", "provider", "session_count", "latency_count", "latency_buckets"
        )
    )


def summed(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """``table()`` rows summed per (day, model, provider): what ``totals()`` holds."""
    out: dict[tuple[object, ...], list[object]] = {}
    for day, _enterprise, _workflow, model, provider, sessions, latencies, buckets in rows:
        entry = out.setdefault((day, model, provider), [0, 0, [0] * len(buckets)])  # type: ignore[arg-type]
        entry[0] += sessions  # type: ignore[operator]
        entry[1] += latencies  # type: ignore[operator]
        entry[2] = [a + b for a, b in zip(entry[2], buckets, strict=True)]  # type: ignore[call-overload]
    return sorted((*key, *values) for key, values in out.items())


def make_sessions(n: int = 40, seed: int = 3) -> list[Session]:
    """``n`` sessions over the last 10 days, each using one to three models, some calls on the
    next day (a session crossing midnight), latencies spread over four orders of magnitude."""
    rng = random.Random(seed)
    sessions = []
    for i in range(n):
        started = at(rng.randrange(10), 23 if i % 5 == 0 else 10, rng.randrange(50))
        s = session(f"chat-{i}", f"ent-{i % 3}", f"wf-{i % 2}", started)
        for seq in range(rng.randrange(1, 12)):
            model, provider = MODELS[rng.randrange(1 + i % 3)]
            call(
                s,
                seq,
                model=model,
                provider=provider,
                start=started + dt.timedelta(minutes=9 * seq),  # crosses midnight when started at 23h
                prompt=10,
                completion=5,
                cost=Decimal("0.001"),
                latency_ms=rng.lognormvariate(7, 1.2),
            )
        sessions.append(s)
    return sessions


def test_buckets_are_log_spaced_and_hold_the_display_bounds() -> None:
    ratios = {round(b / a, 12) for a, b in itertools.pairwise(LATENCY_BUCKET_BOUNDS_MS)}
    assert ratios == {round(LATENCY_BUCKET_RATIO, 12)}
    assert LATENCY_BUCKET_BOUNDS_MS[0] < 10 and LATENCY_BUCKET_BOUNDS_MS[-1] > 30 * 60_000
    assert set(reports.LATENCY_BOUNDS_MS) <= set(LATENCY_BUCKET_BOUNDS_MS)
    assert latency_bucket(0) == 0
    assert latency_bucket(250) == LATENCY_BUCKET_BOUNDS_MS.index(250) + 1  # lower bound inclusive
    assert latency_bucket(10**9) == len(LATENCY_BUCKET_BOUNDS_MS)


def test_histogram_percentile_is_within_a_bucket_of_the_exact_one() -> None:
    rng = random.Random(11)
    for _ in range(20):
        values = sorted(rng.lognormvariate(rng.uniform(4, 9), rng.uniform(0.2, 1.5)) for _ in range(2_000))
        buckets = [0] * (len(LATENCY_BUCKET_BOUNDS_MS) + 1)
        for value in values:
            buckets[latency_bucket(value)] += 1
        exact = percentile(values, 0.95)
        assert exact is not None
        estimate = histogram_percentile(buckets, 0.95)
        assert estimate == pytest.approx(exact, rel=LATENCY_BUCKET_RATIO - 1)
    assert histogram_percentile([0, 0, 0], 0.95) is None


def test_incremental_rollups_equal_a_rebuild() -> None:
    sessions = make_sessions()
    for s in sessions:
        assert summarize_session(s.pk) is True
    assert summarize_session(sessions[0].pk) is False  # never twice
    incremental = table()
    assert sum(row[6] for row in incremental) == LLMCall.objects.count()
    assert totals() == summed(incremental) and len(totals()) < len(incremental)
    # Each session is counted once per model it used, however many days its calls spread over.
    used = {(c.session_id, c.model) for c in LLMCall.objects.all()}
    assert sum(row[5] for row in incremental) == len(used)
    assert rebuild_rollups() > 0
    assert table() == incremental
    assert totals() == summed(incremental)
    # A rebuild from a day on keeps earlier rows and recomputes later ones to the same figures,
    # sessions whose first day with a model is before it included.
    for since in (today() - dt.timedelta(days=d) for d in (0, 3, 7)):
        ModelDayRollup.objects.filter(day__gte=since).update(session_count=999, latency_count=0)
        ModelDayTotalRollup.objects.filter(day__gte=since).update(session_count=999, latency_buckets=[1])
        rebuild_rollups(since=since)
        assert table() == incremental
        assert totals() == summed(incremental)


def test_sessions_and_p95_from_the_rollups_on_big_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    make_sessions(60)
    rebuild_rollups()
    flt = ReportFilter(start=today() - dt.timedelta(days=12), end=today())
    exact = reports.model_comparison(flt)
    monkeypatch.setattr(reports, "EXACT_LIMIT", 0)
    rolled = reports.model_comparison(flt)
    assert rolled.from_histogram and not exact.from_histogram
    # Every enterprise: the totals per model and day; one enterprise: its own rows.
    assert flt.model_rollups().model is ModelDayTotalRollup
    assert (
        ReportFilter(start=flt.start, end=flt.end, enterprise="ent-1").model_rollups().model is ModelDayRollup
    )
    assert [r.label for r in rolled.rows] == [r.label for r in exact.rows]
    assert [r.figures.sessions for r in rolled.rows] == [r.figures.sessions for r in exact.rows]
    assert all(r.figures.sessions for r in rolled.rows)
    assert rolled.histogram.counts == exact.histogram.counts
    for mine, theirs in zip(rolled.rows, exact.rows, strict=True):
        assert mine.p95_latency_ms == pytest.approx(theirs.p95_latency_ms, rel=LATENCY_BUCKET_RATIO - 1)
    scoped = ReportFilter(start=flt.start, end=flt.end, enterprise="ent-1")
    assert [r.figures.sessions for r in reports.model_comparison(scoped).rows] == [
        r.figures.sessions for r in reports.model_comparison(scoped, exact=True).rows
    ]


def test_concurrent_sessions_on_the_same_key_add_up() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent writers: PostgreSQL")
    n = 12
    sessions = []
    for i in range(n):
        s = session(f"race-{i}", "acme", "triage", at(1))
        for seq in range(5):
            call(
                s,
                seq,
                model="gpt-4o",
                agent=f"agent-{i}",  # not one daily rollup row that would serialize the sessions
                start=at(1, 10, seq),
                cost=Decimal(0),
                latency_ms=100.0 * (i + seq + 1),
            )
        sessions.append(s)
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def summarize(session_id: object) -> None:
        try:
            barrier.wait()
            assert summarize_session(session_id)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=summarize, args=(s.pk,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    (rollup,) = ModelDayRollup.objects.all()
    assert (rollup.session_count, rollup.latency_count, sum(rollup.latency_buckets)) == (n, 5 * n, 5 * n)
    assert totals() == summed(table())
    before = table()
    rebuild_rollups()
    assert table() == before
    assert totals() == summed(before)
