"""Journal -> rows: LLMCall, AgentEvent and ToolCall in bulk, then the session's totals.

Idempotent: rows take the journal event's id as primary key and conflicting rows are skipped,
and totals are recomputed from the rows, so ingesting a journal twice (a re-delivered task,
recovery after a crash) yields the same rows and the same totals.

Speed (``make bench``, "Ingest"): the journal is streamed, never held in memory, and rows go to
the database in batches of ``BATCH_SIZE`` without model instances:

* PostgreSQL: ``COPY ... FROM STDIN``. Straight into the table when the session has no rows yet
  (the session row is locked with ``SELECT ... FOR UPDATE`` first, so two ingests of one journal
  take turns); otherwise into a temporary table, then ``INSERT ... SELECT ... ON CONFLICT (id)
  DO NOTHING``.
* SQLite: ``executemany`` of ``INSERT OR IGNORE``.
* Other databases: ``bulk_create(ignore_conflicts=True)``.

Values are converted to what Django itself would send (``get_db_prep_save``); JSON columns are
serialized with orjson.

One bad value never blocks a journal: ``ingest_rows`` removes what PostgreSQL refuses (NUL),
cuts ids to their columns and turns out-of-range numbers into counted bad lines, the same way
on every database; what it changed is counted in ``Session.ingest_issues``. A journal is refused
(``JournalRefused``, nothing written) when its header names another session than its file name
or the caller expects. After the file come the session's lines that the disk refused and the
recorder spilled to the database (``SpilledEvent``), in ``seq`` order.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from django.db import IntegrityError, connections, models, router, transaction

from ag2_logging.capture.journal import JournalLine, parse_line, read_journal
from ag2_logging.models import AgentEvent, LLMCall, Session, SpilledEvent, ToolCall
from ag2_logging.pipeline import people, rollups
from ag2_logging.pipeline import rows as rows_mod
from ag2_logging.pipeline.rows import Issues, strip_nul
from ag2_logging.querysets import TOKEN_FIELDS

logger = logging.getLogger("ag2_logging.ingest")

#: Rows per batch (per table) sent to the database.
BATCH_SIZE = 5_000
#: Rows per chunk of a PostgreSQL COPY stream.
COPY_CHUNK_ROWS = 200


class JournalRefused(ValueError):
    """The journal names another session than the one it is ingested as; nothing was written.

    A journal never writes into a session other than the one its file name (or the caller's
    ``expected_session_id``) and its header both name: a file ``<new-uuid>.jsonl`` whose header
    names an existing session must not add its calls, cost or status to that session.
    """


@dataclass
class IngestResult:
    path: str
    session_id: uuid.UUID | None = None
    llm_calls: int = 0
    agent_events: int = 0
    tool_calls: int = 0
    bad_lines: list[int] = field(default_factory=list)
    finished: bool = False
    #: What ingest changed or refused, by kind (see ``ISSUE_KINDS``); zero counts left out.
    issues: dict[str, int] = field(default_factory=dict)
    #: Lines read from the database (spilled there when the disk refused them).
    spilled_lines: int = 0


#: The kinds of ``Session.ingest_issues`` that ingest owns (recomputed at each ingest).
ISSUE_KINDS = frozenset(
    {
        "nul_removed",  # NUL characters removed from a string or key (PostgreSQL refuses them)
        "id_cut",  # an id or name longer than its column, cut with CUT_MARKER
        "out_of_range",  # a line with a number no column can hold (skipped, in bad_lines)
        "bad_value",  # a header or closing-line value that could not be read (a default kept)
        "id_collision",  # an event id already taken by a row of another session (not written)
        "bom_removed",  # the file began with a byte order mark
        "header_not_first",  # the session_start line was not the first line (torn or out of order)
        "header_missing",  # no session_start line at all: the session comes from the file name
        "parent_missing",  # the parent session named by the header has no row (link dropped)
        "user_missing",  # the user named by the header has no row here (not linked)
    }
)

# Kept under their old names: benchmarks and tools build rows with them.
_session_fields = rows_mod.session_fields
_llm_call = rows_mod.llm_call
_agent_event = rows_mod.agent_event
_tool_call = rows_mod.tool_call
_dt = rows_mod.dt

RowModel = type[LLMCall] | type[AgentEvent] | type[ToolCall]
Builder = Callable[[dict[str, Any], uuid.UUID | None, Issues], dict[str, Any]]

_BUILDERS: dict[str, Builder] = {
    "llm_call": rows_mod.llm_call,
    "agent_event": rows_mod.agent_event,
    "tool_call": rows_mod.tool_call,
}
_MODELS: dict[str, RowModel] = {"llm_call": LLMCall, "agent_event": AgentEvent, "tool_call": ToolCall}


# -- writing rows ------------------------------------------------------------------------------------


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_SIMPLE = (models.CharField, models.TextField, models.IntegerField, models.FloatField, models.BooleanField)


def _prep(field: Any, connection: Any) -> Callable[[Any], Any] | None:
    """What Django's ``field.get_db_prep_save`` does to a builder's value (None: nothing).

    The builders already produce the Python types Django's fields would (str, int, float, bool,
    aware datetimes, UUIDs, Decimals), so this is the backend's own adaptation, without the
    field's generic layers; JSON is serialized with orjson (Django would use ``json.dumps``).
    """
    if isinstance(field, models.JSONField):
        return _json_text
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    if isinstance(target, models.UUIDField):
        return None if connection.features.has_native_uuid_field else _uuid_hex
    if isinstance(target, models.DateTimeField):
        return None if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value
    if isinstance(target, models.DecimalField):
        # The builders make finite Decimals (what DecimalField.to_python would return).
        adapt, digits, places = (
            connection.ops.adapt_decimalfield_value,
            target.max_digits,
            target.decimal_places,
        )
        return lambda value: adapt(value, digits, places)
    if isinstance(target, _SIMPLE):
        return None
    return lambda value: field.get_db_prep_save(value, connection)


def _uuid_hex(value: uuid.UUID) -> str:
    return value.hex


class _Table:
    """One model's columns and how to turn a row's values into what the database is sent."""

    def __init__(self, model: RowModel, connection: Any) -> None:
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.columns = [f.column for f in self.fields]
        self.attnames = [f.attname for f in self.fields]
        # Fields a builder does not set (added to the model later) get their default.
        self.defaults = [f.get_default() for f in self.fields]
        self.prep = [_prep(f, connection) for f in self.fields]

    def values(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            [
                value if prep is None or value is None else prep(value)
                for value, prep in zip(map(row.get, self.attnames, self.defaults), self.prep, strict=True)
            ]
        )


class _Sink:
    """Takes rows one at a time and writes them in batches: ``bulk_create`` (any database)."""

    def __init__(self, connection: Any, session_id: uuid.UUID | None) -> None:
        self.connection = connection
        self.session_id = session_id
        self.tables = {kind: _Table(model, connection) for kind, model in _MODELS.items()}
        self.pending: dict[str, list[Any]] = {kind: [] for kind in _MODELS}
        #: Rows not written because their id is a row of another session (``id_collision``).
        self.collisions = 0
        #: Builders that make a row in the form ``add_line`` takes, by kind (one step, no dict).
        self.fused: dict[str, Callable[[dict[str, Any], bytes, Issues], tuple[bytes, datetime | None]]] = {}

    def add_line(self, kind: str, line: Any) -> None:
        raise NotImplementedError  # only sinks with fused builders take lines

    def prepare(self, kind: str, row: dict[str, Any]) -> Any:
        return self.tables[kind].model(**row)

    def add(self, kind: str, row: dict[str, Any]) -> None:
        rows = self.pending[kind]
        rows.append(self.prepare(kind, row))
        if len(rows) >= BATCH_SIZE:
            self.flush(kind)

    def flush(self, kind: str) -> None:
        rows, self.pending[kind] = self.pending[kind], []
        if rows:
            self.write(self.tables[kind], rows)

    def close(self) -> None:
        for kind in self.pending:
            self.flush(kind)

    def pause(self) -> None:
        """Before the ingest runs a query of its own on this connection (COPY holds it)."""

    def write(self, table: _Table, rows: list[Any]) -> None:
        table.model.objects.bulk_create(rows, batch_size=1_000, ignore_conflicts=True)
        # bulk_create does not say which rows it skipped: ask (only databases other than
        # PostgreSQL and SQLite come here).
        self.collisions += _foreign_rows(table.model, [row.pk for row in rows], self.session_id)


class _SQLiteSink(_Sink):
    """SQLite: ``executemany`` of ``INSERT OR IGNORE`` over rows already adapted to SQLite."""

    def prepare(self, kind: str, row: dict[str, Any]) -> Any:
        return self.tables[kind].values(row)

    def insert_sql(self, table: _Table) -> str:
        """``INSERT OR IGNORE`` of ``table``'s columns, one ``%s`` each."""
        quote = self.connection.ops.quote_name
        return "INSERT OR IGNORE INTO {} ({}) VALUES ({})".format(
            quote(table.model._meta.db_table),
            ", ".join(quote(c) for c in table.columns),
            ", ".join(["%s"] * len(table.columns)),
        )

    def write(self, table: _Table, rows: list[Any]) -> None:
        sql = self.insert_sql(table)
        with self.connection.cursor() as cursor:
            cursor.executemany(sql, rows)
            skipped = len(rows) - cursor.rowcount
        if skipped > 0:
            # Rows skipped as already there: this session's (a re-ingest, a repeated line) are
            # expected; another session's are counted. Asked only when something was skipped.
            at = table.attnames.index("id")
            ids = [uuid.UUID(row[at]) if isinstance(row[at], str) else row[at] for row in rows]
            self.collisions += _foreign_rows(table.model, ids, self.session_id)


_copy_text = rows_mod.copy_text
_copy_json = rows_mod.copy_json


def _copy_float(value: float) -> bytes:
    if value != value:
        return b"NaN"
    if value in (float("inf"), float("-inf")):
        return b"Infinity" if value > 0 else b"-Infinity"
    return repr(value).encode()


def _copy_encoder(field: Any) -> Callable[[Any], bytes]:
    """``COPY ... FROM STDIN`` text format for one column (NULL is handled by the caller)."""
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    if isinstance(target, models.JSONField):
        return _copy_json
    if isinstance(target, models.BooleanField):
        return lambda value: b"t" if value else b"f"
    if isinstance(target, models.IntegerField):
        return lambda value: b"%d" % value
    if isinstance(target, models.FloatField):
        return _copy_float
    if isinstance(target, models.DateTimeField):
        return lambda value: value.isoformat().encode()
    if isinstance(target, models.UUIDField | models.DecimalField):
        return lambda value: str(value).encode()
    if isinstance(target, models.CharField | models.TextField):
        return _copy_text
    raise TypeError(f"no COPY encoding for {type(field).__name__}")


class _DirectConflict(Exception):
    """A direct COPY met an id that is already a row: the transaction is lost, ingest starts over
    staged (rows through a temporary table, duplicates skipped and counted)."""


class _CopyStream:
    """One ``COPY ... FROM STDIN`` into one table, fed line by line, opened at the first chunk.

    A stream that reaches ``COPY_CHUNK_ROWS`` lines opens with a worker thread (psycopg's
    ``QueuedLibpqWriter``) that sends each chunk while this thread parses and encodes the next
    lines, so the server inserts rows while Python makes them. A smaller one (a session of a few
    calls, the common case) is sent whole at ``close`` from this thread: no thread to start and
    hand chunks to. A direct stream (straight into the table) that hits a duplicate id raises
    ``_DirectConflict``; it takes no savepoint, so the whole ingest is redone staged.
    """

    def __init__(self, sink: _CopySink, kind: str) -> None:
        self.sink = sink
        self.kind = kind
        self.lines: list[bytes] = []
        self.sent = 0
        self.stack = ExitStack()
        table = sink.tables[kind]
        quote = sink.connection.ops.quote_name
        self.target = quote(table.model._meta.db_table)
        self.columns = ", ".join(quote(c) for c in table.columns)
        self.staged = not sink.direct
        self.into = quote("ag2_ingest_" + table.model._meta.db_table) if self.staged else self.target
        self.copy: Any = None

    def _open(self, *, queued: bool) -> None:
        from psycopg.copy import QueuedLibpqWriter

        cursor = self.stack.enter_context(self.sink.connection.cursor()).cursor  # psycopg's own
        if self.staged:
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.into} (LIKE {self.target} INCLUDING DEFAULTS) "
                "ON COMMIT DROP"
            )
            cursor.execute(f"TRUNCATE {self.into}")
        self.copy = self.stack.enter_context(
            cursor.copy(
                f"COPY {self.into} ({self.columns}) FROM STDIN",
                writer=QueuedLibpqWriter(cursor) if queued else None,
            )
        )

    def add(self, line: bytes) -> None:
        self.lines.append(line)
        if len(self.lines) - self.sent >= COPY_CHUNK_ROWS:
            self._send()

    def _send(self) -> None:
        if self.copy is None:
            self._open(queued=True)
        self.copy.write(b"".join(self.lines[self.sent :]))
        self.sent = len(self.lines)

    def close(self) -> None:
        """End the COPY (and, staged, move the rows into the table skipping known ids).

        Raises ``_DirectConflict`` when a direct stream met an existing id (nothing was written
        and the transaction is aborted)."""
        from psycopg import IntegrityError as DriverIntegrityError  # raised through psycopg's own cursor

        try:
            if self.copy is None:
                self._open(queued=False)
            self._send()
            self.stack.close()
        except (IntegrityError, DriverIntegrityError) as exc:
            if self.staged:
                raise
            raise _DirectConflict(str(exc)) from exc
        if self.staged:
            with self.sink.connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT count(*) FROM {self.into} s JOIN {self.target} t ON t.id = s.id "
                    "WHERE t.session_id IS DISTINCT FROM %s",
                    [self.sink.session_id],
                )
                self.sink.collisions += cursor.fetchone()[0]
                cursor.execute(
                    f"INSERT INTO {self.target} ({self.columns}) SELECT {self.columns} FROM {self.into} "
                    "ON CONFLICT DO NOTHING"
                )


class _CopySink(_Sink):
    """PostgreSQL ``COPY``, rows encoded here in COPY's text format (no per-value adapters).

    Straight into the table when the session has no rows yet (``direct``), else through a
    temporary table and ``INSERT ... ON CONFLICT DO NOTHING``. One stream is open at a time: the
    rows of the other kinds wait in memory, already encoded, until a stream of their own.
    """

    def __init__(self, connection: Any, session_id: uuid.UUID | None, *, direct: bool) -> None:
        super().__init__(connection, session_id)
        self.direct = direct
        self.encoders = {
            kind: (table.attnames, table.defaults, [_copy_encoder(f) for f in table.fields])
            for kind, table in self.tables.items()
        }
        self.stream: _CopyStream | None = None
        if self.tables["llm_call"].attnames == rows_mod.LLM_CALL_COLUMNS:
            self.fused["llm_call"] = rows_mod.llm_call_copy

    def prepare(self, kind: str, row: dict[str, Any]) -> bytes:
        names, defaults, encoders = self.encoders[kind]
        return (
            b"\t".join(
                [
                    b"\\N" if value is None else encode(value)
                    for value, encode in zip(map(row.get, names, defaults), encoders, strict=True)
                ]
            )
            + b"\n"
        )

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.add_line(kind, self.prepare(kind, row))

    def add_line(self, kind: str, line: bytes) -> None:
        """Add one row already in COPY text (``prepare``'s or a ``fused`` builder's)."""
        stream = self.stream
        if stream is None and not self.pending[kind]:
            stream = self.stream = _CopyStream(self, kind)
        if stream is not None and stream.kind == kind:
            stream.add(line)
            if len(stream.lines) >= BATCH_SIZE:
                self._close_stream()
            return
        rows = self.pending[kind]
        rows.append(line)
        if len(rows) >= BATCH_SIZE:
            self.flush(kind)

    def _close_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()

    def flush(self, kind: str) -> None:
        if self.stream is not None:
            self._close_stream()
        super().flush(kind)

    def close(self) -> None:
        self._close_stream()
        super().close()

    def pause(self) -> None:
        self._close_stream()

    def write(self, table: _Table, rows: list[Any]) -> None:
        kind = next(k for k, t in self.tables.items() if t is table)
        for start in range(0, len(rows), BATCH_SIZE):
            stream = _CopyStream(self, kind)
            for line in rows[start : start + BATCH_SIZE]:
                stream.add(line)
            stream.close()


def _foreign_rows(model: RowModel, ids: list[uuid.UUID], session_id: uuid.UUID | None) -> int:
    """How many of ``ids`` are rows of a session other than ``session_id``."""
    found = 0
    for start in range(0, len(ids), 500):  # under every backend's limit of query parameters
        rows = model.objects.filter(pk__in=ids[start : start + 500])
        other = (
            rows.exclude(session__isnull=True) if session_id is None else rows.exclude(session_id=session_id)
        )
        found += other.count()
    return found


def _begin(connection: Any, session_id: uuid.UUID | None) -> bool:
    """Start the ingest's transaction; True when the session has lines spilled to the database.

    On PostgreSQL one round trip sets this transaction's settings and asks for spilled lines:

    * ``default_toast_compression = lz4``: PostgreSQL compresses a row's largest values once the
      row passes ~2 KB (a call with its bodies does); pglz costs the server more than parsing
      the row. The method is recorded with each value, so reading needs nothing, and older rows
      keep theirs.
    * ``synchronous_commit = off``: a journal of a hundred calls otherwise spends most of its
      ingest waiting for one WAL flush. Nothing can be lost that the journal does not still
      hold: a server crash within the next few hundred milliseconds loses the rows and
      ``ingested_at`` together (never one without the other), so recovery ingests the journal
      again, and ingest is idempotent.
    """
    if connection.vendor != "postgresql":
        return session_id is not None and SpilledEvent.objects.filter(session_id=session_id).exists()
    with connection.cursor() as cursor:
        spilled = connection.ops.quote_name(SpilledEvent._meta.db_table)
        cursor.execute(
            _settings_sql(connection, cursor) + f"EXISTS (SELECT 1 FROM {spilled} WHERE session_id = %s)",
            [session_id],
        )
        return bool(cursor.fetchone()[-1])


def _settings_sql(connection: Any, cursor: Any) -> str:
    """``SELECT`` and the ``set_config`` calls of ``_begin`` (PostgreSQL), to end with a value."""
    lz4 = getattr(connection, "_ag2_lz4", None)
    if lz4 is None:  # asked once per connection wrapper: the server's build does not change
        cursor.execute(
            "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
        )
        lz4 = connection._ag2_lz4 = cursor.fetchone() is not None
    return "SELECT set_config('synchronous_commit', 'off', true), " + (
        "set_config('default_toast_compression', 'lz4', true), " if lz4 else ""
    )


def _begin_many(connection: Any, session_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """``_begin`` for a batch: the transaction's settings, and which sessions have spilled lines."""
    if connection.vendor != "postgresql":
        return set(
            SpilledEvent.objects.filter(session_id__in=session_ids).values_list("session_id", flat=True)
        )
    with connection.cursor() as cursor:
        spilled = connection.ops.quote_name(SpilledEvent._meta.db_table)
        cursor.execute(
            _settings_sql(connection, cursor)
            + f"ARRAY(SELECT DISTINCT session_id FROM {spilled} WHERE session_id = ANY(%s))",
            [session_ids],
        )
        return set(cursor.fetchone()[-1])


def _sink(session_id: uuid.UUID | None, *, direct: bool = False) -> _Sink:
    """The writer for this database; ``direct``: COPY straight into the tables (PostgreSQL),
    the session is believed to have no rows yet (a wrong guess raises ``_DirectConflict``)."""
    connection = connections[router.db_for_write(LLMCall)]
    if connection.vendor == "postgresql":
        try:
            return _CopySink(connection, session_id, direct=direct and session_id is not None)
        except TypeError:  # a field type added to the models that COPY encoding does not know yet
            return _Sink(connection, session_id)
    if connection.vendor == "sqlite":
        return _SQLiteSink(connection, session_id)
    return _Sink(connection, session_id)


_TOTALS_SQL: dict[tuple[str, bool], str] = {}


def _totals_sql(connection: Any, *, grouped: bool) -> str:
    """The aggregate of ``LLMCall totals()`` written once: for one session, or (``grouped``)
    for the sessions of an array, one row each led by its ``session_id``."""
    sql = _TOTALS_SQL.get((connection.alias, grouped))
    if sql is None:
        quote = connection.ops.quote_name
        sums = ", ".join(f"COALESCE(SUM({quote(name)}), 0)" for name in TOKEN_FIELDS)
        sql = _TOTALS_SQL[(connection.alias, grouped)] = (
            f"SELECT {'session_id, ' if grouped else ''}{sums}, COUNT(*), "
            "COUNT(*) FILTER (WHERE status = %s), "
            "COUNT(*) FILTER (WHERE cost IS NULL), COALESCE(SUM(retries), 0), SUM(cost) "
            f"FROM {quote(LLMCall._meta.db_table)} "
            + ("WHERE session_id = ANY(%s) GROUP BY session_id" if grouped else "WHERE session_id = %s")
        )
    return sql


def _totals_of(values: tuple[Any, ...]) -> dict[str, Any]:
    """One row of ``_totals_sql`` (without its session id) as ``totals()`` returns it."""
    *tokens, calls, errors, unpriced, retries, cost = values
    totals: dict[str, Any] = {name: int(value) for name, value in zip(TOKEN_FIELDS, tokens, strict=True)}
    totals |= {
        "call_count": calls,
        "error_count": errors,
        "unpriced_calls": unpriced,
        "retry_count": int(retries),
    }
    # totals()'s rule: with unpriced calls, known costs summing to 0 say nothing: unknown.
    totals["total_cost"] = None if unpriced and not cost else cost
    return totals


#: The totals of a session without calls (what the aggregate returns over no rows).
_NO_CALLS: tuple[Any, ...] = (0,) * (len(TOKEN_FIELDS) + 4) + (None,)


def _session_totals(session_id: uuid.UUID) -> dict[str, Any]:
    """``LLMCall.objects.for_session(session_id).totals()``; on PostgreSQL the same aggregate as
    SQL written once (compiling the ORM's aggregate costs more than the server's work)."""
    connection = connections[router.db_for_read(LLMCall)]
    if connection.vendor != "postgresql":
        return LLMCall.objects.for_session(session_id).totals()
    with connection.cursor() as cursor:
        cursor.execute(_totals_sql(connection, grouped=False), [LLMCall.Status.ERROR.value, session_id])
        return _totals_of(cursor.fetchone())


def _sessions_totals(session_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """``_session_totals`` of each session, in one grouped query."""
    connection = connections[router.db_for_read(LLMCall)]
    if connection.vendor != "postgresql":
        found = LLMCall.objects.filter(session_id__in=session_ids).totals_by_session()
        return {
            session_id: found.get(session_id) or _session_totals(session_id) for session_id in session_ids
        }
    with connection.cursor() as cursor:
        cursor.execute(_totals_sql(connection, grouped=True), [LLMCall.Status.ERROR.value, session_ids])
        found = {row[0]: _totals_of(row[1:]) for row in cursor.fetchall()}
    return {session_id: found.get(session_id) or _totals_of(_NO_CALLS) for session_id in session_ids}


def refresh_session_totals(session: Session, totals: dict[str, Any] | None = None) -> None:
    """The session's totals from its rows. ``total_cost`` is the sum of the priced calls' costs:
    0 without calls, NULL (unknown) when there are calls and none of them is priced. ``totals``:
    the rows' totals already read (``_session_totals``'s shape), else they are read here."""
    totals = _session_totals(session.pk) if totals is None else totals
    for key, value in totals.items():
        if key != "total_cost":
            setattr(session, key, value or 0)
    cost = totals.get("total_cost")
    session.total_cost = cost if cost is not None else (None if session.call_count else Decimal(0))
    # A summarized session whose calls were repriced: its user and tag rollups move too.
    rollups.resync_people(session)


# -- reading: the file, then what was spilled to the database ------------------------------------------


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _find_header(path: Path, lines: Iterator[JournalLine], issues: Issues) -> tuple[Any, list[JournalLine]]:
    """The session header (the ``session`` of the first ``session_start`` line, wherever it is)
    and the lines read to find it; a header not on the first line is counted."""
    seen: list[JournalLine] = []
    for line in lines:
        seen.append(line)
        if line.event is not None:
            break
    if seen and seen[0].bom:
        issues["bom_removed"] += 1
    first = seen[-1].event if seen else None
    if first is not None and first["type"] == "session_start":
        if len(seen) > 1:  # a torn or unreadable line before it
            issues["header_not_first"] += 1
        return _session_of(seen[-1], issues), seen
    if not seen:
        return None, seen
    # Lines out of order (or written by another tool): look through the whole file.
    for line in read_journal(path):
        if line.event is not None and line.event["type"] == "session_start":
            issues["header_not_first"] += 1
            return _session_of(line, issues), seen
    return None, seen


def journal_header(path: Path | str) -> dict[str, Any] | None:
    """The session header of a journal file, wherever its ``session_start`` line is (after a BOM,
    a torn line, lines out of order), or None when it has none."""
    header, _ = _find_header(Path(path), read_journal(path), Counter())
    return header if isinstance(header, dict) else None


def _session_of(line: JournalLine, issues: Issues) -> Any:
    header = line.event.get("session") if line.event is not None else None
    return strip_nul(header, issues) if line.nul else header


def _spilled_header(session_id: uuid.UUID) -> Any:
    """The header among the lines spilled for ``session_id`` (the recorder writes ``type`` first)."""
    text = (
        SpilledEvent.objects.filter(session_id=session_id, line__startswith='{"type":"session_start"')
        .order_by("seq", "id")
        .values_list("line", flat=True)
        .first()
    )
    line = parse_line(text.encode(), 0) if text else None
    return _session_of(line, Issues()) if line is not None else None


def _spilled_lines(
    session_id: uuid.UUID, after: int, pks: list[int], pause: Callable[[], None]
) -> Iterator[JournalLine]:
    """The session's spilled lines in ``seq`` order, numbered after the file's last line."""
    pause()  # a query cannot run on a connection while it streams a COPY
    order = list(
        SpilledEvent.objects.filter(session_id=session_id).order_by("seq", "id").values_list("id", flat=True)
    )
    for start in range(0, len(order), 500):
        chunk = order[start : start + 500]
        pause()  # a query cannot run on a connection while it streams a COPY
        texts = dict(SpilledEvent.objects.filter(pk__in=chunk).values_list("id", "line"))
        for offset, pk in enumerate(chunk, start=after + start + 1):
            pks.append(pk)
            line = parse_line(texts[pk].encode(), offset)
            if line is not None:
                yield line


def _session_id(path: Path, header: Any, expected: uuid.UUID | None) -> uuid.UUID | None:
    """The session a journal is ingested as; JournalRefused when its names disagree."""
    named = None
    if isinstance(header, dict) and header.get("session_id"):
        named = _uuid(header["session_id"])
        if named is None:
            raise JournalRefused(f"{path}: its header names no valid session id ({header['session_id']!r})")
    if expected is not None:
        if named is not None and named != expected:
            raise JournalRefused(f"{path}: its header names session {named}, expected {expected}")
        return expected
    stem = _uuid(path.stem)
    if named is not None and stem is not None and named != stem:
        raise JournalRefused(f"{path}: its header names session {named}, its file name {stem}")
    return named or stem


def _same_file(recorded: str, path: Path) -> bool:
    return recorded == str(path) or os.path.realpath(recorded) == os.path.realpath(path)


# -- writing the session -------------------------------------------------------------------------------


@dataclass
class _Read:
    """What the pass over the lines found besides rows."""

    end: dict[str, Any] | None = None
    first_at: datetime | None = None
    last_at: datetime | None = None
    lines: int = 0


def _session_row(
    session_id: uuid.UUID, header: Any, path: Path, expected: uuid.UUID | None, issues: Issues
) -> tuple[Session, bool]:
    """The session's row, locked (created from the header when missing)."""
    fields = rows_mod.session_fields(header if isinstance(header, dict) else {}, issues)
    if fields["parent_id"] is not None and not Session.objects.filter(pk=fields["parent_id"]).exists():
        # A parent whose journal is not ingested yet (or was pruned): keep the child, drop the link.
        issues["parent_missing"] += 1
        fields["parent_id"] = None
    session, created = Session.objects.select_for_update().get_or_create(id=session_id, defaults=fields)
    if (
        not created
        and expected is None
        and session.journal_path
        and not _same_file(session.journal_path, path)
    ):
        raise JournalRefused(
            f"{path}: session {session_id} was recorded in {session.journal_path}, not in this file"
        )
    return session, created


def _read_rows(
    lines: Iterator[JournalLine],
    session_id: uuid.UUID | None,
    sink: _Sink,
    issues: Issues,
    result: IngestResult,
) -> _Read:
    read = _Read()
    counts = dict.fromkeys(_BUILDERS, 0)
    session_text = rows_mod.NULL if session_id is None else str(session_id).encode()
    for line in lines:
        read.lines += 1
        event = line.event
        kind = event.get("type") if event is not None else None
        if event is None or not isinstance(kind, str):
            result.bad_lines.append(line.lineno)
            continue
        if kind == "session_start":
            continue
        if line.nul:
            event = strip_nul(event, issues)
        if kind == "session_end":
            read.end = event
            continue
        try:
            add, row, at = _build_row(sink, kind, event, session_id, session_text, issues)
        except rows_mod.OutOfRange:
            issues["out_of_range"] += 1
            result.bad_lines.append(line.lineno)
            continue
        except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError):
            result.bad_lines.append(line.lineno)
            continue
        counts[kind] += 1
        read.first_at = read.first_at or at
        read.last_at = at or read.last_at
        add(kind, row)
    result.llm_calls, result.agent_events, result.tool_calls = (
        counts["llm_call"],
        counts["agent_event"],
        counts["tool_call"],
    )
    return read


def _build_row(
    sink: _Sink,
    kind: str,
    event: dict[str, Any],
    session_id: uuid.UUID | None,
    session_text: bytes,
    issues: Issues,
) -> tuple[Callable[[str, Any], None], Any, datetime | None]:
    """The event's row as the sink takes it (a fused builder's COPY line, else a builder's dict),
    the sink's method that takes it, and the row's time (end, else creation)."""
    fused = sink.fused.get(kind)
    if fused is not None:
        line, at = fused(event, session_text, issues)
        return sink.add_line, line, at
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise KeyError(kind)
    row = builder(event, session_id, issues)
    return sink.add, row, row.get("ended_at") or row.get("created_at")


def _safe_count(value: Any, issues: Issues) -> int:
    try:
        return rows_mod._count(value)
    except (ValueError, TypeError, ArithmeticError):
        issues["bad_value"] += 1
        return 0


def _apply_end(session: Session, end: dict[str, Any], read: _Read, issues: Issues) -> dict[str, Any]:
    """The closing line's status, end time and error; returns its totals (``{}`` if unreadable)."""
    status = end.get("status") or Session.Status.COMPLETED
    if status not in Session.Status.values:
        issues["bad_value"] += 1
        status = Session.Status.COMPLETED
    session.status = status
    try:
        session.ended_at = rows_mod.dt(end.get("ended_at") or end.get("ts")) or read.last_at
    except (ValueError, TypeError):
        issues["bad_value"] += 1
        session.ended_at = read.last_at
    session.error = str(end.get("error") or "")
    totals = end.get("totals")
    if not isinstance(totals, dict):
        return {}
    redactions = totals.get("redactions") or {}
    if isinstance(redactions, dict) and all(isinstance(v, int) for v in redactions.values()):
        session.redactions = redactions
    else:
        issues["bad_value"] += 1
    return totals


#: Totals the process counted that the rows must add up to (else the session is incomplete).
_COMPARED = (
    "call_count",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
)
# Not the cost: a reprice changes the rows' cost on purpose. Lost events show in calls and tokens.


def _differs(recorded: Any, session: Session) -> bool:
    """True when the rows do not add up to what the process counted (``recorded_totals``)."""
    if not isinstance(recorded, dict):
        return False
    for key in _COMPARED:
        if key not in recorded:
            continue
        try:
            counted = Decimal(str(recorded[key]))
        except ArithmeticError:
            return True
        held = getattr(session, key)
        if held is None:  # no priced call: the process's sum counted none either
            held = Decimal(0)
        held = Decimal(held)
        # Costs: each row is rounded to the column's 10 places, the process's sum was not.
        slack = Decimal(session.call_count + 1).scaleb(-10) if key == "total_cost" else 0
        if abs(counted - held) > slack:
            return True
    return False


def _complete_session(
    session: Session,
    read: _Read,
    result: IngestResult,
    issues: Issues,
    unfinished_status: str | None,
    totals: dict[str, Any] | None = None,
    *,
    save: bool = True,
) -> None:
    """Status, totals, counts and ``incomplete`` of the session after its rows are written
    (``save``: the row is written here, else the caller writes it, ``_save_sessions``)."""
    end_totals: dict[str, Any] = {}
    if read.end is not None:
        end_totals = _apply_end(session, read.end, read, issues)
    elif unfinished_status and session.status == Session.Status.RUNNING:
        session.status = unfinished_status
        session.ended_at = session.ended_at or read.last_at
    # What the process counted: written at session end, else its closing line's figures.
    stored = session.recorded_totals if isinstance(session.recorded_totals, dict) else None
    recorded = stored if stored is not None else {k: v for k, v in end_totals.items() if k != "redactions"}
    # Counts never shrink at a re-ingest.
    session.dropped_events = max(
        session.dropped_events,
        _safe_count(end_totals.get("dropped_events"), issues),
        _safe_count(stored.get("dropped_events"), issues) if stored is not None else 0,
    )
    session.spilled_events = max(
        session.spilled_events, result.spilled_lines, _safe_count(end_totals.get("spilled_events"), issues)
    )
    refresh_session_totals(session, totals)
    session.incomplete = bool(session.dropped_events) or _differs(recorded, session)
    session.bad_journal_lines = len(result.bad_lines)
    issues["id_collision"] = issues.get("id_collision", 0)
    result.issues = {k: v for k, v in sorted(issues.items()) if v}
    kept = session.ingest_issues if isinstance(session.ingest_issues, dict) else {}
    session.ingest_issues = {k: v for k, v in kept.items() if k not in ISSUE_KINDS} | result.issues
    session.ingested_at = datetime.now(UTC)
    if save:
        session.save()


def ingest_journal(
    path: Path | str,
    *,
    unfinished_status: str | None = None,
    expected_session_id: uuid.UUID | None = None,
    spilled_only: bool = False,
) -> IngestResult:
    """Ingest one journal file, then the lines of its session that went to the database.

    ``unfinished_status`` (e.g. ``"interrupted"``) is given to a session whose journal has no
    closing line; without it such a session keeps its status. ``expected_session_id`` is the
    session the caller ingests (a downloaded copy of a published journal lives under another
    name): a journal naming another session raises ``JournalRefused`` and writes nothing.
    ``spilled_only``: the journal file was never written (every line went to the database), so
    ``path`` is not opened, only named; needs ``expected_session_id``.
    """
    path = Path(path)
    if spilled_only and expected_session_id is None:
        raise ValueError("spilled_only needs expected_session_id")
    try:
        result = _ingest(path, unfinished_status, expected_session_id, direct=True, no_file=spilled_only)
    except _DirectConflict:
        # An event id of this journal is already a row (of this session, never ingested as
        # such, or of another): everything again, through temporary tables, duplicates skipped.
        result = _ingest(path, unfinished_status, expected_session_id, direct=False, no_file=spilled_only)
    _warn_if_damaged(path, result)
    return result


def _ingest(
    path: Path,
    unfinished_status: str | None,
    expected: uuid.UUID | None,
    *,
    direct: bool,
    no_file: bool = False,
) -> IngestResult:
    """One attempt of ``ingest_journal``; ``direct``: a session never ingested gets its rows
    COPYed straight into the tables (``_DirectConflict`` when one of them is already there);
    ``no_file``: read only the lines spilled to the database."""
    result = IngestResult(path=str(path))
    issues: Issues = Issues()
    exists = not no_file and path.exists()
    lines = read_journal(path) if exists else iter(())
    header, seen, session_id = _header_and_session(path, lines, expected, issues)
    result.session_id = session_id
    spilled: list[int] = []
    with transaction.atomic():
        # Asked before any COPY holds the connection: almost always there is nothing.
        spilled_any = _begin(connections[router.db_for_write(LLMCall)], session_id)
        if not exists and not spilled_any:
            raise FileNotFoundError(f"journal {path} does not exist and nothing of it was spilled")
        session, created = (
            _session_row(session_id, header, path, expected, issues)
            if session_id is not None
            else (None, False)
        )
        # Rows and ingested_at are committed together: a session never ingested has no rows.
        sink = _sink(
            session_id, direct=direct and session is not None and (created or session.ingested_at is None)
        )
        read = _read_rows(
            _all_lines(seen, lines, session_id if spilled_any else None, spilled, sink.pause),
            session_id,
            sink,
            issues,
            result,
        )
        sink.close()
        issues["id_collision"] += sink.collisions
        result.spilled_lines = len(spilled)
        if session is None:
            result.finished = read.end is not None
            result.issues = {k: v for k, v in sorted(issues.items()) if v}
        else:
            # Spilled lines are kept (until retention prunes the session): a re-ingest then reads
            # exactly what the first one did, closing line and all.
            _finish(session, created, header, read, result, issues, unfinished_status)
    return result


def _finish(
    session: Session,
    created: bool,
    header: Any,
    read: _Read,
    result: IngestResult,
    issues: Issues,
    unfinished_status: str | None,
    totals: dict[str, Any] | None = None,
    users: dict[str, Any] | None = None,
    *,
    batch: bool = False,
) -> None:
    """The session's row once its rows are written (``totals``, ``users``: already read for a
    batch; ``batch``: the caller writes the rows of the batch's sessions and their tags together,
    ``_save_sessions`` and ``people.sync_tags_many``)."""
    result.finished = read.end is not None
    if created and header is None and read.first_at is not None:
        session.started_at = read.first_at
    people.apply(session, header, issues, users, sync=not batch)
    _complete_session(session, read, result, issues, unfinished_status, totals, save=not batch)


def _header_and_session(
    path: Path, lines: Iterator[JournalLine], expected: uuid.UUID | None, issues: Issues
) -> tuple[Any, list[JournalLine], uuid.UUID | None]:
    """The journal's header (else the one among its spilled lines), the lines read to find it
    and the session it is ingested as; JournalRefused when they name another session."""
    header, seen = _find_header(path, lines, issues)
    session_id = _session_id(path, header, expected)
    if session_id is not None and header is None:
        header = _spilled_header(session_id)
        _session_id(path, header, session_id)
        if header is None:
            issues["header_missing"] += 1
    return header, seen, session_id


def _warn_if_damaged(path: Path, result: IngestResult) -> None:
    """Log the first bad lines and the issues of an ingest that had any."""
    if result.bad_lines or result.issues:
        logger.warning(
            "ag2_logging ingested %s with bad lines %s and issues %s",
            path,
            result.bad_lines[:20],
            result.issues,
        )


def _all_lines(
    seen: list[JournalLine],
    rest: Iterator[JournalLine],
    session_id: uuid.UUID | None,
    spilled: list[int],
    pause: Callable[[], None],
) -> Iterator[JournalLine]:
    """The file's lines, then the session's spilled lines (their ids collected in ``spilled``)."""
    last = 0
    for line in itertools.chain(seen, rest):
        last = line.lineno
        yield line
    if session_id is not None:
        yield from _spilled_lines(session_id, last, spilled, pause)


# -- several journals in one transaction ---------------------------------------------------------------

#: Journals ``ingest_journals`` writes together in one transaction (one COPY per table).
#: A batch of ``ingest_journals``: at most this many journals, and this many bytes of them
#: together (a few large journals go one batch each; measured: 64 -> 256 journals of 100 calls
#: took 1,000 of them from about 19,000 to 20,000-21,500 rows/s on PostgreSQL).
BATCH_JOURNALS = 256
BATCH_BYTES = 64 * 1024 * 1024


@dataclass
class _Pending:
    """One journal of a batch: read up to its header, then its session's row and its rows."""

    index: int
    path: Path
    expected: uuid.UUID | None
    header: Any
    seen: list[JournalLine]
    lines: Iterator[JournalLine]
    issues: Issues
    result: IngestResult
    session: Session | None = None
    created: bool = False
    read: _Read = field(default_factory=_Read)


def ingest_journals(
    paths: Sequence[Path | str],
    *,
    unfinished_status: str | None = None,
    expected_session_ids: Sequence[uuid.UUID | None] | None = None,
) -> list[IngestResult | Exception]:
    """Ingest several journals; the same rows and sessions as ``ingest_journal`` on each in turn.

    Up to ``BATCH_JOURNALS`` journals of sessions never ingested share one transaction, one
    ``COPY`` (or ``executemany``) per table and one totals query. A journal that cannot join a
    batch (refused, missing, already ingested, with spilled lines, its session twice in the
    list) and every journal of a batch that fails (an id already a row, a database error, an
    unreadable file) are ingested one by one with ``ingest_journal``, so one bad journal never
    fails the others. ``expected_session_ids`` (one per path, or None) is ``ingest_journal``'s
    ``expected_session_id``. Returns, in the order of ``paths``, each journal's result or the
    exception its own ``ingest_journal`` raised (``JournalRefused``, ``FileNotFoundError``,
    a database error); nothing is raised for one journal.
    """
    expected = list(expected_session_ids) if expected_session_ids is not None else [None] * len(paths)
    if len(expected) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(expected)} expected session ids")
    out: list[IngestResult | Exception] = []
    items = [(Path(path), session_id) for path, session_id in zip(paths, expected, strict=True)]
    for chunk in _batches(items):
        done = _ingest_batch(chunk, unfinished_status)
        for index, (path, session_id) in enumerate(chunk):
            result: IngestResult | Exception | None = done.get(index)
            if result is None:
                try:
                    result = ingest_journal(
                        path, unfinished_status=unfinished_status, expected_session_id=session_id
                    )
                except Exception as exc:  # this journal's own failure, reported in its place
                    result = exc
            out.append(result)
    return out


def _batches(items: list[tuple[Path, uuid.UUID | None]]) -> Iterator[list[tuple[Path, uuid.UUID | None]]]:
    """``items`` in order, cut into batches of at most ``BATCH_JOURNALS`` journals and
    ``BATCH_BYTES`` bytes (a journal that cannot be sized counts as empty: it fails on its own)."""
    chunk: list[tuple[Path, uuid.UUID | None]] = []
    size = 0
    for item in items:
        try:
            length = item[0].stat().st_size
        except OSError:
            length = 0
        if chunk and (len(chunk) >= BATCH_JOURNALS or size + length > BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += length
    if chunk:
        yield chunk


def _ingest_batch(
    chunk: list[tuple[Path, uuid.UUID | None]], unfinished_status: str | None
) -> dict[int, IngestResult]:
    """The journals of ``chunk`` that a batch ingested, by index (none when the batch failed)."""
    connection = connections[router.db_for_write(LLMCall)]
    if len(chunk) < 2 or connection.vendor not in ("postgresql", "sqlite"):
        return {}
    pending = _open_all(chunk)
    if len(pending) < 2:
        return {}
    try:
        with transaction.atomic(using=connection.alias):
            batch = _lock_sessions(connection, pending)
            if batch:
                _write_batch(connection, batch, unfinished_status)
    except Exception as exc:  # each journal again on its own, where its failure is its own
        logger.info("ag2_logging ingests %d journals one by one: %s: %s", len(chunk), type(exc).__name__, exc)
        return {}
    for item in batch:
        _warn_if_damaged(item.path, item.result)
    return {item.index: item.result for item in batch}


def _open_all(chunk: list[tuple[Path, uuid.UUID | None]]) -> list[_Pending]:
    """The journals of ``chunk`` that exist and name their session, read up to their header."""
    pending = []
    for index, (path, expected) in enumerate(chunk):
        if not path.exists():
            continue
        issues: Issues = Issues()
        lines = read_journal(path)
        try:
            header, seen, session_id = _header_and_session(path, lines, expected, issues)
        except JournalRefused:
            continue
        if session_id is None:
            continue
        result = IngestResult(path=str(path), session_id=session_id)
        pending.append(_Pending(index, path, expected, header, seen, lines, issues, result))
    return pending


def _lock_sessions(connection: Any, pending: list[_Pending]) -> list[_Pending]:
    """The journals the batch takes, their session rows locked or created: sessions never
    ingested, without spilled lines, named once, recorded in this file (or expected)."""
    spilled = _begin_many(connection, [item.result.session_id for item in pending if item.result.session_id])
    unique: dict[uuid.UUID, _Pending] = {}
    for item in pending:
        session_id = item.result.session_id
        if session_id is not None and session_id not in spilled and session_id not in unique:
            unique[session_id] = item
    # Locked in id order: two batches sharing sessions wait for each other instead of deadlocking.
    locked = Session.objects.select_for_update().filter(pk__in=list(unique)).order_by("pk")
    rows = {session.pk: session for session in locked}
    created = _create_sessions([item for session_id, item in unique.items() if session_id not in rows])
    batch = []
    for session_id, item in unique.items():
        session = rows.get(session_id)
        if session is None:
            item.session, item.created = created[session_id], True
        elif session.ingested_at is None and (
            item.expected is not None
            or not session.journal_path
            or _same_file(session.journal_path, item.path)
        ):
            item.session = session
        else:
            continue
        batch.append(item)
    return batch


def _create_sessions(items: list[_Pending]) -> dict[uuid.UUID, Session]:
    """Session rows for journals whose session has none, from their headers, in one insert."""
    sessions: dict[uuid.UUID, Session] = {}
    for item in items:
        header = item.header if isinstance(item.header, dict) else {}
        assert item.result.session_id is not None
        sessions[item.result.session_id] = Session(
            id=item.result.session_id, **rows_mod.session_fields(header, item.issues)
        )
    parents = {s.parent_id for s in sessions.values() if s.parent_id is not None}
    known = set(Session.objects.filter(pk__in=parents).values_list("pk", flat=True)) if parents else set()
    for item in items:
        session = sessions[item.result.session_id]  # type: ignore[index]
        if session.parent_id is not None and session.parent_id not in known | sessions.keys():
            # A parent whose journal is not ingested yet (or was pruned): keep the child, drop the link.
            item.issues["parent_missing"] += 1
            session.parent_id = None
    # One insert; a row another ingest created meanwhile fails the batch (then one by one).
    Session.objects.bulk_create(list(sessions.values()))
    return sessions


def _write_batch(connection: Any, batch: list[_Pending], unfinished_status: str | None) -> None:
    """Every journal's rows through one sink, then each session's row from its totals."""
    sink = _batch_sink(connection)
    for item in batch:
        item.read = _read_rows(
            itertools.chain(item.seen, item.lines), item.result.session_id, sink, item.issues, item.result
        )
    sink.close()
    totals = _sessions_totals([item.result.session_id for item in batch if item.result.session_id])
    users = people.known_users(people.header_user(item.header) for item in batch)
    sessions = []
    for item in batch:
        assert item.session is not None
        _finish(
            item.session,
            item.created,
            item.header,
            item.read,
            item.result,
            item.issues,
            unfinished_status,
            totals[item.session.pk],
            users,
            batch=True,
        )
        sessions.append(item.session)
    people.sync_tags_many(sessions)
    _save_sessions(connection, sessions)


_SAVE_SQL: dict[str, tuple[str, str, list[Any]]] = {}


def _save_sql(connection: Any) -> tuple[str, str, list[Any]]:
    """The grouped ``UPDATE`` of ``_save_sessions`` (its ``{rows}`` left to fill), one row of
    its ``VALUES`` (each value cast to its column's type) and the fields in their order."""
    cached = _SAVE_SQL.get(connection.alias)
    if cached is None:
        quote = connection.ops.quote_name
        pk = Session._meta.pk
        assert pk is not None
        fields = [f for f in Session._meta.concrete_fields if not f.primary_key]
        names = ", ".join(quote(f.column) for f in [pk, *fields])
        sets = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields)
        sql = (
            f"UPDATE {quote(Session._meta.db_table)} AS t SET {sets} FROM (VALUES {{rows}}) "
            f"AS v({names}) WHERE t.{quote(pk.column)} = v.{quote(pk.column)}"
        )
        row = "(" + ", ".join(f"%s::{f.db_type(connection)}" for f in [pk, *fields]) + ")"
        cached = _SAVE_SQL[connection.alias] = (sql, row, fields)
    return cached


def _save_sessions(connection: Any, sessions: list[Session]) -> None:
    """``save()`` of each session, as one ``UPDATE ... FROM (VALUES ...)`` on PostgreSQL: every
    column, as ``save()`` writes them (a round trip per session was a tenth of a batch's time).
    Elsewhere each session's ``save()``."""
    if connection.vendor != "postgresql" or len(sessions) < 2:
        for session in sessions:
            session.save()
        return
    sql, row, fields = _save_sql(connection)
    params: list[Any] = []
    for session in sessions:
        params.append(session.pk)
        params.extend(f.get_db_prep_save(f.pre_save(session, False), connection) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(sql.format(rows=", ".join([row] * len(sessions))), params)
        if cursor.rowcount != len(sessions):  # every row was locked by this transaction
            raise RuntimeError(f"{len(sessions)} sessions to update, {cursor.rowcount} updated")


class _BatchSQLiteSink(_SQLiteSink):
    """SQLite in a batch: an id already a row fails the batch (then each journal on its own)."""

    def write(self, table: _Table, rows: list[Any]) -> None:
        sql = self.insert_sql(table)
        with self.connection.cursor() as cursor:
            cursor.executemany(sql, rows)
            if cursor.rowcount != len(rows):
                raise _DirectConflict(f"{len(rows) - cursor.rowcount} ids of the batch are already rows")


def _batch_sink(connection: Any) -> _Sink:
    """A sink that writes the rows of sessions never ingested, and fails at an existing id."""
    if connection.vendor == "postgresql":
        return _CopySink(connection, None, direct=True)
    return _BatchSQLiteSink(connection, None)
