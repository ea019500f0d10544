"""The journal header's user, tags and metadata -> the Session row and its ``SessionTag`` rows.

Called by ingest for every journal (a re-ingest sets the same values: the header is the record,
and the sanitize pass may have redacted its metadata further). A journal written before these
fields existed leaves the row as it is. A user that does not exist here (deleted, or a journal
from another database) is not linked, and counted (``user_missing``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q

from ag2_logging.models import Session, SessionTag
from ag2_logging.pipeline import rows as rows_mod
from ag2_logging.pipeline.rows import Issues

#: The header's keys this module reads: a header with none of them is from an older journal.
HEADER_KEYS = ("user_id", "tags", "metadata")


def known_users(keys: Iterable[str | None]) -> dict[str, Any]:
    """``{primary key as text: primary key}`` of the users among ``keys`` that exist (one query)."""
    model = get_user_model()
    pk_field = model._meta.pk
    assert pk_field is not None
    wanted: dict[str, Any] = {}
    for key in keys:
        if key is None or key in wanted:
            continue
        try:
            wanted[key] = pk_field.to_python(key)
        except (ValidationError, ValueError, TypeError):
            continue
    if not wanted:
        return {}
    found = {
        str(pk)
        for pk in model._default_manager.filter(pk__in=list(wanted.values())).values_list("pk", flat=True)
    }
    return {key: pk for key, pk in wanted.items() if str(pk) in found}


def header_user(header: Any) -> str | None:
    """The user key a header names (None: none, or an older journal)."""
    if not isinstance(header, dict):
        return None
    key: str | None = rows_mod.session_people(header)["user_key"]
    return key


def apply(
    session: Session,
    header: Any,
    issues: Issues,
    users: dict[str, Any] | None = None,
    *,
    sync: bool = True,
) -> None:
    """Set ``session``'s user, tags and metadata from ``header`` (not saved: the caller saves
    the row) and write its ``SessionTag`` rows (``sync=False``: the caller does, for a batch,
    with ``sync_tags_many``). ``users``: ``known_users`` already read for a batch, else read
    here."""
    if not isinstance(header, dict) or not any(key in header for key in HEADER_KEYS):
        return
    values = rows_mod.session_people(header, issues)
    key = values["user_key"]
    if key is None:
        session.user_id = None
    else:
        found = known_users([key]) if users is None else users
        if key in found:
            session.user_id = found[key]
        else:
            issues["user_missing"] += 1
            session.user_id = None
    session.metadata = values["metadata"]
    session.tags = values["tags"]
    if sync:
        sync_tags(session)


def sync_tags(session: Session) -> None:
    """Make the session's ``SessionTag`` rows those of ``session.tags`` (no query when it has
    no tags and never had)."""
    tags = set(session.tags or ())
    existing = set(SessionTag.objects.filter(session=session).values_list("tag", flat=True)) if tags else None
    if existing is None:
        SessionTag.objects.filter(session=session).delete()
        return
    if existing - tags:
        SessionTag.objects.filter(session=session, tag__in=existing - tags).delete()
    if tags - existing:
        SessionTag.objects.bulk_create(
            [SessionTag(session=session, tag=tag) for tag in sorted(tags - existing)]
        )


def sync_tags_many(sessions: list[Session]) -> None:
    """``sync_tags`` of each session, in three queries for all of them: their ``SessionTag``
    rows read, the stale ones deleted, the missing ones inserted."""
    if not sessions:
        return
    wanted = {session.pk: set(session.tags or ()) for session in sessions}
    existing: dict[Any, set[str]] = {key: set() for key in wanted}
    for session_id, tag in SessionTag.objects.filter(session_id__in=list(wanted)).values_list(
        "session_id", "tag"
    ):
        existing[session_id].add(tag)
    stale = [(key, tag) for key, tags in existing.items() for tag in tags - wanted[key]]
    if stale:
        gone = Q()
        for key, tag in stale:
            gone |= Q(session_id=key, tag=tag)
        SessionTag.objects.filter(gone).delete()
    new = [
        SessionTag(session_id=key, tag=tag)
        for key, tags in wanted.items()
        for tag in sorted(tags - existing[key])
    ]
    if new:
        SessionTag.objects.bulk_create(new)


def start_fields(header: dict[str, Any]) -> dict[str, Any]:
    """The user, tags and metadata of a session's row written at its start (the database thread):
    a running session shows them before ingest; a user that does not exist is left out."""
    values = rows_mod.session_people(header)
    key = values["user_key"]
    users = known_users([key]) if key is not None else {}
    return {
        "user_id": users.get(key) if key else None,
        "tags": values["tags"],
        "metadata": values["metadata"],
    }
