"""Which files may be read as AG2 logs: regular files only, symbolic links only when asked, and
only what AG2 writes (a SqliteLogger database with its ``chat_completions`` table, or a text log
with AG2's lines; the text check is made while reading, see ``text.read_text``)."""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SQLITE_MAGIC = b"SQLite format 3\x00"
#: Columns of AG2's SqliteLogger ``chat_completions`` table that the import reads.
SQLITE_CALL_COLUMNS = frozenset(
    {"id", "invocation_id", "client_id", "session_id", "source_name", "request", "response"}
    | {"is_cached", "cost", "start_time", "end_time"}
)
#: Compressed files, by their first bytes: refused with this name (decompress them first).
_COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
)
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class NotAnAG2Log(ValueError):
    """The file cannot be imported: the message says why (``not an AG2 log: ...``, a directory,
    a symbolic link not followed, a FIFO...). Nothing was written."""


@dataclass(frozen=True)
class Source:
    """A file accepted for reading: ``path`` as given (a sanitized copy goes beside it), ``real``
    the file read (the link's target when a symbolic link is followed), ``kind`` ``"sqlite"`` or
    ``"text"``, ``size`` in bytes."""

    path: Path
    real: Path
    kind: str
    size: int


def _regular(path: Path, *, follow_symlinks: bool) -> os.stat_result:
    """The file's status; NotAnAG2Log unless it is a regular file (or a followed link to one)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise NotAnAG2Log("no such file") from None
    if stat.S_ISLNK(info.st_mode):
        if not follow_symlinks:
            raise NotAnAG2Log(
                f"is a symbolic link (to {os.readlink(path)}): not followed without --follow-symlinks"
            )
        try:
            info = os.stat(path)
        except FileNotFoundError:
            raise NotAnAG2Log("is a broken symbolic link") from None
    if stat.S_ISDIR(info.st_mode):
        raise NotAnAG2Log("is a directory, not an AG2 log")
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise NotAnAG2Log(f"is {kind}, not an AG2 log file")
    return info


def read_only_uri(path: Path) -> str:
    """The ``file:`` URI that opens the database at ``path`` read-only (any character in its name)."""
    return f"{Path(os.path.abspath(path)).as_uri()}?mode=ro"


def open_binary(source: Source) -> IO[bytes]:
    """The file for reading. ``real`` is never a link (a followed one was resolved): a link put in
    its place since the check is refused, and so is a FIFO (never waited on)."""
    try:
        fd = os.open(source.real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise NotAnAG2Log(f"cannot be opened: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotAnAG2Log("is not a regular file, not an AG2 log file")
    return os.fdopen(fd, "rb")


def check_sqlite(path: Path) -> None:
    """NotAnAG2Log unless ``path`` is a SQLite database with AG2's ``chat_completions`` table."""
    try:
        connection = sqlite3.connect(read_only_uri(path), uri=True)
    except sqlite3.Error as exc:
        raise NotAnAG2Log(f"not an AG2 log: unreadable SQLite database ({exc})") from None
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "chat_completions" not in tables:
            raise NotAnAG2Log(
                "not an AG2 log: a SQLite database without AG2's chat_completions table "
                f"(tables: {', '.join(sorted(tables)) or 'none'})"
            )
        columns = {row[1] for row in connection.execute("PRAGMA table_info(chat_completions)")}
        missing = sorted(SQLITE_CALL_COLUMNS - columns)
        if missing:
            raise NotAnAG2Log(f"not an AG2 log: chat_completions lacks AG2's columns {', '.join(missing)}")
    except sqlite3.Error as exc:
        raise NotAnAG2Log(f"not an AG2 log: unreadable SQLite database ({exc})") from None
    finally:
        connection.close()


def open_source(path: Path | str, *, follow_symlinks: bool = False) -> Source:
    """Check that ``path`` may be read as an AG2 log; raises NotAnAG2Log (nothing is written).

    A text file is accepted here and checked line by line when read (no AG2 line: refused)."""
    path = Path(path)
    info = _regular(path, follow_symlinks=follow_symlinks)
    real = Path(os.path.realpath(path)) if follow_symlinks else path
    if info.st_size == 0:
        raise NotAnAG2Log("not an AG2 log: the file is empty")
    with open_binary(Source(path, real, "text", info.st_size)) as fh:
        head = fh.read(64)
    for magic, name in _COMPRESSED:
        if head.startswith(magic):
            raise NotAnAG2Log(f"not an AG2 log: {name}-compressed data (decompress it first)")
    if head.startswith(SQLITE_MAGIC):
        check_sqlite(real)
        return Source(path, real, "sqlite", info.st_size)
    return Source(path, real, "text", info.st_size)


class Progress:
    """A tqdm-free progress bar on stderr: ``[#########.........]  45% name``."""

    def __init__(self, total: int, label: str, stream: IO[str] | None, *, enabled: bool) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.shown = -1

    def update(self, done: int) -> None:
        """Show ``done`` of ``total`` (redrawn only when the whole percentage changes)."""
        if not self.enabled:
            return
        percent = min(100, done * 100 // self.total)
        if percent != self.shown:
            self.shown = percent
            bar = "#" * (percent // 4) + "." * (25 - percent // 4)
            self.stream.write(f"\r[{bar}] {percent:3d}% {self.label}")
            self.stream.flush()

    def close(self) -> None:
        """Show 100% and end the line (when enabled)."""
        if self.enabled:
            self.update(self.total)
            self.stream.write("\n")
            self.stream.flush()
