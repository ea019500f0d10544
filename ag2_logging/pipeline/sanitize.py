"""The sanitize pass: a second, thorough sweep over what a session left on disk and in the database.

The hot path (``ag2_logging.redaction`` in the recorder) is the real defence: what it removes is
never written. This pass runs after the session (the ``ag2_logging.sanitize_log`` Celery task)
and again over imported logs; it does not trust the hot path's shortcuts:

* every string of every journal line is redacted with ``redact(..., thorough=True)`` (each
  pattern that can match the string run by Python's ``re``, which ones can being decided
  exactly by RE2 supersets of the patterns; JSON inside strings decoded, key names at any depth, and the
  credential values this process remembered, see below). Results of identical strings are
  remembered, so a system prompt or a message repeated on every line costs one look-up;
* the runtime log lines that belong to the session (its ``Started new session`` line, its
  ``SESSION START``/``SESSION END`` lines) get the same treatment; other sessions' lines are
  left as they are;
* plain-text log lines are redacted as text, and a PEM private key block that spans several
  lines is removed whole;
* rows already ingested from the journal are updated where a value changed.

Remembered credentials. The values :mod:`ag2_logging.redaction.credentials` keeps (api keys
and header values the integrations were shown) live in the memory of the process that ran the
agents. Inline (Celery eager, or no Celery) this pass runs in that process and scrubs them too;
a Celery worker has never seen them, so there only the patterns apply: keys with a known prefix,
key names, and keys next to a key word (``generic_secret``: ``Incorrect API key provided:
<key>`` is caught when the key has letters and digits and enough entropy). An echoed value with
no recognisable shape (say 48 lower-case letters) is left by a worker's pass; the hot path,
which runs in the agents' process, has already removed it.

Files are rewritten atomically (write a temporary file beside, fsync, rename, fsync the
directory), and only when something was removed: the pass is idempotent, a second run removes
nothing and rewrites nothing. What was removed is reported as counts by kind, never values, and
merged into ``Session.redactions`` (and into the journal's closing line, so a later ingest keeps
the merged counts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ag2_logging.capture import runtime_log
from ag2_logging.redaction import MARKER, redact, redact_text

logger = logging.getLogger("ag2_logging.sanitize")

#: ``# AG2 SESSION START: {...}`` and the replaced system's ``# MOZAIKS SESSION START: {...}``.
_PREFIXED_JSON = re.compile(r"^(?P<prefix>#[^{\n]{0,80}?:[ \t]*)(?P<json>\{.*\})[ \t]*$", re.DOTALL)
_PEM_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
#: Subtrees that hold counts keyed by kind ("key:api_key": 2), not data: never redacted.
_COUNT_KEYS = ("totals", "redactions")


def merge_counts(*parts: dict[str, int] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for kind, n in (part or {}).items():
            out[kind] = out.get(kind, 0) + int(n)
    return out


def redact_record(record: Any, counts: dict[str, int]) -> Any:
    """Thorough redaction of one JSON record, leaving count dictionaries (``totals``) alone."""
    if not isinstance(record, dict):
        return redact(record, counts, thorough=True)
    kept = {key: record[key] for key in _COUNT_KEYS if key in record}
    rest = {key: value for key, value in record.items() if key not in kept and key != "sanitized"}
    out = redact(rest, counts, thorough=True)
    if not isinstance(out, dict):  # pragma: no cover - a dict stays a dict
        return out
    if "sanitized" in record:  # what an earlier pass removed: counts and a time
        out["sanitized"] = record["sanitized"]
    for key, value in kept.items():
        if isinstance(value, dict):
            inner = {k: v for k, v in value.items() if k != "redactions"}
            cleaned = redact(inner, counts, thorough=True)
            if "redactions" in value:
                cleaned["redactions"] = value["redactions"]
            out[key] = cleaned
        else:
            out[key] = value
    return out


def sanitize_json_line(text: str, counts: dict[str, int]) -> tuple[str, Any]:
    """A JSON line: ``(sanitized line, parsed record)``; raises ValueError when it is not JSON."""
    record = orjson.loads(text)
    local: dict[str, int] = {}
    cleaned = redact_record(record, local)
    if not local:
        return text, record
    for kind, n in local.items():
        counts[kind] = counts.get(kind, 0) + n
    return orjson.dumps(cleaned).decode(), cleaned


class LineSanitizer:
    """Sanitizes a text log line by line (JSON lines, ``# ...: {json}`` lines, plain text), and
    removes PEM private key blocks that span lines."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts: dict[str, int] = counts if counts is not None else {}
        self._in_pem = False

    def line(self, line: str) -> str | None:
        """The sanitized line (without its newline), or None when the line is dropped."""
        if self._in_pem:
            end = _PEM_END.search(line)
            if end is None:
                return None
            self._in_pem = False
            line = line[end.end() :]
            if not line.strip():
                return None
        begin = _PEM_BEGIN.search(line)
        if begin is not None and _PEM_END.search(line, begin.end()) is None:
            # The block goes on over the next lines: keep what stands before it, drop the rest.
            self._in_pem = True
            self.counts["pem_private_key"] = self.counts.get("pem_private_key", 0) + 1
            before = self.line(line[: begin.start()]) or ""
            return before + MARKER.format(kind="pem_private_key")
        stripped = line.strip()
        if stripped.startswith("{"):
            with contextlib.suppress(ValueError):
                return sanitize_json_line(stripped, self.counts)[0]
        match = _PREFIXED_JSON.match(stripped)
        if match is not None:
            with contextlib.suppress(ValueError):
                prefix = redact_text(match["prefix"], self.counts, thorough=True)
                return prefix + sanitize_json_line(match["json"], self.counts)[0]
        return redact_text(line, self.counts, thorough=True)

    def lines(self, lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            out = self.line(line.rstrip("\r\n"))
            if out is not None:
                yield out


# -- files ------------------------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data``: write a temporary file beside it, fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


# -- one session ----------------------------------------------------------------------------------


@dataclass
class JournalPass:
    counts: dict[str, int] = field(default_factory=dict)
    #: event id -> sanitized event, for events whose content changed
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_lines: list[int] = field(default_factory=list)
    rewritten: bool = False
    #: redactions recorded in the journal's closing line before this pass (hot path + earlier passes)
    recorded: dict[str, int] | None = None


def sanitize_journal(path: Path, *, also_removed: dict[str, int] | None = None) -> JournalPass:
    """Sanitize one journal in place (atomically, only when something was removed).

    ``also_removed``: what the same pass removed elsewhere (runtime log, rows), added to the counts
    of the journal's closing line so that a later ingest keeps every count.
    """
    result = JournalPass()
    raw = path.read_bytes()
    out: list[bytes] = []
    end_index: int | None = None
    end_record: Any = None  # only the closing line's record is kept: 100,000 parsed lines are not
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            out.append(line)
            continue
        text = line.decode("utf-8", "replace")
        local: dict[str, int] = {}
        try:
            cleaned_text, record = sanitize_json_line(text.strip(), local)
        except ValueError:
            # Not JSON (a line cut by a crash): redacted as text, kept for ingest to report.
            result.bad_lines.append(lineno)
            cleaned_text, record = redact_text(text, local, thorough=True), None
        if local:
            result.counts = merge_counts(result.counts, local)
            if isinstance(record, dict) and record.get("id") and record.get("type") != "session_end":
                result.changed[str(record["id"])] = record
        if isinstance(record, dict) and record.get("type") == "session_end":
            end_index, end_record = len(out), record
            recorded = (record.get("totals") or {}).get("redactions")
            result.recorded = dict(recorded) if isinstance(recorded, dict) else {}
        out.append(cleaned_text.encode() if local else line)
    removed = merge_counts(result.counts, also_removed)
    if end_index is not None and removed:
        end = dict(end_record)
        totals = dict(end.get("totals") or {})
        totals["redactions"] = merge_counts(result.recorded, removed)
        end["totals"] = totals
        end["sanitized"] = {"at": datetime.now(UTC).isoformat(), "removed": removed}
        out[end_index] = orjson.dumps(end)
    if removed:
        atomic_write(path, b"\n".join(out), mode=path.stat().st_mode & 0o777)
        result.rewritten = True
    return result


def sanitize_runtime_log(path: Path, session_id: str, *, since: datetime | None = None) -> dict[str, int]:
    """Sanitize the runtime-log lines of one session (those that name its id), in the current
    file and its rotated backups; rewrite a file atomically when one of its lines changed. Lines
    of other sessions are left as they are.

    ``since``: when the session started; a backup last written before then cannot hold its lines
    and is not read (a long-running process's log and backups are many megabytes, and each
    session's pass would otherwise read them all). Within a file only the lines that name the
    session are decoded and scanned.
    """

    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    oldest = since.timestamp() - RUNTIME_LOG_CLOCK_SLACK_SECONDS if since is not None else None
    # The lock ag2_logging.runtime_log takes to append and rotate: no line is lost or rotated
    # away while a file is rewritten.
    with runtime_log.exclusive(path):
        for file in [path, *runtime_log.backups(path)]:
            if oldest is not None and file != path:
                try:
                    if file.stat().st_mtime < oldest:
                        continue
                except OSError:  # rotated away meanwhile
                    continue
            _sanitize_runtime_file(file, session_id, counts)
    return counts


#: A backup whose last write is this much older than the session's start is still read (clocks
#: of file systems and of the process may differ a little).
RUNTIME_LOG_CLOCK_SLACK_SECONDS = 5.0


def _sanitize_runtime_file(path: Path, session_id: str, counts: dict[str, int]) -> None:
    data = path.read_bytes()
    key = session_id.encode()
    sanitizer = LineSanitizer(counts)
    pieces: list[bytes] = []
    done = 0  # data[:done] is in pieces already
    changed = False
    found = data.find(key)
    while found != -1:
        start = data.rfind(b"\n", 0, found) + 1
        end = data.find(b"\n", found)
        end = len(data) if end == -1 else end
        line = data[start:end]
        new = (sanitizer.line(line.decode("utf-8", "replace")) or "").encode()
        if new != line:
            pieces += [data[done:start], new]
            done = end
            changed = True
        found = data.find(key, end)
    if changed:
        pieces.append(data[done:])
        atomic_write(path, b"".join(pieces), mode=path.stat().st_mode & 0o777)


@dataclass
class SanitizeResult:
    session_id: str
    journal_path: str = ""
    journal: dict[str, int] = field(default_factory=dict)
    runtime_log: dict[str, int] = field(default_factory=dict)
    database: dict[str, int] = field(default_factory=dict)
    rows_updated: int = 0
    journal_rewritten: bool = False
    bad_lines: list[int] = field(default_factory=list)
    #: The journal is not on this host: nothing was read, and the session is not marked.
    journal_missing: bool = False

    @property
    def removed(self) -> dict[str, int]:
        return merge_counts(self.journal, self.runtime_log, self.database)

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "removed": self.removed,
            "journal": self.journal,
            "runtime_log": self.runtime_log,
            "database": self.database,
            "rows_updated": self.rows_updated,
            "journal_rewritten": self.journal_rewritten,
            "bad_lines": self.bad_lines,
            "journal_missing": self.journal_missing,
        }


_ROW_FIELDS: dict[str, tuple[str, ...]] = {
    "llm_call": ("request", "response", "error", "agent_name", "model", "response_id"),
    "agent_event": ("data", "error", "agent_name", "name"),
    "tool_call": ("arguments", "result_summary", "error", "agent_name", "name"),
}


def _update_rows(changed: dict[str, dict[str, Any]]) -> int:
    from ag2_logging.models import AgentEvent, LLMCall, ToolCall

    models: dict[str, Any] = {"llm_call": LLMCall, "agent_event": AgentEvent, "tool_call": ToolCall}
    updated = 0
    for event_id, event in changed.items():
        kind = str(event.get("type") or "")
        model = models.get(kind)
        if model is None:
            continue
        values: dict[str, Any] = {}
        for name in _ROW_FIELDS[kind]:
            if name in event:
                value = event[name]
                if name in ("error", "agent_name", "name", "model", "response_id", "result_summary"):
                    value = (
                        ""
                        if value is None
                        else value
                        if isinstance(value, str)
                        else orjson.dumps(value).decode()
                    )
                values[name] = value
        with contextlib.suppress(ValueError):
            updated += model.objects.filter(pk=uuid.UUID(event_id)).update(**values)
    return updated


def sanitize_session(
    session_id: uuid.UUID | str, *, runtime_log: bool | None = None, session: Any = None
) -> SanitizeResult | None:
    """The sanitize step: the journal, the runtime-log lines, the rows, the counts.

    ``runtime_log``: also clean this session's lines of the runtime log (default: only when
    this host wrote the session; another host's log is not ours to touch). ``sanitized_at``
    is set only when the journal was read here (or the session has none): a host that cannot
    see the journal marks nothing, and returns the result with ``journal_missing``.

    ``session``: the ``Session`` row as the caller has just read it (the chain, under its
    lease), so that it is not read again; its fields are brought up to date with what this pass
    saved (``sanitized_at``, ``redactions``, the cleaned text fields).
    """
    from ag2_logging.conf import conf
    from ag2_logging.models import Session

    if session is None:
        session = Session.objects.filter(pk=session_id).first()
    if session is None:
        logger.error("ag2_logging: cannot sanitize unknown session %s", session_id)
        return None
    result = SanitizeResult(session_id=str(session.pk), journal_path=session.journal_path)
    if runtime_log is None:
        runtime_log = not session.host or session.host == conf.resolved.host_name
    if runtime_log:
        result.runtime_log = sanitize_runtime_log(
            conf.resolved.log_file, str(session.pk), since=session.started_at
        )
    fields = _clean_session_fields(session, result.database)
    journal = _sanitize_session_journal(session, result)
    saved, written = _save_session(session.pk, result, fields, journal)
    for name in written:
        setattr(session, name, getattr(saved, name))
    if result.removed:
        logger.info("ag2_logging sanitize pass removed %s from session %s", result.removed, session.pk)
    return result


def _clean_session_fields(session: Any, counts: dict[str, int]) -> dict[str, str]:
    """The session's own text fields the thorough pass changes (cut to their columns)."""
    fields: dict[str, str] = {}
    for name in ("error", "chat_id", "workflow_name", "enterprise_id"):
        value = getattr(session, name)
        if value:
            cleaned = redact_text(value, counts, thorough=True)
            if cleaned != value:
                limit = getattr(type(session)._meta.get_field(name), "max_length", None)
                fields[name] = cleaned[: limit or None]
    return fields


def _sanitize_session_journal(session: Any, result: SanitizeResult) -> JournalPass | None:
    """The journal pass, when this host has the journal (else ``result.journal_missing``)."""
    if not session.journal_path:
        return None
    path = Path(session.journal_path)
    if not path.exists():
        result.journal_missing = True
        logger.warning(
            "ag2_logging: journal %s of session %s is not on this host; not marked sanitized",
            path,
            session.pk,
        )
        return None
    journal = sanitize_journal(path, also_removed=merge_counts(result.runtime_log, result.database))
    result.journal, result.bad_lines, result.journal_rewritten = (
        journal.counts,
        journal.bad_lines,
        journal.rewritten,
    )
    return journal


def _save_session(
    session_id: Any, result: SanitizeResult, fields: dict[str, str], journal: JournalPass | None
) -> tuple[Any, list[str]]:
    """Rows that changed, the session's cleaned fields and counts, and ``sanitized_at``; returns
    the saved row and the columns written (only those: the rest of the row is not this pass's)."""
    from django.db import transaction

    from ag2_logging.models import Session

    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id)
        result.rows_updated = _update_rows(journal.changed if journal is not None else {})
        for name, value in fields.items():
            setattr(session, name, value)
        # The journal's closing line holds the hot path's counts plus earlier passes'; without one
        # (a crashed process) the row's counts are the base.
        recorded = journal.recorded if journal is not None else None
        base = recorded if recorded is not None else dict(session.redactions or {})
        session.redactions = merge_counts(base, result.removed)
        written = [*fields, "redactions"]
        if not result.journal_missing:
            session.sanitized_at = datetime.now(UTC)
            written.append("sanitized_at")
        session.save(update_fields=written)
    return session, written
