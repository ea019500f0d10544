"""AG2's SqliteLogger database: sanitized (into a copy, or in place and vacuumed), then read from
its ``chat_completions``, ``oai_clients``, ``events`` and ``function_calls`` tables."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from ag2_logging.pipeline.legacy.files import mode_of, replacing
from ag2_logging.pipeline.legacy.records import (
    LegacyCall,
    LegacyLog,
    parse_dec,
    parse_int,
    parse_ts,
    provider_of,
)
from ag2_logging.pipeline.legacy.responses import UnreadableResponse, fill_from_response
from ag2_logging.pipeline.legacy.source import Progress, Source, check_sqlite, open_binary, read_only_uri
from ag2_logging.pipeline.legacy.text import client_info, sanitized_path
from ag2_logging.pipeline.sanitize import merge_counts
from ag2_logging.redaction import redact, redact_text

#: TEXT columns of SqliteLogger's tables that may hold secrets.
_SQLITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "chat_completions": ("request", "response", "source_name"),
    "agents": ("init_args", "name"),
    "oai_wrappers": ("init_args",),
    "oai_clients": ("init_args",),
    "events": ("json_state", "source_name"),
    "function_calls": ("args", "returns", "source_name", "function_name"),
}
_SQLITE_CALLS = (
    "SELECT id, invocation_id, client_id, session_id, source_name, request, response, is_cached, "
    "cost, start_time, end_time FROM chat_completions ORDER BY id"
)


def _redact_cell(value: Any, counts: dict[str, int]) -> Any:
    if not isinstance(value, str) or not value:
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return redact_text(value, counts, thorough=True)
    if not isinstance(parsed, dict | list | str):
        return value
    local: dict[str, int] = {}
    cleaned = redact(parsed, local, thorough=True)
    if not local:
        return value
    for kind, n in local.items():
        counts[kind] = counts.get(kind, 0) + n
    return json.dumps(cleaned, indent=4 if "\n" in value else None)


def _sanitize_sqlite(db: Path, counts: dict[str, int]) -> None:
    connection = sqlite3.connect(db)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, columns in _SQLITE_COLUMNS.items():
            if table not in tables:
                continue
            present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column not in present:
                    continue
                rows = connection.execute(f"SELECT rowid, {column} FROM {table}").fetchall()
                for rowid, value in rows:
                    cleaned = _redact_cell(value, counts)
                    if cleaned != value:
                        connection.execute(
                            f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (cleaned, rowid)
                        )
        connection.commit()
        # Old values stay in free pages until the file is rebuilt.
        connection.execute("VACUUM")
    finally:
        connection.close()


def _sanitized_source(
    source: Source, counts: dict[str, int], *, in_place: bool, write: bool
) -> tuple[Path, Path | None]:
    """Sanitize the database (into a copy, in place, or nowhere when ``write`` is off); returns
    the file to read and where the sanitized data was written.

    The database is copied into a new file (``files.replacing``: created exclusively under a
    random name, never through a link), checked and sanitized there, then renamed over
    ``<stem>.sanitized.db`` (or the file itself when ``in_place``), with the original's
    permissions."""
    if not write:
        return source.real, None
    target = source.real if in_place else sanitized_path(source.path)
    with replacing(target, mode=mode_of(source.real)) as (out, tmp):
        with open_binary(source) as original:
            shutil.copyfileobj(original, out)
        out.close()  # SQLite rewrites the file; replacing() fsyncs it before the rename
        check_sqlite(tmp)  # the file read is the one checked
        _sanitize_sqlite(tmp, counts)
    return target, target


def _clients(connection: sqlite3.Connection, tables: set[str]) -> dict[int, tuple[str | None, str | None]]:
    """(api_type, base_url) of each ``oai_clients`` row, by client id."""
    clients: dict[int, tuple[str | None, str | None]] = {}
    if "oai_clients" in tables:
        for client_id, init_args in connection.execute("SELECT client_id, init_args FROM oai_clients"):
            clients[parse_int(client_id)] = client_info(init_args)
    return clients


def _call(row: tuple[Any, ...], clients: dict[int, tuple[str | None, str | None]]) -> LegacyCall:
    """The call of one ``chat_completions`` row (ValueError when its request or response is unreadable)."""
    rowid, invocation, client_id, session_key, source, request, response, cached, cost, start, end = row
    request_obj = json.loads(request) if request else None
    call = LegacyCall(
        ref=f"row {rowid}",
        key=str(invocation or f"row-{rowid}"),
        session_key=str(session_key or "default"),
        agent_name=source if isinstance(source, str) else "",
        ag2_cost=parse_dec(cost),
        is_cached=bool(cached),
        started_at=parse_ts(start),
        ended_at=parse_ts(end),
        request=request_obj,
    )
    fill_from_response(call, response, request_obj, text_is_repr=False)
    api_type, base_url = clients.get(parse_int(client_id), (None, None))
    call.provider = provider_of(api_type, base_url, call.model)
    return call


def _read_calls(
    connection: sqlite3.Connection,
    log: LegacyLog,
    clients: dict[int, tuple[str | None, str | None]],
    progress: Progress | None,
) -> None:
    """Add the ``chat_completions`` rows to ``log`` as calls (an unreadable row is a bad line)."""
    if progress is not None:
        progress.total = max(1, connection.execute("SELECT count(*) FROM chat_completions").fetchone()[0])
    for row in connection.execute(_SQLITE_CALLS):
        log.lines += 1
        try:
            call = _call(row, clients)
        except (ValueError, UnreadableResponse):
            log.bad_lines.append(parse_int(row[0]))
            continue
        log.recognized += 1
        log.session(call.session_key).calls.append(call)
        if progress is not None:
            progress.update(log.lines)


def _count_extras(connection: sqlite3.Connection, tables: set[str], log: LegacyLog) -> None:
    """Agent events and function calls, counted on the log's first session (rows name none)."""
    for table, attribute in (("events", "agent_events"), ("function_calls", "tool_calls")):
        if table in tables and log.sessions:
            (count,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
            first = next(iter(log.sessions.values()))
            setattr(first, attribute, getattr(first, attribute) + int(count))


def read_sqlite(
    source: Source, *, in_place: bool, write: bool, progress: Progress | None = None
) -> tuple[LegacyLog, Path | None]:
    """Sanitize and parse a SqliteLogger database; returns it and where the sanitized data went."""
    counts: dict[str, int] = {}
    read_from, target = _sanitized_source(source, counts, in_place=in_place, write=write)
    log = LegacyLog(path=str(source.path), format="sqlite")
    connection = sqlite3.connect(read_only_uri(read_from), uri=True)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        _read_calls(connection, log, _clients(connection, tables), progress)
        _count_extras(connection, tables, log)
    finally:
        connection.close()
    log.redactions = counts
    if counts and log.sessions:
        # Which row held what is not tracked for a database: the file's counts go to its first session.
        first_session = next(iter(log.sessions.values()))
        first_session.redactions = merge_counts(first_session.redactions, counts)
    return log, target
