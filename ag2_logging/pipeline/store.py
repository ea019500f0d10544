"""Journals between hosts: published to a Django storage (``AG2_LOGGING["JOURNAL_STORAGE"]``).

The writer publishes a finished journal after the sanitize pass; a worker on another host reads
the local file when it has one, else the published copy. Names are
``ag2_logging/journals/<YYYY-MM-DD>/<session-uuid>.jsonl`` (the day the session started, UTC),
so a bucket can carry a lifecycle rule per prefix. Any storage works: ``FileSystemStorage`` on a
shared directory, S3 and the like through django-storages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ag2_logging.conf import conf

PREFIX = "ag2_logging/journals"


class JournalUnavailable(Exception):
    """This host can read neither the session's journal file nor a published copy (retryable)."""


def storage() -> Any | None:
    """The configured journal storage, or None when journals stay local."""
    alias = conf.resolved.journal_storage
    if alias is None:
        return None
    from django.core.files.storage import storages

    return storages[alias]


def name_for(session_id: uuid.UUID | str, started_at: datetime | None) -> str:
    day = started_at.date().isoformat() if started_at is not None else "undated"
    return f"{PREFIX}/{day}/{session_id}.jsonl"


def publish(path: Path, name: str) -> str:
    """Copy the journal at ``path`` to the storage under ``name`` (replacing an older copy)."""
    target = storage()
    if target is None:
        raise RuntimeError("JOURNAL_STORAGE is not set")
    from django.core.files import File

    if target.exists(name):
        # A re-run after a sanitize rewrote the file: the new copy wins (storages never overwrite).
        target.delete(name)
    with open(path, "rb") as fh:
        saved: str = target.save(name, File(fh, name=os.path.basename(name)))
    return saved


@contextlib.contextmanager
def local_copy(name: str) -> Iterator[Path]:
    """A temporary local file holding the published journal ``name``; removed afterwards."""
    source = storage()
    if source is None or not name:
        raise JournalUnavailable("no published copy (JOURNAL_STORAGE is not set)")
    try:
        fh = source.open(name, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise JournalUnavailable(f"published copy {name!r} cannot be read: {exc}") from exc
    except Exception as exc:  # backends raise their own kinds (botocore ClientError, ...)
        raise JournalUnavailable(
            f"published copy {name!r} cannot be read: {type(exc).__name__}: {exc}"
        ) from exc
    fd, tmp = tempfile.mkstemp(prefix="ag2-journal-", suffix=".jsonl")
    try:
        with fh, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(fh, out, 1 << 20)
        yield Path(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def reachable() -> tuple[bool, str]:
    """``(ok, detail)``: write, read back and delete a probe file in the journal storage."""
    target = storage()
    if target is None:
        return True, "not set: journals stay on each host's disk"
    from django.core.files.base import ContentFile

    name = f"{PREFIX}/.probe-{uuid.uuid4().hex}"
    try:
        saved = target.save(name, ContentFile(b"ok"))
        with target.open(saved, "rb") as fh:
            body = fh.read()
        target.delete(saved)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return body == b"ok", f"{conf.resolved.journal_storage!r} ({type(target).__name__})"
