"""Append-only JSON-lines journals: one file per session, written before anything else.

Layout (documented in the README)::

    <JOURNAL_DIR>/<YYYY-MM-DD>/<session-uuid>.jsonl     one session's events
    <JOURNAL_DIR>/unattributed/<host>-<pid>-<ts>.jsonl  calls made outside any session

Each line is one JSON object with a ``type``: ``session_start`` (first line, the session's ids),
``llm_call``, ``agent_event``, ``tool_call``, and ``session_end`` (last line, status and totals).
A journal without ``session_end`` belongs to a session whose process died.

Every line is handed to the kernel with a single ``write(2)`` on an ``O_APPEND`` descriptor, so a
process killed at any moment leaves whole lines (the last one at worst cut, and the reader skips
it). ``fsync`` follows ``JOURNAL_FSYNC``: at session end (default), after every event, or never.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger("ag2_logging.journal")

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class JournalWriter:
    """Writes whole lines to one journal; never raises (failures are counted)."""

    __slots__ = ("_fd", "failures", "fsync_each", "last_error", "path")

    def __init__(self, path: Path, *, fsync_each: bool = False) -> None:
        self.path = path
        self.fsync_each = fsync_each
        self.failures = 0
        self.last_error: str = ""
        self._fd: int | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, _FLAGS, 0o600)
        except OSError as exc:
            from ag2_logging.conf import JOURNAL_DIR_HINT

            # Check E004's words (a script runs no checks); the events go to the database instead.
            self._fail(
                exc,
                f"ag2_logging.E004 cannot write journal %s: %s; its events go to the database. {JOURNAL_DIR_HINT}",
            )

    def _fail(self, exc: OSError, said: str = "ag2_logging cannot write journal %s: %s") -> None:
        self.failures += 1
        if not self.last_error:
            # Logged once per journal: a full disk would otherwise log on every event.
            logger.error(said, self.path, exc)
        self.last_error = f"{errno.errorcode.get(exc.errno or 0, 'OSError')}: {exc.strerror or exc}"

    def write(self, line: bytes) -> bool:
        """Append ``line`` (without its newline) as one line."""
        return self.write_line(line + b"\n")

    def write_line(self, data: bytes) -> bool:
        """Append ``data``, one line that already ends with a newline, in one ``write(2)``."""
        fd = self._fd
        if fd is None:
            self.failures += 1
            return False
        try:
            written = os.write(fd, data)
            while written < len(data):  # short writes are rare on regular files, but legal
                written += os.write(fd, data[written:])
            if self.fsync_each:
                os.fsync(fd)
        except OSError as exc:
            self._fail(exc)
            return False
        return True

    def close(self, *, fsync: bool = True) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if fsync:
                os.fsync(fd)
        except OSError as exc:
            self._fail(exc)
        finally:
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None


@dataclass
class JournalLine:
    lineno: int
    event: dict[str, Any] | None
    error: str = ""
    #: The line holds ``\u0000`` somewhere (a NUL inside a string or a key, which PostgreSQL
    #: refuses in text and jsonb). Checked on the raw bytes, so clean lines cost one scan.
    nul: bool = False
    #: The line began with a UTF-8 byte order mark (removed before parsing).
    bom: bool = False


_BOM = b"\xef\xbb\xbf"
_NUL_ESCAPE = b"\\u0000"


def parse_line(raw: bytes, lineno: int) -> JournalLine | None:
    """One journal line (``None`` for a blank one); a line that is not an event comes with
    ``event=None``. Used for the file and for lines spilled to the database alike."""
    bom = raw.startswith(_BOM)
    if bom:
        # Editors and some Windows tools put one at the start of a file; it is not JSON.
        raw = raw[3:]
    if not raw or raw.isspace():
        return None
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return JournalLine(lineno, None, str(exc), bom=bom)
    if not isinstance(event, dict) or "type" not in event:
        return JournalLine(lineno, None, "not an event object", bom=bom)
    return JournalLine(lineno, event, nul=_NUL_ESCAPE in raw, bom=bom)


def read_journal(path: Path | str) -> Iterator[JournalLine]:
    """Yield every line of a journal; a line that is not a JSON object comes with ``event=None``."""
    # A large buffer: journal lines are a few KB each, so the default 8 KB would mean a read(2)
    # every few lines. orjson ignores the line's surrounding whitespace itself.
    with open(path, "rb", buffering=1 << 20) as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = parse_line(raw, lineno)
            if line is not None:
                yield line
