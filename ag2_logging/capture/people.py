"""Who a session is for and what it is about: the ``user``, ``tags`` and ``metadata`` that every
entry point takes, checked before a session opens.

Pure (no ORM): the user is reduced to its primary key's text here, and ingest resolves it to a
row. Metadata is redacted by the recorder (``ag2_logging.redaction``) before it reaches the
journal, the runtime log or the database.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from django.core.exceptions import SynchronousOnlyOperation

from ag2_logging.serialize import to_jsonable

#: At most this many tags per session, each at most ``MAX_TAG_LENGTH`` characters.
MAX_TAGS = 20
MAX_TAG_LENGTH = 64
#: The metadata object's size once serialized as JSON (UTF-8 bytes).
MAX_METADATA_BYTES = 4_096


def check_tags(tags: Any) -> list[str]:
    """``tags`` as a list of distinct stripped strings, in their order (None: ``[]``).

    Raises ``TypeError`` when ``tags`` is not a list, tuple or set of strings (a lone string
    included: ``tags="a"`` would be one tag per character), ``ValueError`` for an empty tag, one
    longer than ``MAX_TAG_LENGTH`` characters, one with control characters, or more than
    ``MAX_TAGS`` tags.
    """
    if tags is None:
        return []
    if isinstance(tags, str | bytes) or not isinstance(tags, list | tuple | set | frozenset):
        raise TypeError(f"tags must be a list of strings, not {type(tags).__name__}")
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"each tag must be a string, not {type(tag).__name__} ({tag!r})")
        text = tag.strip()
        if not text:
            raise ValueError("a tag must not be empty")
        if len(text) > MAX_TAG_LENGTH:
            raise ValueError(
                f"a tag is at most {MAX_TAG_LENGTH} characters long ({text[:20]!r}… has {len(text)})"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ValueError(f"a tag must not hold control characters ({text!r})")
        if text not in out:
            out.append(text)
    if len(out) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags per session ({len(out)} given)")
    return out


def check_metadata(metadata: Any) -> dict[str, Any]:
    """``metadata`` as a JSON object (None: ``{}``), not yet redacted.

    Raises ``TypeError`` when it is not a dict with string keys or holds a value JSON cannot
    carry (values are kept as JSON has them: a tuple becomes a list), ``ValueError`` when its
    JSON is longer than ``MAX_METADATA_BYTES`` bytes.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict (a JSON object), not {type(metadata).__name__}")
    try:
        raw = orjson.dumps(metadata)
    except TypeError as exc:
        raise TypeError(f"metadata must hold JSON values with string keys only: {exc}") from None
    if len(raw) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is at most {MAX_METADATA_BYTES} bytes as JSON ({len(raw)} given)")
    value: dict[str, Any] = orjson.loads(raw)
    return value


def user_key(user: Any) -> str | None:
    """The primary key (as text) of ``user``: a user object, or a primary key itself; None for
    None and for anonymous users (``is_authenticated`` false)."""
    if user is None:
        return None
    if hasattr(user, "is_authenticated") or hasattr(user, "_meta"):
        if not getattr(user, "is_authenticated", True):
            return None
        pk = getattr(user, "pk", None)
        return None if pk is None else str(to_jsonable(pk))
    if isinstance(user, bool) or not isinstance(user, str | int | uuid.UUID):
        raise TypeError(f"user must be a user object or its primary key, not {type(user).__name__}")
    return str(user)


def checked(user: Any, tags: Any, metadata: Any) -> tuple[str | None, list[str], dict[str, Any]]:
    """``(user_key(user), check_tags(tags), check_metadata(metadata))``: raises as they do."""
    return user_key(user), check_tags(tags), check_metadata(metadata)


def request_user(request: Any) -> Any:
    """The request's user, as ``AuthenticationMiddleware`` set it (None without it). Reading it
    loads the user (a query) on the first access: sync code only; async code awaits ``auser()``."""
    if request is None or not hasattr(request, "user"):
        return None
    user = request.user
    try:
        user_key(user)  # loads a lazy user now, where a failure can be caught
    except SynchronousOnlyOperation:
        return None  # a sync callable run on an event loop's thread: the user is not read
    return user


async def arequest_user(request: Any) -> Any:
    """``request_user`` for async code (Django's ``request.auser()``, never the sync ORM)."""
    if request is None:
        return None
    auser = getattr(request, "auser", None)
    if auser is None:
        return None
    return await auser()
