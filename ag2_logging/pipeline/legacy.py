"""Import of old AG2 logs: sanitize, summarize, ingest as imported sessions.

Reads three kinds of file, detected from their content:

* classic AG2's ``FileLogger`` runtime log (``runtime_logging.start(logger_type="file")``): JSON
  lines for LLM calls (``invocation_id``, ``request``, ``response`` as the ``repr`` of the
  ``ChatCompletion``, ``cost``...), agents, wrappers, clients, events and function calls, after a
  ``Started new session with Session ID: ...`` line;
* classic AG2's ``SqliteLogger`` database (``logger_type="sqlite"``): the ``chat_completions``,
  ``oai_clients``... tables;
* the log of the system this app replaces: the ``FileLogger`` lines plus
  ``# MOZAIKS SESSION START: {json}`` lines carrying ``chat_id``, ``workflow_name`` and
  ``enterprise_id`` (``# ... SESSION END: {json}`` lines, when present, give the status).

Every file is sanitized first (``ag2_logging.sanitize``, the thorough pass): a sanitized copy is
written beside the original (``<name>.sanitized``, or ``<name>.sanitized.db`` for a database),
or the original is rewritten atomically with ``in_place=True`` (a database is then vacuumed, so
no free page keeps an old value). Everything after reads the sanitized data only.

Each session becomes the journal the recorder would have written (``session_start``,
``llm_call``, ``session_end``), ``JOURNAL_DIR/imported/<session>.jsonl``, and takes the one path
every session takes: ``ingest_journal`` then ``summarize_session``, so reports see it at once.
Events take deterministic ids (``uuid5`` of the file's identity, the legacy session and the call's
``invocation_id`` or line), so importing a file twice, or its sanitized copy, adds nothing. Calls
are priced by ``pricing.price_call`` (its cost-zero rules included); AG2's own cost is kept as
``ag2_cost``. Malformed lines are counted and reported with their numbers, never fatal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from ag2_logging import pricing
from ag2_logging.events import Totals
from ag2_logging.pipeline.sanitize import LineSanitizer, fsync_dir, merge_counts
from ag2_logging.redaction import redact, redact_text

logger = logging.getLogger("ag2_logging.legacy_import")

__all__ = [
    "ImportResult",
    "LegacyCall",
    "LegacyLog",
    "LegacySession",
    "import_log",
    "read_log",
    "summarize_autogen_runtime_file",
    "summarize_runtime_log",
]

#: Statuses a legacy session may end with (Session.Status, less "running": an import is finished).
_FINISHED = frozenset({"completed", "failed", "cancelled", "interrupted"})
NAMESPACE = uuid.UUID("5d7f3c2e-2a41-4f0e-9a63-0d8f5b1e7c44")
SQLITE_MAGIC = b"SQLite format 3\x00"
#: Files at least this big get a progress bar on stderr.
PROGRESS_MIN_BYTES = 1 << 20

_STARTED = re.compile(r"Started new session with Session ID:\s*(?P<id>[0-9A-Za-z\-]+)")
_PREFIXED = re.compile(r"^#\s*(?P<system>[A-Z0-9_ ]*?)\s*SESSION (?P<what>START|END):\s*(?P<json>\{.*\})\s*$")
_AG2_ERROR = re.compile(r"^\[\w+\] ")
# The repr of an openai ChatCompletion, as FileLogger writes it (str(response)).
_REPR_ID = re.compile(r"^ChatCompletion\(id='(?P<id>[^']*)'")
_REPR_MODEL = re.compile(r"created=\d+, model='(?P<model>[^']*)'")
_REPR_USAGE = re.compile(
    r"usage=CompletionUsage\(completion_tokens=(?P<completion>\d+), prompt_tokens=(?P<prompt>\d+), "
    r"total_tokens=(?P<total>\d+)(?P<rest>.*)$",
    re.DOTALL,
)
_REPR_CACHED = re.compile(r"prompt_tokens_details=PromptTokensDetails\([^)]*?cached_tokens=(?P<n>\d+)")
_REPR_REASONING = re.compile(
    r"completion_tokens_details=CompletionTokensDetails\([^)]*?reasoning_tokens=(?P<n>\d+)"
)


@dataclass
class LegacyCall:
    ref: str  # "line 12" or "row 3": where it came from
    key: str  # invocation id or line number: the call's identity inside its file
    session_key: str
    agent_name: str = ""
    model: str = ""
    provider: str = "unknown"
    response_id: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    ag2_cost: Decimal | None = None
    is_cached: bool = False
    error: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    request: Any = None
    response: Any = None
    cost: Decimal | None = None
    price_status: str = "unknown"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class LegacySession:
    key: str
    chat_id: str = ""
    workflow_name: str = ""
    enterprise_id: str = ""
    status: str = "completed"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    calls: list[LegacyCall] = field(default_factory=list)
    tool_calls: int = 0
    agent_events: int = 0
    described: bool = False  # a SESSION START line said what it was
    redactions: dict[str, int] = field(default_factory=dict)  # what sanitizing its lines removed


@dataclass
class LegacyLog:
    path: str
    format: str  # "file" (AG2 FileLogger), "mozaiks" (the replaced system), "sqlite"
    identity: str
    sessions: dict[str, LegacySession] = field(default_factory=dict)
    bad_lines: list[int] = field(default_factory=list)
    lines: int = 0
    ag2_errors: int = 0
    redactions: dict[str, int] = field(default_factory=dict)

    def session(self, key: str) -> LegacySession:
        found = self.sessions.get(key)
        if found is None:
            found = self.sessions[key] = LegacySession(key)
        return found

    @property
    def calls(self) -> list[LegacyCall]:
        return [call for session in self.sessions.values() for call in session.calls]


# -- small parsers ------------------------------------------------------------------------------


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).strip().replace("Z", "+00:00")
    for parse in (
        lambda t: datetime.strptime(t, "%Y-%m-%d %H:%M:%S.%f"),
        lambda t: datetime.strptime(t, "%Y-%m-%d %H:%M:%S"),
        datetime.fromisoformat,
    ):
        try:
            parsed = parse(text)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _usage_from_dict(response: dict[str, Any]) -> tuple[int, int, int, int]:
    usage = response.get("usage") or {}
    if not isinstance(usage, dict):
        return 0, 0, 0, 0
    prompt = _int(usage.get("prompt_tokens") or usage.get("input_tokens"))
    completion = _int(usage.get("completion_tokens") or usage.get("output_tokens"))
    cached = _int((usage.get("prompt_tokens_details") or {}).get("cached_tokens"))
    reasoning = _int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens"))
    return prompt, completion, cached, reasoning


def _fill_from_response(call: LegacyCall, response: Any, request: Any) -> None:
    """Tokens, model and id from what AG2 logged as the response (a repr, JSON text or a dict)."""
    if isinstance(response, str):
        stripped = response.strip()
        if stripped.startswith("{"):
            with contextlib.suppress(ValueError):
                response = orjson.loads(stripped)
    if isinstance(response, dict) and "response" in response and len(response) == 1:
        response = response["response"]  # SqliteLogger's wrapping of an error string
    if isinstance(response, dict):
        call.prompt_tokens, call.completion_tokens, call.cached_tokens, call.reasoning_tokens = (
            _usage_from_dict(response)
        )
        call.model = str(response.get("model") or "")
        call.response_id = str(response.get("id") or "")
        call.response = response
    elif isinstance(response, str) and response.startswith("ChatCompletion("):
        if (m := _REPR_ID.search(response)) is not None:
            call.response_id = m["id"]
        if (m := _REPR_MODEL.search(response)) is not None:
            call.model = m["model"]
        if (m := _REPR_USAGE.search(response)) is not None:
            call.prompt_tokens, call.completion_tokens = int(m["prompt"]), int(m["completion"])
            rest = m["rest"]
            if (c := _REPR_CACHED.search(rest)) is not None:
                call.cached_tokens = int(c["n"])
            if (r := _REPR_REASONING.search(rest)) is not None:
                call.reasoning_tokens = int(r["n"])
        call.response = {"repr": response}
    elif response is not None:
        call.error = str(response)[:10_000]
    if not call.model and isinstance(request, dict):
        call.model = str(request.get("model") or "")


def _client_info(init_args: Any) -> tuple[str | None, str | None]:
    if isinstance(init_args, str):
        with contextlib.suppress(ValueError):
            init_args = json.loads(init_args)
    if not isinstance(init_args, dict):
        return None, None
    base_url = init_args.get("base_url")
    return init_args.get("api_type"), str(base_url) if base_url else None


# -- text logs ------------------------------------------------------------------------------------


class _Progress:
    """A tqdm-free progress bar on stderr: ``[#########.........]  45% name``."""

    def __init__(self, total: int, label: str, stream: IO[str] | None, *, enabled: bool) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.shown = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        percent = min(100, done * 100 // self.total)
        if percent != self.shown:
            self.shown = percent
            bar = "#" * (percent // 4) + "." * (25 - percent // 4)
            self.stream.write(f"\r[{bar}] {percent:3d}% {self.label}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.update(self.total)
            self.stream.write("\n")
            self.stream.flush()


def _identity(first: bytes) -> str:
    return hashlib.sha256(first).hexdigest()[:32]


def _iter_lines(fh: IO[bytes]) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line without newline, bytes read so far)."""
    done = 0
    for lineno, raw in enumerate(fh, start=1):
        done += len(raw)
        yield lineno, raw.rstrip(b"\r\n"), done


class _TextReader:
    def __init__(self, log: LegacyLog) -> None:
        self.log = log
        self.current = "default"
        self.clients: dict[int, tuple[str | None, str | None]] = {}

    def line(self, lineno: int, text: str) -> None:
        log = self.log
        stripped = text.strip()
        if not stripped:
            return
        if (m := _STARTED.search(stripped)) is not None and not stripped.startswith("{"):
            self.current = m["id"]
            log.session(self.current)
            return
        if (m := _PREFIXED.match(stripped)) is not None:
            try:
                payload = orjson.loads(m["json"])
            except orjson.JSONDecodeError:
                log.bad_lines.append(lineno)
                return
            if "AG2" in m["system"].split():
                return  # this app's own runtime log: those sessions have journals
            log.format = "mozaiks"
            self.session_line(m["what"], payload if isinstance(payload, dict) else {})
            return
        if stripped.startswith("{"):
            try:
                record = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                log.bad_lines.append(lineno)
                return
            if isinstance(record, dict) and self.record(lineno, record):
                return
            log.bad_lines.append(lineno)
            return
        if _AG2_ERROR.match(stripped):
            log.ag2_errors += 1  # AG2's own "[file_logger] Failed to log ..." lines
            return
        log.bad_lines.append(lineno)

    def session_line(self, what: str, payload: dict[str, Any]) -> None:
        nested = payload.get("session_info")
        info: dict[str, Any] = nested if isinstance(nested, dict) else payload
        key = str(info.get("session_id") or payload.get("session_id") or self.current)
        session = self.log.session(key)
        self.current = key
        if what == "START":
            session.described = True
            session.chat_id = str(info.get("chat_id") or session.chat_id)
            session.workflow_name = str(info.get("workflow_name") or session.workflow_name)
            session.enterprise_id = str(info.get("enterprise_id") or session.enterprise_id)
            session.started_at = _ts(
                info.get("started_at") or info.get("start_time") or payload.get("timestamp")
            )
        else:
            session.status = str(payload.get("status") or info.get("status") or session.status)
            session.ended_at = _ts(
                payload.get("ended_at") or payload.get("end_time") or payload.get("timestamp")
            )

    def record(self, lineno: int, record: dict[str, Any]) -> bool:
        if "invocation_id" in record and "response" in record:
            call = LegacyCall(
                ref=f"line {lineno}",
                key=str(record.get("invocation_id") or f"line-{lineno}"),
                session_key=self.current,
                agent_name=str(record.get("source_name") or ""),
                ag2_cost=_dec(record.get("cost")),
                is_cached=bool(record.get("is_cached")),
                started_at=_ts(record.get("start_time")),
                ended_at=_ts(record.get("end_time")),
                request=record.get("request"),
            )
            _fill_from_response(call, record.get("response"), record.get("request"))
            api_type, base_url = self.clients.get(_int(record.get("client_id")), (None, None))
            call.provider = _provider(api_type, base_url, call.model)
            self.log.session(self.current).calls.append(call)
            return True
        if "client_id" in record and "json_state" in record:
            self.clients[_int(record.get("client_id"))] = _client_info(record.get("json_state"))
            return True
        if "event_name" in record:
            self.log.session(self.current).agent_events += 1
            return True
        if "input_args" in record:
            self.log.session(self.current).tool_calls += 1
            return True
        return "agent_type" in record or ("wrapper_id" in record and "json_state" in record)


def _provider(api_type: str | None, base_url: str | None, model: str) -> str:
    from ag2_logging.conf import conf

    return pricing.detect_provider(
        api_type=api_type, base_url=base_url, model=model, base_url_map=conf.resolved.provider_base_urls
    )


def sanitized_path(path: Path) -> Path:
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return path.with_name(path.stem + ".sanitized" + path.suffix)
    return path.with_name(path.name + ".sanitized")


def _read_text(
    path: Path, *, in_place: bool, write: bool, progress: _Progress | None
) -> tuple[LegacyLog, Path | None]:
    """Sanitize (into a copy, in place, or nowhere when ``write`` is off) and parse a text log."""
    counts: dict[str, int] = {}
    sanitizer = LineSanitizer(counts)
    target = path if in_place else sanitized_path(path)
    out: IO[bytes] | None = None
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    first = b""
    log = LegacyLog(path=str(path), format="file", identity="")
    reader = _TextReader(log)
    try:
        if write:
            out = open(tmp, "wb")  # noqa: SIM115 - closed in finally, renamed on success
        with open(path, "rb") as fh:
            for lineno, raw, done in _iter_lines(fh):
                log.lines = lineno
                local: dict[str, int] = {}
                sanitizer.counts = local
                cleaned = sanitizer.line(raw.decode("utf-8", "replace"))
                if local:
                    owner = log.session(reader.current).redactions
                    for kind, n in local.items():
                        owner[kind] = owner.get(kind, 0) + n
                        counts[kind] = counts.get(kind, 0) + n
                if cleaned is None:
                    continue
                if not first and cleaned.strip():
                    first = cleaned.encode()
                if out is not None:
                    out.write(cleaned.encode() + b"\n")
                reader.line(lineno, cleaned)
                if progress is not None:
                    progress.update(done)
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
            out.close()
            out = None
            os.replace(tmp, target)
            fsync_dir(target.parent)
    finally:
        if out is not None:
            out.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
    log.identity = _identity(first)
    log.redactions = counts
    return log, (target if write else None)


# -- SQLite --------------------------------------------------------------------------------------

#: TEXT columns of SqliteLogger's tables that may hold secrets.
_SQLITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "chat_completions": ("request", "response", "source_name"),
    "agents": ("init_args", "name"),
    "oai_wrappers": ("init_args",),
    "oai_clients": ("init_args",),
    "events": ("json_state", "source_name"),
    "function_calls": ("args", "returns", "source_name", "function_name"),
}


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


def _sanitized_sqlite_source(
    path: Path, counts: dict[str, int], *, in_place: bool, write: bool
) -> tuple[Path, Path | None]:
    """Sanitize the database (into a copy, in place, or nowhere when ``write`` is off); returns
    the file to read and where the sanitized data was written."""
    if not write:
        return path, None
    target = path if in_place else sanitized_path(path)
    if not in_place:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(path, tmp)
        _sanitize_sqlite(tmp, counts)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    else:
        _sanitize_sqlite(path, counts)
    return target, target


def _sqlite_clients(
    connection: sqlite3.Connection, tables: set[str]
) -> dict[int, tuple[str | None, str | None]]:
    """(api_type, base_url) of each ``oai_clients`` row, by client id."""
    clients: dict[int, tuple[str | None, str | None]] = {}
    if "oai_clients" in tables:
        for client_id, init_args in connection.execute("SELECT client_id, init_args FROM oai_clients"):
            clients[_int(client_id)] = _client_info(init_args)
    return clients


_SQLITE_CALLS = (
    "SELECT id, invocation_id, client_id, session_id, source_name, request, response, is_cached, "
    "cost, start_time, end_time FROM chat_completions ORDER BY id"
)


def _sqlite_call(
    row: tuple[Any, ...], request_obj: Any, clients: dict[int, tuple[str | None, str | None]]
) -> LegacyCall:
    """The call of one ``chat_completions`` row (its request already parsed)."""
    rowid, invocation, client_id, session_key, source, _, response, cached, cost, start, end = row
    call = LegacyCall(
        ref=f"row {rowid}",
        key=str(invocation or f"row-{rowid}"),
        session_key=str(session_key or "default"),
        agent_name=str(source or ""),
        ag2_cost=_dec(cost),
        is_cached=bool(cached),
        started_at=_ts(start),
        ended_at=_ts(end),
        request=request_obj,
    )
    _fill_from_response(call, response, request_obj)
    api_type, base_url = clients.get(_int(client_id), (None, None))
    call.provider = _provider(api_type, base_url, call.model)
    return call


def _read_sqlite_calls(
    connection: sqlite3.Connection, log: LegacyLog, clients: dict[int, tuple[str | None, str | None]]
) -> bytes:
    """Add the ``chat_completions`` rows to ``log`` as calls; returns the bytes its identity hashes."""
    first = b""
    for row in connection.execute(_SQLITE_CALLS):
        rowid, invocation, session_key, request = row[0], row[1], row[3], row[5]
        log.lines += 1
        if not first:
            first = f"{session_key}:{invocation}".encode()
        try:
            request_obj = json.loads(request) if request else None
        except ValueError:
            log.bad_lines.append(int(rowid))
            continue
        call = _sqlite_call(row, request_obj, clients)
        log.session(call.session_key).calls.append(call)
    return first


def _count_sqlite_extras(connection: sqlite3.Connection, tables: set[str], log: LegacyLog) -> None:
    """Agent events and function calls, counted on the log's first session (rows name none)."""
    if "events" in tables:
        for (count,) in connection.execute("SELECT count(*) FROM events"):
            if log.sessions:
                next(iter(log.sessions.values())).agent_events += int(count)
    if "function_calls" in tables:
        for (count,) in connection.execute("SELECT count(*) FROM function_calls"):
            if log.sessions:
                next(iter(log.sessions.values())).tool_calls += int(count)


def _read_sqlite(path: Path, *, in_place: bool, write: bool) -> tuple[LegacyLog, Path | None]:
    counts: dict[str, int] = {}
    source, target = _sanitized_sqlite_source(path, counts, in_place=in_place, write=write)
    log = LegacyLog(path=str(path), format="sqlite", identity="")
    connection = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        clients = _sqlite_clients(connection, tables)
        first = _read_sqlite_calls(connection, log, clients) if "chat_completions" in tables else b""
        _count_sqlite_extras(connection, tables, log)
    finally:
        connection.close()
    log.identity = _identity(first)
    log.redactions = counts
    if counts and log.sessions:
        # Which row held what is not tracked for a database: the file's counts go to its first session.
        first_session = next(iter(log.sessions.values()))
        first_session.redactions = merge_counts(first_session.redactions, counts)
    return log, target


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def read_log(
    path: Path | str,
    *,
    in_place: bool = False,
    write: bool = True,
    progress: bool = True,
    stream: IO[str] | None = None,
    progress_min_bytes: int | None = None,
) -> tuple[LegacyLog, Path | None]:
    """Sanitize and parse one legacy log; returns it and where the sanitized data was written."""
    path = Path(path)
    if _is_sqlite(path):
        log, written = _read_sqlite(path, in_place=in_place, write=write)
    else:
        size = path.stat().st_size
        threshold = PROGRESS_MIN_BYTES if progress_min_bytes is None else progress_min_bytes
        bar = _Progress(size, path.name, stream, enabled=progress and size >= threshold)
        try:
            log, written = _read_text(path, in_place=in_place, write=write, progress=bar)
        finally:
            bar.close()
    _price(log)
    return log, written


def _price(log: LegacyLog) -> None:
    from ag2_logging.conf import conf
    from ag2_logging.pricing import cache

    overrides = cache.read()  # this process may never have opened a session: read the rows now

    for call in log.calls:
        usage = pricing.normalize_usage(
            call.provider,
            call.prompt_tokens,
            call.completion_tokens,
            call.cached_tokens,
            call.reasoning_tokens,
            0,
        )
        call.prompt_tokens, call.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        call.cached_tokens, call.reasoning_tokens = usage.cached_tokens, usage.reasoning_tokens
        # The cost-zero rules (failed calls, AG2 cache hits) are price_call's, as for the recorder.
        result = pricing.price_call(
            call.provider,
            call.model,
            usage,
            at=call.ended_at or datetime.now(UTC),
            overrides=overrides,
            local_rate=conf.resolved.local_model_rate,
            error=call.error,
            is_cached=call.is_cached,
        )
        call.cost, call.price_status = result.cost, result.status


# -- summary ----------------------------------------------------------------------------------------


def _bucket() -> dict[str, Any]:
    return {
        "calls": 0,
        "errors": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 0,
        "cost": Decimal(0),
        "ag2_cost": Decimal(0),
        "unpriced_calls": 0,
    }


def _add(bucket: dict[str, Any], call: LegacyCall) -> None:
    bucket["calls"] += 1
    bucket["errors"] += 1 if call.error else 0
    bucket["prompt_tokens"] += call.prompt_tokens
    bucket["completion_tokens"] += call.completion_tokens
    bucket["cached_tokens"] += call.cached_tokens
    bucket["reasoning_tokens"] += call.reasoning_tokens
    bucket["total_tokens"] += call.total_tokens
    if call.cost is None:
        bucket["unpriced_calls"] += 1
    else:
        bucket["cost"] += call.cost
    bucket["ag2_cost"] += call.ag2_cost or Decimal(0)


def summarize(log: LegacyLog) -> dict[str, Any]:
    total = _bucket()
    by_model: dict[str, dict[str, Any]] = {}
    by_session: dict[str, dict[str, Any]] = {}
    for session in log.sessions.values():
        for call in session.calls:
            _add(total, call)
            _add(by_model.setdefault(call.model or "(unknown)", _bucket()), call)
            _add(by_session.setdefault(session.key, _bucket()), call)
    return {
        "path": log.path,
        "format": log.format,
        "lines": log.lines,
        "sessions": len([s for s in log.sessions.values() if s.calls or s.described]),
        **total,
        "tool_calls": sum(s.tool_calls for s in log.sessions.values()),
        "agent_events": sum(s.agent_events for s in log.sessions.values()),
        "by_model": by_model,
        "by_session": by_session,
        "bad_lines": list(log.bad_lines),
    }


def summarize_runtime_log(path: Path | str) -> dict[str, Any]:
    """Calls, tokens and cost (ours, priced with genai-prices, and AG2's) of an old AG2 log, in
    total, by model and by session; ``bad_lines`` lists the numbers of malformed lines.

    Reads the file only (it writes nothing; secrets are never part of a summary).
    """
    log, _ = read_log(path, write=False, progress=False)
    return summarize(log)


#: The replaced system's name for :func:`summarize_runtime_log`.
summarize_autogen_runtime_file = summarize_runtime_log


# -- ingest -----------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    path: str
    format: str
    sanitized_path: str | None
    sessions: int = 0
    sessions_created: int = 0
    calls: int = 0
    calls_created: int = 0
    bad_lines: list[int] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def _session_id(log: LegacyLog, key: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{log.identity}:session:{key}")


def _call_id(log: LegacyLog, call: LegacyCall) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{log.identity}:call:{call.session_key}:{call.key}")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _call_event(log: LegacyLog, call: LegacyCall, seq: int, fallback: datetime) -> dict[str, Any]:
    """The ``llm_call`` event the recorder would have written for this call (same keys)."""
    ended = call.ended_at or call.started_at or fallback
    return {
        "type": "llm_call",
        "id": str(_call_id(log, call)),
        "ts": ended.isoformat(),
        "generation": "classic",
        "invocation_id": call.key[:64],
        "agent_name": call.agent_name,
        "provider": call.provider,
        "model": call.model,
        "response_id": call.response_id,
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.completion_tokens,
        "cached_tokens": call.cached_tokens,
        "cache_write_tokens": 0,
        "reasoning_tokens": call.reasoning_tokens,
        "total_tokens": call.total_tokens,
        "cost": str(call.cost) if call.cost is not None else None,
        "price_status": call.price_status,
        "ag2_cost": str(call.ag2_cost) if call.ag2_cost is not None else None,
        "latency_ms": (
            (call.ended_at - call.started_at).total_seconds() * 1000.0
            if call.started_at and call.ended_at
            else None
        ),
        "is_cached": call.is_cached,
        "status": "error" if call.error else "success",
        "error": call.error,
        "attempt": 1,
        "retries": 0,
        "started_at": _iso(call.started_at),
        "ended_at": ended.isoformat(),
        "request": call.request,
        "response": call.response,
        "seq": seq,
    }


def _totals(session: LegacySession, redactions: dict[str, int]) -> dict[str, Any]:
    totals = Totals(tool_calls=session.tool_calls, agent_events=session.agent_events, redactions=redactions)
    for call in session.calls:
        totals.call_count += 1
        totals.error_count += bool(call.error)
        totals.prompt_tokens += call.prompt_tokens
        totals.completion_tokens += call.completion_tokens
        totals.cached_tokens += call.cached_tokens
        totals.reasoning_tokens += call.reasoning_tokens
        totals.total_tokens += call.total_tokens
        if call.cost is None:
            totals.unpriced_calls += 1
        else:
            totals.total_cost += call.cost
    return totals.as_dict()


def journal_events(
    log: LegacyLog, session: LegacySession, header: dict[str, Any], redactions: dict[str, int]
) -> list[dict[str, Any]]:
    """A legacy session as the journal the recorder writes: ``session_start``, one ``llm_call``
    per call, ``session_end``. Ids derive from the file's identity, so they repeat on re-import."""
    started = datetime.fromisoformat(header["started_at"])
    ends = [t for c in session.calls if (t := c.ended_at or c.started_at) is not None]
    ended = session.ended_at or max(ends, default=started)
    events: list[dict[str, Any]] = [
        {
            "type": "session_start",
            "id": header["session_id"],
            "ts": _iso(started),
            "session": header,
            "seq": 1,
        }
    ]
    events += [_call_event(log, call, seq, started) for seq, call in enumerate(session.calls, start=2)]
    status = session.status if session.status in _FINISHED else "completed"
    events.append(
        {
            "type": "session_end",
            "id": header["session_id"],
            "ts": _iso(ended),
            "status": status,
            "error": "",
            "ended_at": _iso(ended),
            "totals": _totals(session, redactions),
            "seq": len(events) + 1,
        }
    )
    return events


def _write_journal(path: Path, events: list[dict[str, Any]]) -> None:
    """Write the whole journal at once (temporary file, fsync, rename): a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(b"".join(orjson.dumps(e, default=str) + b"\n" for e in events))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _header(
    session: LegacySession,
    session_id: uuid.UUID,
    path: Path,
    overrides: tuple[str | None, str | None],
    now: datetime,
) -> dict[str, Any]:
    """The ``session_start`` header the recorder writes (``SessionRecorder.header``'s keys)."""
    from ag2_logging.conf import conf

    enterprise_id, workflow_name = overrides
    starts = [t for c in session.calls if (t := c.started_at or c.ended_at) is not None]
    return {
        "session_id": str(session_id),
        "chat_id": (session.chat_id or session.key)[:255],
        "workflow_name": (workflow_name if workflow_name is not None else session.workflow_name)[:255],
        "enterprise_id": (enterprise_id if enterprise_id is not None else session.enterprise_id)[:255],
        "parent_id": None,
        "started_at": _iso(session.started_at or min(starts, default=now)),
        "host": conf.resolved.host_name,
        "pid": os.getpid(),
        "journal_path": str(path),
    }


def ingest_log(
    log: LegacyLog, *, enterprise_id: str | None = None, workflow_name: str | None = None
) -> tuple[int, int, int]:
    """Rows for a parsed (sanitized) legacy log: (sessions, sessions created, calls created).

    Each session becomes a journal, ``JOURNAL_DIR/imported/<session>.jsonl``, in the recorder's
    format, which then takes the one path every session takes: ``ingest_journal``, then
    ``summarize_session`` (so the reports see it at once).
    """
    from ag2_logging.conf import conf
    from ag2_logging.models import LLMCall, Session
    from ag2_logging.pipeline.ingest import ingest_journal
    from ag2_logging.pipeline.rollups import summarize_session

    sessions = created_sessions = created_calls = 0
    now = datetime.now(UTC)
    for session in log.sessions.values():
        if not session.calls and not session.described:
            continue
        sessions += 1
        sid = _session_id(log, session.key)
        before = Session.objects.filter(pk=sid).values("redactions").first()
        ids = {_call_id(log, call) for call in session.calls}
        known = LLMCall.objects.filter(pk__in=ids).count()
        # Counts of a re-import of the sanitized copy would be empty: the first import's stay.
        redactions = (before["redactions"] if before else None) or dict(session.redactions)
        path = conf.resolved.journal_dir / "imported" / f"{sid}.jsonl"
        header = _header(session, sid, path, (enterprise_id, workflow_name), now)
        _write_journal(path, journal_events(log, session, header, redactions))
        ingest_journal(path, expected_session_id=sid)
        Session.objects.filter(pk=sid).update(source=Session.Source.IMPORTED, sanitized_at=now)
        summarize_session(sid)
        created_sessions += before is None
        created_calls += len(ids) - known
    return sessions, created_sessions, created_calls


def import_log(
    path: Path | str,
    *,
    in_place: bool = False,
    enterprise_id: str | None = None,
    workflow_name: str | None = None,
    progress: bool = True,
    stream: IO[str] | None = None,
    progress_min_bytes: int | None = None,
) -> ImportResult:
    """Sanitize, summarize and ingest one legacy log (the ``ag2_logging_import`` command)."""
    log, written = read_log(
        path, in_place=in_place, progress=progress, stream=stream, progress_min_bytes=progress_min_bytes
    )
    sessions, created_sessions, created_calls = ingest_log(
        log, enterprise_id=enterprise_id, workflow_name=workflow_name
    )
    if log.bad_lines:
        logger.warning(
            "ag2_logging import skipped %d malformed line(s) in %s: %s",
            len(log.bad_lines),
            path,
            log.bad_lines[:20],
        )
    return ImportResult(
        path=str(path),
        format=log.format,
        sanitized_path=str(written) if written else None,
        sessions=sessions,
        sessions_created=created_sessions,
        calls=len(log.calls),
        calls_created=created_calls,
        bad_lines=list(log.bad_lines),
        redactions=log.redactions,
        summary=summarize(log),
    )
