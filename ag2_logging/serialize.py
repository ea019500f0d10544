"""Turn whatever AG2 hands us into JSON, without ever failing.

AG2 passes agents, ``OpenAIWrapper`` objects, clients with locks and sockets, pydantic models and
functions to its loggers. Its own ``FileLogger`` writes an error line for some of them and its
``SqliteLogger`` crashes on a ``base_url``; here each unserializable part becomes a short marker
(``"<unserializable: OpenAIWrapper>"``) and the rest is kept.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z
#: Keys AG2 puts in ``locals()``-style init_args that are never worth recording.
SKIP_KEYS = frozenset({"self", "__class__", "kwargs_for_parent"})


def marker(obj: object) -> str:
    return f"<unserializable: {type(obj).__qualname__}>"


def _default(obj: Any) -> Any:
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump) and not isinstance(obj, type):
        try:
            return model_dump(mode="json", warnings=False)
        except Exception:
            return marker(obj)
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return f"<bytes: {len(obj)}>"
    if callable(obj):
        name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        return f"<callable: {name or type(obj).__qualname__}>"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
    # Types that look like a URL or a string (httpx.URL, pydantic's Url, SecretStr...) print well.
    if type(obj).__name__ in {"URL", "Url", "AnyUrl", "HttpUrl"}:
        return str(obj)
    if type(obj).__name__ in {"SecretStr", "SecretBytes"}:
        return "[REDACTED:secret]"
    return marker(obj)


def dumps(obj: Any) -> bytes:
    """Serialize to JSON bytes; unserializable parts become markers, never an exception."""
    try:
        return orjson.dumps(obj, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        # Something nested deeper than orjson's default() can reach (a cycle, a key type, a
        # default() that itself returned an unserializable object): walk it in Python.
        plain = to_jsonable(obj)
    try:
        return orjson.dumps(plain, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        # Text that is not valid Unicode (a lone surrogate, from a decoder with
        # errors="surrogateescape"): each bad code point becomes U+FFFD.
        return orjson.dumps(_valid_text(plain), option=_OPTIONS)


def dumps_each(values: list[Any]) -> list[bytes]:
    """``[dumps(value) for value in values]``, orjson's first try inline for all of them (a call
    of :func:`dumps` per value costs as much as a short chat message's serialization)."""
    try:
        return [orjson.dumps(value, default=_default, option=_OPTIONS) for value in values]
    except (TypeError, orjson.JSONEncodeError):
        return [dumps(value) for value in values]


_SURROGATES = re.compile("[\ud800-\udfff]")


def _valid_text(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_valid_text(v) for v in value]
    return value


def to_jsonable(obj: Any, *, depth: int = 32, _seen: frozenset[int] = frozenset()) -> Any:
    """A plain JSON structure (dict/list/str/int/float/bool/None) for any object."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if depth <= 0 or id(obj) in _seen:
        return f"<recursion: {type(obj).__qualname__}>"
    seen = _seen | {id(obj)}
    if isinstance(obj, Mapping):
        return {
            str(k): to_jsonable(v, depth=depth - 1, _seen=seen)
            for k, v in obj.items()
            if not (isinstance(k, str) and k in SKIP_KEYS)
        }
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v, depth=depth - 1, _seen=seen) for v in obj]
    try:
        plain = orjson.loads(orjson.dumps(obj, default=_default, option=_OPTIONS))
    except (TypeError, orjson.JSONEncodeError):
        return marker(obj)
    if isinstance(plain, dict | list):
        return to_jsonable(plain, depth=depth - 1, _seen=seen)
    return plain


def as_received(obj: Any) -> Any:
    """A pydantic model (an SDK reply, a message, a usage object) as plain JSON holding exactly
    the fields it was built with: the ones the provider sent, its own extra fields included
    (``function_call``, ``refusal``, ``audio``, ``annotations``, ``reasoning_content``...), and
    none of the defaults the SDK fills in. Anything else goes through :func:`to_jsonable`.
    Never raises.

    Pydantic's ``mode="json"`` output is plain JSON already (dicts with str keys, lists, str,
    int, float, bool, None; it raises for what it cannot write), so it is returned as it is:
    walking it again in Python cost four times the dump on every LLM call (issue 19)."""
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump) and not isinstance(obj, type):
        try:
            return model_dump(mode="json", exclude_unset=True, warnings=False)
        except Exception:  # an extra attribute that does not serialize: walk it instead
            pass
    return to_jsonable(obj)


def truncate_strings(value: Any, limit: int) -> Any:
    """Cut every string longer than ``limit`` characters, saying how much was cut.

    Copy on write: a value with nothing to cut comes back as the very same object.
    """
    if isinstance(value, str):
        if len(value) > limit:
            return value[:limit] + f"...[TRUNCATED:{len(value) - limit} chars]"
        return value
    if isinstance(value, dict):
        changed: dict[Any, Any] | None = None
        for key, item in value.items():
            cut = truncate_strings(item, limit)
            if cut is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = cut
        return value if changed is None else changed
    if isinstance(value, list):
        for index, item in enumerate(value):
            cut = truncate_strings(item, limit)
            if cut is not item:
                return value[:index] + [cut] + [truncate_strings(v, limit) for v in value[index + 1 :]]
        return value
    return value


def new_id() -> str:
    """A random (version 4) UUID as text: ``str(uuid.uuid4())`` at a fraction of the cost.

    The random bytes come from ``os.urandom`` as ``uuid4`` takes them, 4 KB at a time per thread
    (256 ids per system call); a forked child draws afresh (never its parent's bytes)."""
    pool = _pool
    data: bytearray | None = getattr(pool, "data", None)
    if data is None or pool.pos >= _POOL_BYTES or pool.generation != _fork_generation[0]:
        data = pool.data = bytearray(os.urandom(_POOL_BYTES))
        pool.pos, pool.generation = 0, _fork_generation[0]
    start = pool.pos
    pool.pos = start + 16
    raw = data[start : start + 16]
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_POOL_BYTES = 4096
_pool = threading.local()
#: Moves on in a forked child, whose copy of every thread's pool must not be used again.
_fork_generation = [0]


def _forked() -> None:
    _fork_generation[0] += 1


os.register_at_fork(after_in_child=_forked)
