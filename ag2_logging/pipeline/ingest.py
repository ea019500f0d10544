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
from collections.abc import Callable, Iterator
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
from ag2_logging.pipeline import rows as rows_mod
from ag2_logging.pipeline.rows import Issues, strip_nul

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

    def write(self, table: _Table, rows: list[Any]) -> None:
        quote = self.connection.ops.quote_name
        sql = "INSERT OR IGNORE INTO {} ({}) VALUES ({})".format(
            quote(table.model._meta.db_table),
            ", ".join(quote(c) for c in table.columns),
            ", ".join(["%s"] * len(table.columns)),
        )
        with self.connection.cursor() as cursor:
            cursor.executemany(sql, rows)
            skipped = len(rows) - cursor.rowcount
        if skipped > 0:
            # Rows skipped as already there: this session's (a re-ingest, a repeated line) are
            # expected; another session's are counted. Asked only when something was skipped.
            at = table.attnames.index("id")
            ids = [uuid.UUID(row[at]) if isinstance(row[at], str) else row[at] for row in rows]
            self.collisions += _foreign_rows(table.model, ids, self.session_id)


def _copy_text(value: str) -> bytes:
    return _copy_bytes(value.encode())


def _copy_bytes(data: bytes) -> bytes:
    if b"\\" in data or b"\n" in data or b"\r" in data or b"\t" in data:
        data = (
            data.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r").replace(b"\t", b"\\t")
        )
    return data


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
        return lambda value: _copy_bytes(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
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


class _CopyStream:
    """One open ``COPY ... FROM STDIN`` into one table, fed line by line.

    A worker thread (psycopg's ``QueuedLibpqWriter``) sends each chunk while this thread parses
    and encodes the next lines, so the server inserts rows while Python makes them. The lines are
    kept until the stream is closed: a direct stream that hits a duplicate id is replayed staged.
    """

    def __init__(self, sink: _CopySink, kind: str) -> None:
        from psycopg.copy import QueuedLibpqWriter

        self.sink = sink
        self.kind = kind
        self.lines: list[bytes] = []
        self.sent = 0
        self.stack = ExitStack()
        connection = sink.connection
        table = sink.tables[kind]
        quote = connection.ops.quote_name
        self.target = quote(table.model._meta.db_table)
        self.columns = ", ".join(quote(c) for c in table.columns)
        self.staged = not sink.direct
        self.into = quote("ag2_ingest_" + table.model._meta.db_table) if self.staged else self.target
        if not self.staged:
            # A savepoint, so that a duplicate id can be retried without losing the transaction.
            self.stack.enter_context(transaction.atomic(using=connection.alias))
        self.cursor = self.stack.enter_context(connection.cursor()).cursor  # psycopg's own cursor
        if self.staged:
            self.cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.into} (LIKE {self.target} INCLUDING DEFAULTS) "
                "ON COMMIT DROP"
            )
            self.cursor.execute(f"TRUNCATE {self.into}")
        self.copy = self.stack.enter_context(
            self.cursor.copy(
                f"COPY {self.into} ({self.columns}) FROM STDIN", writer=QueuedLibpqWriter(self.cursor)
            )
        )

    def add(self, line: bytes) -> None:
        self.lines.append(line)
        if len(self.lines) - self.sent >= COPY_CHUNK_ROWS:
            self._send()

    def _send(self) -> None:
        self.copy.write(b"".join(self.lines[self.sent :]))
        self.sent = len(self.lines)

    def close(self) -> bool:
        """End the COPY; False when a direct stream met an existing id (nothing was written)."""
        from psycopg import IntegrityError as DriverIntegrityError  # raised through psycopg's own cursor

        try:
            self._send()
            self.stack.close()
        except (IntegrityError, DriverIntegrityError):
            if self.staged:
                raise
            return False
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
        return True


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
            kind: list(
                zip(table.attnames, table.defaults, [_copy_encoder(f) for f in table.fields], strict=True)
            )
            for kind, table in self.tables.items()
        }
        self.stream: _CopyStream | None = None

    def prepare(self, kind: str, row: dict[str, Any]) -> bytes:
        get = row.get
        return (
            b"\t".join(
                [
                    b"\\N" if (v := get(name, default)) is None else enc(v)
                    for name, default, enc in self.encoders[kind]
                ]
            )
            + b"\n"
        )

    def add(self, kind: str, row: dict[str, Any]) -> None:
        line = self.prepare(kind, row)
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
        if stream is not None and not stream.close():
            # The journal repeats an event id (a copied line): skip duplicates from now on.
            self.direct = False
            self.write(self.tables[stream.kind], stream.lines)

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
            if not stream.close():
                self.direct = False
                self.write(table, rows[start:])
                return


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


def _has_rows(session_id: uuid.UUID) -> bool:
    return any(model.objects.filter(session_id=session_id).exists() for model in _MODELS.values())


def _use_lz4(connection: Any) -> None:
    """This transaction's settings on PostgreSQL: lz4 compression, and a commit that does not
    wait for the WAL to reach the disk.

    PostgreSQL compresses a row's largest values once the row passes ~2 KB (a call with its
    bodies does); pglz costs the server more than parsing the row. The method is recorded with
    each value, so reading needs nothing, and older rows keep theirs.

    ``synchronous_commit = off`` (this transaction only): a journal of a hundred calls otherwise
    spends most of its ingest waiting for one WAL flush. Nothing can be lost that the journal
    does not still hold: a server crash within the next few hundred milliseconds loses the rows
    and ``ingested_at`` together (never one without the other), so recovery ingests the journal
    again, and ingest is idempotent.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        available = getattr(connection, "_ag2_lz4", None)
        if available is None:  # asked once per connection wrapper: the server's build does not change
            cursor.execute(
                "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
            )
            available = connection._ag2_lz4 = cursor.fetchone() is not None
        if available:
            cursor.execute("SET LOCAL default_toast_compression = lz4")


def _sink(session_id: uuid.UUID | None, *, new_session: bool = False) -> _Sink:
    """The writer for this database; ``new_session``: the Session row was just created, so it
    has no rows yet (no need to ask)."""
    connection = connections[router.db_for_write(LLMCall)]
    if connection.vendor == "postgresql":
        _use_lz4(connection)
        try:
            direct = session_id is not None and (new_session or not _has_rows(session_id))
            return _CopySink(connection, session_id, direct=direct)
        except TypeError:  # a field type added to the models that COPY encoding does not know yet
            return _Sink(connection, session_id)
    if connection.vendor == "sqlite":
        return _SQLiteSink(connection, session_id)
    return _Sink(connection, session_id)


def refresh_session_totals(session: Session) -> None:
    totals = LLMCall.objects.for_session(session.pk).totals()
    for key, value in totals.items():
        setattr(session, key, value if value is not None else (Decimal(0) if key == "total_cost" else 0))


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
        builder = _BUILDERS.get(kind)
        try:
            if builder is None:
                raise KeyError(kind)
            row = builder(event, session_id, issues)
        except rows_mod.OutOfRange:
            issues["out_of_range"] += 1
            result.bad_lines.append(line.lineno)
            continue
        except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError):
            result.bad_lines.append(line.lineno)
            continue
        counts[kind] += 1
        at = row.get("ended_at") or row.get("created_at")
        read.first_at = read.first_at or at
        read.last_at = at or read.last_at
        sink.add(kind, row)
    result.llm_calls, result.agent_events, result.tool_calls = (
        counts["llm_call"],
        counts["agent_event"],
        counts["tool_call"],
    )
    return read


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
        held = Decimal(getattr(session, key))
        # Costs: each row is rounded to the column's 10 places, the process's sum was not.
        slack = Decimal(session.call_count + 1).scaleb(-10) if key == "total_cost" else 0
        if abs(counted - held) > slack:
            return True
    return False


def _complete_session(
    session: Session, read: _Read, result: IngestResult, issues: Issues, unfinished_status: str | None
) -> None:
    """Status, totals, counts and ``incomplete`` of the session after its rows are written."""
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
    refresh_session_totals(session)
    session.incomplete = bool(session.dropped_events) or _differs(recorded, session)
    session.bad_journal_lines = len(result.bad_lines)
    issues["id_collision"] = issues.get("id_collision", 0)
    result.issues = {k: v for k, v in sorted(issues.items()) if v}
    kept = session.ingest_issues if isinstance(session.ingest_issues, dict) else {}
    session.ingest_issues = {k: v for k, v in kept.items() if k not in ISSUE_KINDS} | result.issues
    session.ingested_at = datetime.now(UTC)
    session.save()


def ingest_journal(
    path: Path | str,
    *,
    unfinished_status: str | None = None,
    expected_session_id: uuid.UUID | None = None,
) -> IngestResult:
    """Ingest one journal file, then the lines of its session that went to the database.

    ``unfinished_status`` (e.g. ``"interrupted"``) is given to a session whose journal has no
    closing line; without it such a session keeps its status. ``expected_session_id`` is the
    session the caller ingests (a downloaded copy of a published journal lives under another
    name): a journal naming another session raises ``JournalRefused`` and writes nothing.
    """
    path = Path(path)
    result = IngestResult(path=str(path))
    issues: Issues = Issues()
    exists = path.exists()
    lines = read_journal(path) if exists else iter(())
    header, seen, session_id = _header_and_session(path, lines, expected_session_id, issues)
    # Asked once, before any COPY holds the connection: almost always there is nothing.
    spilled_any = session_id is not None and SpilledEvent.objects.filter(session_id=session_id).exists()
    if not exists and not spilled_any:
        raise FileNotFoundError(f"journal {path} does not exist and nothing of it was spilled")
    result.session_id = session_id
    spilled: list[int] = []
    with transaction.atomic():
        session, created = (
            _session_row(session_id, header, path, expected_session_id, issues)
            if session_id is not None
            else (None, False)
        )
        sink = _sink(session_id, new_session=created)
        spilled_from = session_id if spilled_any else None
        read = _read_rows(
            _all_lines(seen, lines, spilled_from, spilled, sink.pause), session_id, sink, issues, result
        )
        sink.close()
        issues["id_collision"] += sink.collisions
        result.spilled_lines = len(spilled)
        result.finished = read.end is not None
        if session is None:
            result.issues = {k: v for k, v in sorted(issues.items()) if v}
        else:
            if created and header is None and read.first_at is not None:
                session.started_at = read.first_at
            # Spilled lines are kept (until retention prunes the session): a re-ingest then reads
            # exactly what the first one did, closing line and all.
            _complete_session(session, read, result, issues, unfinished_status)
    _warn_if_damaged(path, result)
    return result


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
