"""The process-wide runtime log (``LOG_FILE``): a line when each session starts and ends.

The format is the seed system's (``Started new session with Session ID: ...`` and
``# AG2 SESSION START: {json}`` / ``# AG2 SESSION END: {json}``), so existing greps keep working.

The log rotates by size (``LOG_MAX_BYTES``, ``LOG_BACKUP_COUNT``): ``ag2_runtime.log`` becomes
``ag2_runtime.log.1``, ``.1`` becomes ``.2`` and so on, the oldest beyond the count is dropped.
Web workers, Celery workers and scripts all append to the same file, so check-size, rotate and
append happen under an exclusive ``flock`` on a sibling lock file (``ag2_runtime.log.lock``, never
rotated): whoever holds it sees the file's real size and is the only one renaming or writing, so
every write lands whole, exactly once, in the file that was current when it was made.
``logging.handlers.RotatingFileHandler`` is not used because it is not safe across processes (each
process keeps its own descriptor and rotates on its own idea of the size). The file is opened per
write for the same reason: a descriptor kept open would keep writing into a file another process
has since renamed to ``.1``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ag2_logging.conf import LOG_DIR_HINT, conf

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process per log file is assumed
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("ag2_logging.sessions")

_lock = threading.Lock()
_failed = False
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


def write(*lines: str) -> None:
    """Append lines to the runtime log, rotating it first when they would not fit; failures are
    logged once, never raised."""
    global _failed
    settings = conf.resolved
    path = settings.log_file
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    try:
        append(path, data, max_bytes=settings.log_max_bytes, backup_count=settings.log_backup_count)
    except OSError as exc:
        if not _failed:
            _failed = True
            # Check E004's words: a script runs no checks. The reason is the whole story (no traceback).
            logger.error("ag2_logging.E004 cannot write the runtime log %s: %s. %s", path, exc, LOG_DIR_HINT)


def append(path: Path, data: bytes, *, max_bytes: int, backup_count: int) -> None:
    """Append ``data`` to ``path`` in one write, rotating first when the file would grow past
    ``max_bytes`` (0: never). Safe with several threads and processes appending at once.

    A file exceeds ``max_bytes`` only when a single write is larger than that (it then holds that
    write alone): data is never split across files.
    """
    with _lock, exclusive(path):
        if max_bytes > 0 and _needs_rotation(path, len(data), max_bytes):
            rotate(path, backup_count)
        fd = os.open(path, _FLAGS, 0o666)
        try:
            written = os.write(fd, data)
            while written < len(data):  # short writes are rare on regular files, but legal
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)


def rotate(path: Path, backup_count: int) -> None:
    """``path`` -> ``path.1`` -> ``path.2`` ... keeping ``backup_count`` rotated files (0: the
    current content is dropped). The caller holds the lock."""
    if backup_count <= 0:
        os.truncate(path, 0)
        return
    prefix = path.name + "."
    existing = sorted(
        (
            int(suffix)
            for name in os.listdir(path.parent)
            if name.startswith(prefix) and (suffix := name[len(prefix) :]).isdigit()
        ),
        reverse=True,
    )
    for index in existing:
        if 0 < index < backup_count:  # the file at backup_count is overwritten: the oldest goes
            os.replace(_backup(path, index), _backup(path, index + 1))
    os.replace(path, _backup(path, 1))


def backups(path: Path) -> list[Path]:
    """The rotated files of ``path`` that exist, newest first."""
    found: list[Path] = []
    index = 1
    while (candidate := _backup(path, index)).exists():
        found.append(candidate)
        index += 1
    return found


def _backup(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def _needs_rotation(path: Path, incoming: int, max_bytes: int) -> bool:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return False
    # An empty file takes any write, even one larger than the limit: there is nothing to rotate.
    return size > 0 and size + incoming > max_bytes


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` (opened per call: a descriptor inherited
    across ``fork`` would share its lock with the parent, so it is never cached). While it is
    held no process appends to or rotates the runtime log; the sanitize pass takes it too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor of the open file releases the lock
