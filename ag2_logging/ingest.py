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
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from django.db import IntegrityError, connections, models, router, transaction

from ag2_logging.journal import JournalLine, read_journal
from ag2_logging.models import AgentEvent, LLMCall, Session, ToolCall

logger = logging.getLogger("ag2_logging.ingest")

#: Rows per batch (per table) sent to the database.
BATCH_SIZE = 5_000
#: Rows per chunk of a PostgreSQL COPY stream.
COPY_CHUNK_ROWS = 200


@dataclass
class IngestResult:
    path: str
    session_id: uuid.UUID | None = None
    llm_calls: int = 0
    agent_events: int = 0
    tool_calls: int = 0
    bad_lines: list[int] = field(default_factory=list)
    finished: bool = False


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    parsed = Decimal(str(value))
    if not parsed.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return parsed


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _session_fields(header: dict[str, Any]) -> dict[str, Any]:
    parent = header.get("parent_id")
    return {
        "chat_id": header.get("chat_id") or "",
        "workflow_name": header.get("workflow_name") or "",
        "enterprise_id": header.get("enterprise_id") or "",
        "parent_id": uuid.UUID(parent) if parent else None,
        "started_at": _dt(header.get("started_at")) or datetime.now(UTC),
        "host": header.get("host") or "",
        "pid": header.get("pid"),
        "journal_path": header.get("journal_path") or "",
    }


def _llm_call(event: dict[str, Any], session_id: uuid.UUID | None) -> dict[str, Any]:
    return {
        "id": uuid.UUID(event["id"]),
        "session_id": session_id,
        "seq": int(event.get("seq") or 0),
        "invocation_id": str(event.get("invocation_id") or "")[:64],
        "agent_name": str(event.get("agent_name") or "")[:255],
        "provider": str(event.get("provider") or "")[:64],
        "model": str(event.get("model") or "")[:255],
        "response_id": str(event.get("response_id") or "")[:255],
        "prompt_tokens": int(event.get("prompt_tokens") or 0),
        "completion_tokens": int(event.get("completion_tokens") or 0),
        "cached_tokens": int(event.get("cached_tokens") or 0),
        "cache_write_tokens": int(event.get("cache_write_tokens") or 0),
        "reasoning_tokens": int(event.get("reasoning_tokens") or 0),
        "total_tokens": int(event.get("total_tokens") or 0),
        "cost": _dec(event.get("cost")),
        "price_status": event.get("price_status") or LLMCall.PriceStatus.UNKNOWN,
        "ag2_cost": _dec(event.get("ag2_cost")),
        "latency_ms": _float(event.get("latency_ms")),
        "is_cached": bool(event.get("is_cached")),
        "status": event.get("status") or LLMCall.Status.SUCCESS,
        "error": str(event.get("error") or ""),
        "attempt": int(event.get("attempt") or 1),
        "retries": int(event.get("retries") or 0),
        "started_at": _dt(event.get("started_at")),
        "ended_at": _dt(event.get("ended_at") or event.get("ts")),
        "request": event.get("request"),
        "response": event.get("response"),
    }


def _agent_event(event: dict[str, Any], session_id: uuid.UUID | None) -> dict[str, Any]:
    return {
        "id": uuid.UUID(event["id"]),
        "session_id": session_id,
        "seq": int(event.get("seq") or 0),
        "agent_name": str(event.get("agent_name") or "")[:255],
        "name": str(event.get("name") or "")[:255],
        "data": event.get("data"),
        "error": str(event.get("error") or ""),
        "duration_ms": _float(event.get("duration_ms")),
        "created_at": _dt(event.get("ts")) or datetime.now(UTC),
    }


def _tool_call(event: dict[str, Any], session_id: uuid.UUID | None) -> dict[str, Any]:
    summary = event.get("result_summary")
    return {
        "id": uuid.UUID(event["id"]),
        "session_id": session_id,
        "seq": int(event.get("seq") or 0),
        "agent_name": str(event.get("agent_name") or "")[:255],
        "name": str(event.get("name") or "")[:255],
        "arguments": event.get("arguments"),
        "result_summary": summary if isinstance(summary, str) else str(summary or ""),
        "duration_ms": _float(event.get("duration_ms")),
        "error": str(event.get("error") or ""),
        "started_at": _dt(event.get("started_at")),
        "ended_at": _dt(event.get("ended_at") or event.get("ts")),
    }


RowModel = type[LLMCall] | type[AgentEvent] | type[ToolCall]

_BUILDERS: dict[str, Callable[[dict[str, Any], uuid.UUID | None], dict[str, Any]]] = {
    "llm_call": _llm_call,
    "agent_event": _agent_event,
    "tool_call": _tool_call,
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

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.tables = {kind: _Table(model, connection) for kind, model in _MODELS.items()}
        self.pending: dict[str, list[Any]] = {kind: [] for kind in _MODELS}

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

    def write(self, table: _Table, rows: list[Any]) -> None:
        table.model.objects.bulk_create(rows, batch_size=1_000, ignore_conflicts=True)


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

    def __init__(self, connection: Any, *, direct: bool) -> None:
        super().__init__(connection)
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


def _has_rows(session_id: uuid.UUID) -> bool:
    return any(model.objects.filter(session_id=session_id).exists() for model in _MODELS.values())


def _use_lz4(connection: Any) -> None:
    """Compress this transaction's large JSON values with lz4 rather than pglz, where available.

    PostgreSQL compresses a row's largest values once the row passes ~2 KB (a call with its
    bodies does); pglz costs the server more than parsing the row. The method is recorded with
    each value, so reading needs nothing, and older rows keep theirs.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
        )
        if cursor.fetchone() is not None:
            cursor.execute("SET LOCAL default_toast_compression = lz4")


def _sink(session_id: uuid.UUID | None) -> _Sink:
    connection = connections[router.db_for_write(LLMCall)]
    if connection.vendor == "postgresql":
        _use_lz4(connection)
        try:
            return _CopySink(connection, direct=session_id is not None and not _has_rows(session_id))
        except TypeError:  # a field type added to the models that COPY encoding does not know yet
            return _Sink(connection)
    if connection.vendor == "sqlite":
        return _SQLiteSink(connection)
    return _Sink(connection)


def refresh_session_totals(session: Session) -> None:
    totals = LLMCall.objects.for_session(session.pk).totals()
    for key, value in totals.items():
        setattr(session, key, value if value is not None else (Decimal(0) if key == "total_cost" else 0))


def _header(
    path: Path | str, lines: Iterator[JournalLine]
) -> tuple[dict[str, Any] | None, list[JournalLine]]:
    """The session header (the journal's first ``session_start`` line) and the lines read to find it."""
    seen: list[JournalLine] = []
    for line in lines:
        seen.append(line)
        if line.event is not None:
            break
    first = seen[-1].event if seen else None
    if first is not None and first["type"] == "session_start":
        return first.get("session") or {}, seen
    # Not where the recorder puts it: look further (journals written by other tools).
    for line in read_journal(path):
        if line.event is not None and line.event["type"] == "session_start":
            return line.event.get("session") or {}, seen
    return None, seen


def ingest_journal(path: Path | str, *, unfinished_status: str | None = None) -> IngestResult:
    """Ingest one journal file. ``unfinished_status`` (e.g. ``"interrupted"``) is given to a
    session whose journal has no closing line; without it such a session keeps its status."""
    result = IngestResult(path=str(path))
    lines = read_journal(path)
    header, seen = _header(path, lines)
    session_id = uuid.UUID(header["session_id"]) if header and header.get("session_id") else None
    result.session_id = session_id
    end: dict[str, Any] | None = None
    last_ts: Any = None
    counts = dict.fromkeys(_BUILDERS, 0)
    with transaction.atomic():
        session = None
        if header is not None and session_id is not None:
            session, _ = Session.objects.select_for_update().get_or_create(
                id=session_id, defaults=_session_fields(header)
            )
        sink = _sink(session_id)
        for line in _chain(seen, lines):
            event = line.event
            if event is None:
                result.bad_lines.append(line.lineno)
                continue
            kind = event["type"]
            if kind == "session_start":
                continue
            if kind == "session_end":
                end = event
                continue
            builder = _BUILDERS.get(kind)
            if builder is None:
                result.bad_lines.append(line.lineno)
                continue
            last_ts = event.get("ts")
            try:
                row = builder(event, session_id)
            except (KeyError, ValueError, TypeError, ArithmeticError):
                result.bad_lines.append(int(event.get("seq") or 0))
                continue
            counts[kind] += 1
            sink.add(kind, row)
        sink.close()
        result.finished = end is not None
        result.llm_calls = counts["llm_call"]
        result.agent_events = counts["agent_event"]
        result.tool_calls = counts["tool_call"]
        if session is not None:
            if end is not None:
                session.status = end.get("status") or Session.Status.COMPLETED
                session.ended_at = _dt(end.get("ended_at") or end.get("ts"))
                session.error = str(end.get("error") or "")
                end_totals = end.get("totals") or {}
                session.dropped_events = int(end_totals.get("dropped_events") or 0)
                session.redactions = end_totals.get("redactions") or {}
            elif unfinished_status and session.status == Session.Status.RUNNING:
                session.status = unfinished_status
                session.ended_at = session.ended_at or _dt(last_ts)
            refresh_session_totals(session)
            session.bad_journal_lines = len(result.bad_lines)
            session.ingested_at = datetime.now(UTC)
            session.save()
    if result.bad_lines:
        logger.warning(
            "ag2_logging skipped %d bad line(s) in %s: %s", len(result.bad_lines), path, result.bad_lines[:20]
        )
    return result


def _chain(first: list[JournalLine], rest: Iterator[JournalLine]) -> Iterator[JournalLine]:
    yield from first
    yield from rest
