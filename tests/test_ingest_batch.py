"""Several ended sessions ingested together (``ingest_journals``, ``chain.process_sessions``, the
pipeline thread taking due chains together) give exactly what one-by-one ingest gives; the fused
LLMCall row (built and COPY-encoded in one step) is the builder's row encoded by the encoders."""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from ag2_logging.conf import conf
from ag2_logging.models import AgentEvent, LLMCall, Session, SessionTag, ToolCall
from ag2_logging.pipeline import chain, handoff, ingest, people, rows
from ag2_logging.pipeline.ingest import IngestResult, JournalRefused, ingest_journal, ingest_journals
from tests.test_ingest import TRICKY, _call, _journal, _start
from tests.test_ingest_values import _end, _event, _tool

# -- the fused LLMCall row ------------------------------------------------------------------------------

_DATETIMES = {"started_at", "ended_at"}


def _generic(event: dict[str, Any]) -> tuple[bytes | type[BaseException], Counter[str]]:
    """The builder's row encoded by the per-column encoders (what ingest did before fusing)."""
    issues: Counter[str] = Counter()
    sink = ingest._CopySink(connection, None, direct=True)
    try:
        return sink.prepare("llm_call", rows.llm_call(event, SESSION, issues)), issues
    except Exception as exc:
        return type(exc), issues


def _fused(event: dict[str, Any]) -> tuple[bytes | type[BaseException], Counter[str]]:
    issues: Counter[str] = Counter()
    try:
        return rows.llm_call_copy(event, str(SESSION).encode(), issues)[0], issues
    except Exception as exc:
        return type(exc), issues


SESSION = uuid.UUID("0b6a4c8e-3f0e-4d6f-9b1a-2c3d4e5f6a7b")


def _same_row(fused: bytes | type[BaseException], generic: bytes | type[BaseException]) -> None:
    if not isinstance(fused, bytes) or not isinstance(generic, bytes):
        assert fused == generic
        return
    assert fused.endswith(b"\n") and generic.endswith(b"\n")
    got, want = fused[:-1].split(b"\t"), generic[:-1].split(b"\t")
    assert len(got) == len(want) == len(rows.LLM_CALL_COLUMNS)
    for name, a, b in zip(rows.LLM_CALL_COLUMNS, got, want, strict=True):
        if name in _DATETIMES and a != rows.NULL:
            # The recorder's own text goes as it is; the encoder writes isoformat(): one instant.
            assert datetime.fromisoformat(a.decode()) == datetime.fromisoformat(b.decode()), name
        elif name == "id":
            assert uuid.UUID(a.decode()) == uuid.UUID(b.decode())
        else:
            assert a == b, name


CALL_CASES = {
    "recorded": {},
    "tricky text": {
        "error": TRICKY,
        "agent_name": TRICKY,
        "request": {"m": TRICKY},
        "response": {"t": "a\\b"},
    },
    "ids cut": {"model": "m" * 1000, "invocation_id": "i" * 65, "status": "x" * 17, "price_status": "p" * 40},
    "exactly the column": {"invocation_id": "i" * 64, "provider": "p" * 64},
    "unpriced": {"cost": None, "ag2_cost": None, "price_status": None, "latency_ms": None},
    "numbers as text": {"cost": "1e-7", "ag2_cost": 3.5e-05, "latency_ms": "12", "retries": "2", "seq": "7"},
    "odd times": {"started_at": "2026-03-01T10:00:00Z", "ended_at": "2026-03-01 10:00:01", "ts": None},
    "end time from ts": {"ended_at": None, "started_at": None},
    "upper-case id": {"id": "0B6A4C8E-3F0E-4D6F-9B1A-2C3D4E5F6A7B"},
    "id in braces": {"id": "{0b6a4c8e-3f0e-4d6f-9b1a-2c3d4e5f6a7b}"},
    "non-text names": {"agent_name": 12, "model": {"a": 1}, "error": ["x"], "response_id": None},
    "cached, no status": {"is_cached": 1, "status": "", "attempt": 0},
    "bad id": {"id": "not-a-uuid"},
    "no id": {"id": None},
    "tokens out of range": {"prompt_tokens": 10**13},
    "cost out of range": {"cost": "1e7"},
    "infinite latency": {"latency_ms": float("inf")},
    "huge latency": {"latency_ms": 10**400},
    "negative retries": {"retries": -1},
    "bad time": {"started_at": "yesterday"},
    "cut then out of range": {"model": "m" * 300, "total_tokens": -(10**13)},
    "bad cost text": {"cost": "abc"},
}


@pytest.mark.parametrize("fields", list(CALL_CASES.values()), ids=list(CALL_CASES))
def test_the_fused_row_is_the_builders_row_encoded(fields: dict[str, Any]) -> None:
    event = {**_call(str(SESSION), 3), **fields}
    fused, fused_issues = _fused(event)
    generic, generic_issues = _generic(event)
    _same_row(fused, generic)
    assert fused_issues == generic_issues


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=300)


@settings(max_examples=200, deadline=None)
@given(
    agent=_text,
    model=_text,
    error=_text,
    tokens=st.integers(min_value=-(10**13), max_value=10**13),
    cost=st.none() | st.decimals(allow_nan=True, allow_infinity=True).map(str),
    latency=st.none() | st.floats(),
    body=st.none() | st.dictionaries(_text, _text | st.integers() | st.floats(allow_nan=False), max_size=3),
)
def test_the_fused_row_is_the_builders_row_encoded_for_any_values(
    agent: str, model: str, error: str, tokens: int, cost: str | None, latency: float | None, body: Any
) -> None:
    event = _call(
        str(SESSION), 1, agent_name=agent, model=model, error=error, prompt_tokens=tokens, cost=cost,
        latency_ms=latency, request=body,
    )  # fmt: skip
    fused, fused_issues = _fused(event)
    generic, generic_issues = _generic(event)
    _same_row(fused, generic)
    assert fused_issues == generic_issues


# -- a batch gives what one by one gives ---------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


def _plain(sid: str, path: Path) -> list[dict[str, Any]]:
    calls = [_call(sid, 1), _call(sid, 2, cost=None, price_status="unknown"), _call(sid, 3, status="error")]
    return [_start(sid, path), *calls, _event(4), _tool(5), _end(sid, call_count=3, total_tokens=45)]


def _tricky(sid: str, path: Path) -> list[dict[str, Any]]:
    calls = [
        _call(sid, 1, error=TRICKY, agent_name="ag\x00ent", request={"m": TRICKY}, model="m" * 300),
        _call(sid, 2, prompt_tokens=10**13),  # out of range: a bad line
        {"type": "llm_call", "id": "bad"},
    ]
    return [_start(sid, path), *calls, _end(sid, call_count=2)]


def _unfinished(sid: str, path: Path) -> list[dict[str, Any]]:
    return [_start(sid, path), _call(sid, 1), _call(sid, 2)]


def _headless(sid: str, path: Path) -> list[dict[str, Any]]:
    return [_call(sid, 1), _end(sid)]


def _child_of(parent: str) -> Any:
    def make(sid: str, path: Path) -> list[dict[str, Any]]:
        start = _start(sid, path)
        start["session"]["parent_id"] = parent
        return [start, _call(sid, 1, cost="0.5"), _end(sid)]

    return make


def _tagged(sid: str, path: Path) -> list[dict[str, Any]]:
    start = _start(sid, path)
    start["session"] |= {"tags": ["beta", "alpha"], "metadata": {"team": "ops"}, "user_id": None}
    return [start, _call(sid, 1), _end(sid)]


def _refused(sid: str, path: Path) -> list[dict[str, Any]]:
    return [_start(str(uuid.uuid4()), path), _call(sid, 1), _end(sid)]


def _write(root: Path, kinds: list[str]) -> list[Path]:
    """One journal per kind, each named by its session id; the child's parent is the first."""
    root.mkdir(parents=True, exist_ok=True)
    sids = [str(uuid.uuid4()) for _ in kinds]
    makers = {
        "plain": _plain,
        "tricky": _tricky,
        "unfinished": _unfinished,
        "headless": _headless,
        "child": _child_of(sids[0]),
        "refused": _refused,
        "tagged": _tagged,
    }
    paths = []
    for kind, sid in zip(kinds, sids, strict=True):
        path = root / f"{sid}.jsonl"
        if kind != "missing":
            _journal(path, makers[kind](sid, path))
        paths.append(path)
    return paths


_LEFT_OUT = {"ingested_at", "lease_owner", "lease_until", "updated_at"}


def _snapshot() -> dict[str, Any]:
    session_fields = [f.attname for f in Session._meta.concrete_fields if f.attname not in _LEFT_OUT]
    return {
        "sessions": sorted(Session.objects.values_list(*session_fields), key=str),
        "calls": sorted(LLMCall.objects.values_list(), key=str),
        "events": sorted(AgentEvent.objects.values_list(), key=str),
        "tools": sorted(ToolCall.objects.values_list(), key=str),
        "tags": sorted(SessionTag.objects.values_list("session_id", "tag"), key=str),
    }


def _clear() -> None:
    for model in (LLMCall, AgentEvent, ToolCall, Session):
        model.objects.all().delete()


def _outcome(result: IngestResult | Exception) -> Any:
    if isinstance(result, Exception):
        return type(result)
    return (
        result.llm_calls,
        result.agent_events,
        result.tool_calls,
        result.bad_lines,
        result.issues,
        result.finished,
    )


KINDS = ["plain", "tricky", "unfinished", "headless", "child", "refused", "missing", "plain", "tagged"]


@pytestmark_db
@pytest.mark.parametrize("unfinished_status", [None, "interrupted"])
def test_a_batch_gives_the_rows_and_sessions_one_by_one_gives(
    tmp_path: Path, unfinished_status: str | None
) -> None:
    paths = _write(tmp_path, KINDS)
    batched = ingest_journals(paths, unfinished_status=unfinished_status)
    after_batch = _snapshot()
    _clear()
    alone: list[IngestResult | Exception] = []
    for path in paths:
        try:
            alone.append(ingest_journal(path, unfinished_status=unfinished_status))
        except Exception as exc:
            alone.append(exc)
    assert [_outcome(r) for r in batched] == [_outcome(r) for r in alone]
    assert [type(r) for r in batched][5:7] == [JournalRefused, FileNotFoundError]
    assert _snapshot() == after_batch
    # Counted by hand: plain 3 calls (45 tokens, cost of the two priced ones), tricky 1 of 3 lines.
    plain = Session.objects.get(pk=paths[0].stem)
    assert (plain.call_count, plain.total_tokens, plain.error_count, plain.unpriced_calls) == (3, 45, 1, 1)
    assert plain.total_cost == Decimal("0.0001234567") * 2
    assert Session.objects.get(pk=paths[4].stem).parent_id == uuid.UUID(paths[0].stem)
    tagged = Session.objects.get(pk=paths[8].stem)
    assert (tagged.tags, tagged.metadata) == (["beta", "alpha"], {"team": "ops"})
    assert sorted(SessionTag.objects.values_list("tag", flat=True)) == ["alpha", "beta"]


@pytestmark_db
def test_the_totals_of_sessions_in_one_query_are_each_sessions_totals(tmp_path: Path) -> None:
    paths = _write(tmp_path, KINDS)
    ingest_journals(paths)
    ids = list(Session.objects.values_list("pk", flat=True))
    # And a session whose only call is unpriced: its cost is unknown (None), not 0.
    unpriced = Session.objects.get(pk=paths[0].stem)
    LLMCall.objects.filter(session=unpriced).exclude(cost__isnull=True).delete()
    grouped = LLMCall.objects.filter(session_id__in=ids).totals_by_session()
    with_calls = [sid for sid in ids if LLMCall.objects.filter(session_id=sid).exists()]
    assert sorted(grouped) == sorted(with_calls) and len(with_calls) >= 4
    for sid in with_calls:
        assert grouped[sid] == LLMCall.objects.filter(session_id=sid).totals(), sid
    assert grouped[unpriced.pk]["total_cost"] is None
    assert ingest._sessions_totals(ids) == {sid: ingest._session_totals(sid) for sid in ids}


@pytestmark_db
def test_tags_of_a_batch_are_synced_together_like_one_by_one() -> None:
    """``people.sync_tags_many`` leaves each session's SessionTag rows as ``sync_tags`` would:
    stale ones gone, missing ones added, other sessions' untouched."""
    now = datetime.now(UTC)
    a, b, c = (
        Session.objects.create(id=uuid.uuid4(), tags=tags, started_at=now) for tags in (["x", "y"], [], ["z"])
    )
    SessionTag.objects.bulk_create(
        [SessionTag(session=a, tag="old"), SessionTag(session=a, tag="x"), SessionTag(session=b, tag="gone")]
    )
    SessionTag.objects.create(session=c, tag="kept-elsewhere")
    people.sync_tags_many([a, b])
    assert sorted(SessionTag.objects.values_list("session_id", "tag")) == sorted(
        [(a.pk, "x"), (a.pk, "y"), (c.pk, "kept-elsewhere")]
    )


@pytestmark_db
def test_journals_of_new_sessions_share_one_batch(tmp_path: Path) -> None:
    paths = _write(tmp_path, ["plain", "tricky", "refused", "headless", "plain"])
    chunk = [(path, None) for path in paths]
    done = ingest._ingest_batch(chunk, None)
    # The refused journal is left for ingest_journal alone (which raises); the others are in.
    assert sorted(done) == [0, 1, 3, 4]
    assert {done[i].session_id for i in done} == {uuid.UUID(paths[i].stem) for i in (0, 1, 3, 4)}
    assert Session.objects.filter(ingested_at__isnull=False).count() == 4
    # Ingested sessions never join a batch again: a re-run goes one by one (staged, idempotent).
    assert ingest._ingest_batch(chunk, None) == {}


@pytestmark_db
def test_ingesting_a_batch_twice_changes_nothing(tmp_path: Path) -> None:
    paths = _write(tmp_path, ["plain", "tricky", "child", "unfinished"])
    first = [_outcome(r) for r in ingest_journals(paths)]
    before = _snapshot()
    again = [_outcome(r) for r in ingest_journals(paths)]
    assert again == first and _snapshot() == before


@pytestmark_db
def test_an_id_of_another_session_fails_only_its_own_journal(tmp_path: Path) -> None:
    """The batch meets the id, rolls back and each journal goes alone: the others are ingested,
    the colliding row is not written and is counted, the other session keeps its row."""
    owner = _write(tmp_path / "owner", ["plain"])[0]
    ingest_journal(owner)
    taken = LLMCall.objects.filter(session_id=owner.stem).order_by("seq").first()
    assert taken is not None
    paths = _write(tmp_path / "batch", ["plain", "plain", "plain"])
    sid = paths[1].stem
    _journal(paths[1], [_start(sid, paths[1]), _call(sid, 1, id=str(taken.pk)), _call(sid, 2), _end(sid)])
    results = ingest_journals(paths)
    assert all(isinstance(r, IngestResult) for r in results)
    assert [r.issues.get("id_collision", 0) for r in results if isinstance(r, IngestResult)] == [0, 1, 0]
    assert LLMCall.objects.get(pk=taken.pk).session_id == uuid.UUID(owner.stem)
    assert [Session.objects.get(pk=p.stem).call_count for p in paths] == [3, 1, 3]


@pytestmark_db
def test_spilled_lines_send_a_journal_alone(tmp_path: Path) -> None:
    from ag2_logging.models import SpilledEvent

    paths = _write(tmp_path, ["plain", "plain"])
    sid = paths[1].stem
    Session.objects.create(id=sid, started_at="2026-03-01T10:00:00Z", journal_path=str(paths[1]))
    extra = _call(sid, 9)
    SpilledEvent.objects.create(session_id=sid, seq=9, line=__import__("orjson").dumps(extra).decode())
    done = ingest._ingest_batch([(p, None) for p in paths], None)
    assert sorted(done) == [0]  # the journal with spilled lines is left to ingest_journal
    assert Session.objects.get(pk=sid).ingested_at is None
    results = ingest_journals(paths)
    assert [r.llm_calls for r in results if isinstance(r, IngestResult)] == [3, 4]
    assert Session.objects.get(pk=sid).spilled_events == 1


# -- the chains of several sessions --------------------------------------------------------------------


def _ended_sessions(root: Path, kinds: list[str]) -> list[Path]:
    """Journals with the Session rows the recorder leaves at session end (this host's)."""
    paths = _write(root, kinds)
    for path in paths:
        Session.objects.create(
            id=path.stem,
            started_at="2026-03-01T10:00:00Z",
            host=conf.resolved.host_name,
            journal_path=str(path),
            status="completed",
        )
    return paths


@pytestmark_db
def test_process_sessions_runs_each_chain_to_the_end(tmp_path: Path) -> None:
    from ag2_logging.pipeline.rollups import rebuild_rollups

    paths = _ended_sessions(tmp_path, ["plain", "tricky", "refused", "child", "plain"])
    keys = [uuid.UUID(p.stem) for p in paths]
    done = chain.process_sessions(keys)
    assert done == [k for i, k in enumerate(keys) if i != 2]
    for key in done:
        session = Session.objects.get(pk=key)
        assert session.sanitized_at and session.ingested_at and session.summarized_at
        assert session.lease_owner == "" and session.lease_until is None
    refused = Session.objects.get(pk=keys[2])
    assert refused.ingested_at is None and refused.lease_owner == ""
    # Alone, the refused journal fails its session the way it always did.
    chain.process_session(keys[2])
    assert Session.objects.get(pk=keys[2]).pipeline_error.startswith("journal refused")
    _rollups_equal_a_rebuild(rebuild_rollups)


@pytestmark_db
def test_recovery_runs_the_chains_it_finds_in_batches(tmp_path: Path) -> None:
    """``recover_sessions`` hands the finished sessions never ingested to ``process_sessions``;
    the one a batch cannot take (refused) still fails alone, and the counts are each session's."""
    from ag2_logging.pipeline.recovery import recover_sessions
    from ag2_logging.pipeline.rollups import rebuild_rollups

    paths = _ended_sessions(tmp_path, ["plain", "tricky", "refused", "plain"])
    keys = [uuid.UUID(p.stem) for p in paths]
    batches: list[list[uuid.UUID]] = []
    original = chain.process_sessions

    def spy(ids: Any, **kwargs: Any) -> Any:  # records the batches; does the real work
        batches.append(list(ids))
        return original(ids, **kwargs)

    from ag2_logging.pipeline import recovery

    recovery.process_sessions = spy  # type: ignore[assignment]
    try:
        result = recover_sessions()
    finally:
        recovery.process_sessions = original  # type: ignore[assignment]
    assert [sorted(batch) for batch in batches] == [sorted(keys)]  # one batch of all four
    assert sorted(result.ingested) == sorted(str(k) for i, k in enumerate(keys) if i != 2)
    # As one chain at a time counted them: all four sanitized, three rolled up.
    assert (result.sanitized, result.summarized, result.failures) == (4, 3, [])
    for i, key in enumerate(keys):
        session = Session.objects.get(pk=key)
        assert (session.ingested_at is not None) == (i != 2)
    assert Session.objects.get(pk=keys[2]).pipeline_error.startswith("journal refused")
    _rollups_equal_a_rebuild(rebuild_rollups)


def _rollups_equal_a_rebuild(rebuild: Any) -> None:
    from ag2_logging.models import DailyRollup

    fields = [f.attname for f in DailyRollup._meta.concrete_fields if f.attname not in {"id", "updated_at"}]
    summarized = sorted(DailyRollup.objects.values_list(*fields), key=str)
    rebuild()
    assert sorted(DailyRollup.objects.values_list(*fields), key=str) == summarized
    assert summarized


@pytestmark_db
@pytest.mark.parametrize("count", [1, 6, chain.SUMMARIZE_BATCH + 2])
def test_a_batch_leases_once_and_summarizes_together(tmp_path: Path, count: int) -> None:
    """The chains of a batch take their leases in one UPDATE and give them back in one; each
    Session row is read by the lease's one SELECT, the batch ingest's one, and sanitize's own
    locking read, never again between steps (sanitize writes only the columns it changed); the
    sessions are summarized ``summarize_batch()`` at a time, each rollup row they share moved once."""
    from django.test.utils import CaptureQueriesContext

    from ag2_logging.models import DailyRollup
    from ag2_logging.pipeline.rollups import rebuild_rollups

    keys = [uuid.UUID(p.stem) for p in _ended_sessions(tmp_path, ["plain"] * count)]
    table, daily = Session._meta.db_table, DailyRollup._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        assert chain.process_sessions(keys) == keys
    sql = [q["sql"] for q in queries.captured_queries]
    leases = [q for q in sql if q.startswith(f'UPDATE "{table}" SET "lease_owner" =')]
    assert len(leases) == 2, leases  # taken together, given back together
    summarizes = -(-count // chain.summarize_batch())  # on SQLite, one session at a time
    reads = [q for q in sql if q.startswith("SELECT") and f'FROM "{table}"' in q]
    assert len(reads) == 2 + count + summarizes, reads
    sanitized = [q for q in sql if q.startswith(f'UPDATE "{table}" SET "redactions" =')]
    assert len(sanitized) == count and all('"chat_id"' not in q.split("WHERE")[0] for q in sanitized)
    # The sessions share their rollup rows: one UPDATE each per summarize transaction.
    moved = [q for q in sql if q.startswith(f'UPDATE "{daily}"')]
    assert len(moved) == summarizes * DailyRollup.objects.count(), moved
    for key in keys:
        session = Session.objects.get(pk=key)
        assert session.sanitized_at and session.ingested_at and session.summarized_at
        assert (session.lease_owner, session.lease_until) == ("", None)
    _rollups_equal_a_rebuild(rebuild_rollups)


def _every_rollup() -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup table and the sessions' rollup_shares, sorted (latency sums to 1e-9)."""
    from ag2_logging.models import (
        DailyRollup,
        ModelDayRollup,
        ModelDayTotalRollup,
        TagDayRollup,
        UserDayRollup,
    )

    def rows(model: Any) -> list[tuple[Any, ...]]:
        names = [f.attname for f in model._meta.concrete_fields if f.attname not in {"id", "updated_at"}]
        return sorted(
            (
                tuple(round(v, 9) if isinstance(v, float) else v for v in row)
                for row in model.objects.values_list(*names)
            ),
            key=str,
        )

    tables = [DailyRollup, UserDayRollup, TagDayRollup, ModelDayRollup, ModelDayTotalRollup]
    found = {model.__name__: rows(model) for model in tables}
    shares = Session.objects.exclude(summarized_at=None).values_list("pk", "rollup_shares")
    found["rollup_shares"] = sorted(
        ((str(pk), sorted(map(str, (s or {}).get("rows", [])))) for pk, s in shares), key=str
    )
    return found


@pytestmark_db
@pytest.mark.parametrize("together", [True, False], ids=["together", "one by one"])
def test_sessions_summarized_together_give_the_rollups_of_a_rebuild(tmp_path: Path, together: bool) -> None:
    """Sessions that share rollup rows and sessions that do not (tags, a child, another day,
    an unpriced call, an error, a cut model name), summarized in one transaction or one at a time:
    every rollup table and every rollup_shares equals what rebuild_rollups computes."""
    from ag2_logging.pipeline import rollups

    kinds = ["plain", "tagged", "child", "tricky", "plain", "tagged", "plain"]
    paths = _ended_sessions(tmp_path, kinds)
    keys = [uuid.UUID(p.stem) for p in paths]
    Session.objects.filter(pk=keys[4]).update(enterprise_id="other", workflow_name="w2")
    assert all(isinstance(r, IngestResult) for r in ingest_journals(paths, expected_session_ids=keys))
    if together:
        assert rollups.summarize_sessions([*reversed(keys), keys[0]]) == [*reversed(keys)]
    else:
        assert [rollups.summarize_session(k) for k in keys] == [True] * len(keys)
    assert rollups.summarize_sessions(keys) == []  # each session once
    summarized = _every_rollup()
    assert summarized["TagDayRollup"] and summarized["DailyRollup"] and len(summarized["rollup_shares"]) == 7
    rollups.rebuild_rollups()
    assert _every_rollup() == summarized


@pytestmark_db
def test_a_leased_session_is_left_to_its_own_chain(tmp_path: Path) -> None:
    paths = _ended_sessions(tmp_path, ["plain", "plain"])
    keys = [uuid.UUID(p.stem) for p in paths]
    assert chain._take_lease(keys[0], "another-host:1:1:abcd")
    assert chain.process_sessions(keys) == [keys[1]]
    held = Session.objects.get(pk=keys[0])
    assert held.ingested_at is None and held.lease_owner == "another-host:1:1:abcd"


def test_the_pipeline_thread_takes_due_chains_together() -> None:
    """Ended sessions due at once become one job (up to CHAIN_BATCH); other jobs keep their turn."""
    runner = handoff._Runner()
    ran: list[str] = []
    ids = [uuid.uuid4() for _ in range(handoff.CHAIN_BATCH + 3)]
    runner._heap = [(0.0, 0, lambda: ran.append("other"))]
    runner._heap += [(1.0 + i, 1 + i, handoff._Ended(sid)) for i, sid in enumerate(ids)]
    runner._heap.append((10**12, 10**6, handoff._Ended(uuid.uuid4())))  # not due yet
    first = runner._next()
    first()
    assert ran == ["other"]
    job = runner._next()
    assert isinstance(job, functools.partial) and job.func is handoff._inline_many
    assert job.args == (ids[: handoff.CHAIN_BATCH],)
    left = [entry[2] for entry in runner._heap]
    assert [e.session_id for e in left if isinstance(e, handoff._Ended)][:3] == ids[handoff.CHAIN_BATCH :]
    assert len(runner._heap) == 4


@pytestmark_db
@pytest.mark.parametrize(
    ("unfinished_status", "expected"), [(None, "running"), ("interrupted", "interrupted")]
)
def test_process_sessions_gives_unfinished_journals_the_status_asked(
    tmp_path: Path, unfinished_status: str | None, expected: str
) -> None:
    paths = _ended_sessions(tmp_path, ["unfinished", "unfinished"])
    Session.objects.update(status="running")
    keys = [uuid.UUID(p.stem) for p in paths]
    done = chain.process_sessions(keys, unfinished_status=unfinished_status)
    # A session still running is ingested but not summarized (process_session's rule too).
    assert done == (keys if unfinished_status else [])
    sessions = [Session.objects.get(pk=k) for k in keys]
    assert [(s.status, s.call_count, s.ingested_at is not None) for s in sessions] == [
        (expected, 2, True)
    ] * 2


@pytest.mark.parametrize(
    ("sizes", "most", "most_bytes", "expected"),
    [
        ([10] * 5, 2, 1000, [2, 2, 1]),  # by count
        ([400, 400, 400, 100], 10, 1000, [2, 2]),  # by bytes: 800, then 400 + 100
        ([5000, 10, 10], 10, 1000, [1, 2]),  # a journal larger than a batch goes alone
        ([10, None, 10], 2, 1000, [2, 1]),  # a missing journal counts as empty (it fails alone)
        ([], 2, 1000, []),
    ],
    ids=["count", "bytes", "one too large", "missing", "none"],
)
def test_batches_are_cut_by_count_and_bytes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sizes: list[int | None],
    most: int,
    most_bytes: int,
    expected: list[int],
) -> None:
    from ag2_logging.pipeline import ingest

    monkeypatch.setattr(ingest, "BATCH_JOURNALS", most)
    monkeypatch.setattr(ingest, "BATCH_BYTES", most_bytes)
    items: list[tuple[Path, None]] = []
    for n, size in enumerate(sizes):
        path = tmp_path / f"{n}.jsonl"
        if size is not None:
            path.write_bytes(b"x" * size)
        items.append((path, None))
    batches = list(ingest._batches(items))
    assert [len(b) for b in batches] == expected
    assert [item for batch in batches for item in batch] == items  # every journal, in order


def _two_model_session(root: Path) -> uuid.UUID:
    """An ingested, finished session with a call on model "m-a" and one on "m-b"."""
    sid = str(uuid.uuid4())
    path = root / f"{sid}.jsonl"
    root.mkdir(parents=True, exist_ok=True)
    _journal(path, [_start(sid, path), _call(sid, 1, model="m-a"), _call(sid, 2, model="m-b"), _end(sid)])
    (result,) = ingest_journals([path])
    assert isinstance(result, IngestResult) and result.llm_calls == 2
    return uuid.UUID(sid)


@pytestmark_db
def test_a_summarize_ended_by_a_deadlock_runs_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another transaction holds the rollup row of "m-b" and then asks for that of "m-a", which
    summarize has locked and holds while it waits for "m-b": a cycle. PostgreSQL ends the
    transaction that waited first (summarize) with deadlock_detected; summarize runs again once
    the other has committed, and the rollups are those of a rebuild."""
    import threading

    from django.db import connections

    from ag2_logging.models import DailyRollup
    from ag2_logging.pipeline import rollups
    from ag2_logging.pipeline.rollups import rebuild_rollups

    if connection.vendor != "postgresql":
        pytest.skip("a deadlock between row locks, ended by the server: PostgreSQL")
    assert rollups.summarize_sessions([_two_model_session(tmp_path / "first")])  # the rows exist
    second = _two_model_session(tmp_path / "second")
    done: list[Any] = []

    def summarize() -> None:
        try:
            done.append(rollups.summarize_sessions([second]))
        except Exception as exc:  # pragma: no cover - the failure the test is about
            done.append(exc)
        finally:
            connections.close_all()

    def waiting() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            return int(cursor.fetchone()[0])

    other = threading.Thread(target=summarize)
    with transaction_on_own_connection() as cursor:
        cursor.execute(f"SELECT id FROM {DailyRollup._meta.db_table} WHERE model = 'm-b' FOR UPDATE")
        other.start()
        deadline = time.monotonic() + 10
        while waiting() == 0 and time.monotonic() < deadline:  # summarize holds m-a, waits for m-b
            time.sleep(0.02)
        assert waiting() == 1
        cursor.execute(f"SELECT id FROM {DailyRollup._meta.db_table} WHERE model = 'm-a' FOR UPDATE")
    other.join(30)
    assert done == [[second]]
    assert [r.getMessage() for r in caplog.records if "deadlock" in r.getMessage()] == [
        "ag2_logging: summarize_sessions was ended by a deadlock (attempt 1 of 5); trying again"
    ]
    assert sorted(DailyRollup.objects.values_list("model", "call_count")) == [("m-a", 2), ("m-b", 2)]
    _rollups_equal_a_rebuild(rebuild_rollups)


@contextlib.contextmanager
def transaction_on_own_connection() -> Any:
    """A cursor in a transaction on a connection of its own (committed at the end)."""
    from django.db import connections

    alias = "default"
    own = connections.create_connection(alias)
    try:
        own.set_autocommit(False)
        with own.cursor() as cursor:
            yield cursor
        own.commit()
    finally:
        own.close()
