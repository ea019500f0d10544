"""Every file the import writes (sanitized copies, in-place rewrites, imported journals) is made
here: created exclusively under an unpredictable name in the target's directory
(``tempfile.mkstemp``: ``O_CREAT | O_EXCL | O_NOFOLLOW``, so nothing planted there, a symbolic
link least of all, is ever opened or written through), written, fsynced, then renamed over the
target with ``os.replace``. The rename replaces whatever is at the target name (a symbolic link,
a dangling one, a FIFO) without opening or following it."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ag2_logging.pipeline.sanitize import fsync_dir

__all__ = ["mode_of", "replacing"]


@contextlib.contextmanager
def replacing(target: Path, *, mode: int = 0o600) -> Iterator[tuple[BinaryIO, Path]]:
    """``with replacing(target) as (fh, tmp):`` write ``fh`` (or close it and let another
    library, SQLite say, rewrite the file at ``tmp``); on a clean exit the file is fsynced, given
    ``mode`` (permission bits) and renamed to ``target``, then the directory is fsynced. On an
    exception the temporary file is removed and ``target`` is left as it was.

    ``tmp`` is ``.<target name>.<random>.tmp`` beside ``target``. Raises OSError when the
    directory cannot hold a new file (or the rename fails, ``target`` being a directory).
    """
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(name)
    fh = os.fdopen(fd, "wb")
    renamed = False
    try:
        os.fchmod(fh.fileno(), mode)
        yield fh, tmp
        if fh.closed:
            _fsync_file(tmp)
        else:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        os.replace(tmp, target)
        renamed = True
    finally:
        if not fh.closed:
            fh.close()
        if not renamed:
            with contextlib.suppress(OSError):
                tmp.unlink()
    fsync_dir(target.parent)


def _fsync_file(path: Path) -> None:
    """fsync the regular file at ``path`` (opened without following a link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mode_of(path: Path) -> int:
    """The permission bits of the file at ``path`` (0o600 when it cannot be read): a sanitized
    copy or an in-place rewrite keeps the original's."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o600
