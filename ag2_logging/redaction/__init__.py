"""Scrub secrets from what AG2 hands the app, before anything is written.

Two rules, applied together by :func:`redact` at any depth of dicts, lists, tuples, pydantic
models and dataclasses:

* **by key name**: the value of a key such as ``api_key``, ``password``, ``Authorization``, or any
  key ending in ``_key``, ``_token``, ``_secret``... is replaced whole (:func:`is_sensitive_key`;
  the lists are :data:`SENSITIVE_KEYS`, :data:`SENSITIVE_SUFFIXES`, :data:`SENSITIVE_SUBSTRINGS`
  and the exceptions :data:`NOT_SENSITIVE_KEYS`); a ``[name, value]`` pair (HTTP headers as a
  list) counts as a key too;
* **by pattern** inside every string (and every dict key): :data:`PATTERNS`, the one table of
  credential formats, documented entry by entry below (LLM providers, cloud providers, source
  hosting, chat and e-mail, payments, package registries, JWTs, ``Authorization``/``Cookie``
  headers, passwords in URLs and connection strings, ``KEY=value`` lines, secret assignments
  in code/JSON/YAML, PEM private key blocks). A string that holds a JSON object or array is
  parsed and redacted as a structure, so ``'{"auth": "..."}'`` in a tool argument is caught.

A redacted value becomes ``[REDACTED:<kind>]``: it says what was removed and keeps no part of it.
Redaction is idempotent (a marker is never redacted again) and text without secrets comes back
unchanged (the very same object).

Speed. This runs on every LLM call. Each pattern has a *screen*: an RE2 expression that every
match of the pattern also matches, in the raw text and in its JSON encoding alike (``\\t`` for a
tab, ``\\"`` for a quote). All screens are compiled into one RE2 automaton (google-re2, a linear
time DFA), so a clean 2 KB request costs one pass over its serialized JSON (~3 µs) plus a look at
the few identifiers that resemble secret names (``max_tokens``...), which are checked against
:func:`is_sensitive_key` (cached). Only when something is found is the structure walked and the
Python patterns of the screens that hit are run. Without google-re2 the same screens run on
Python's ``re`` (correct, about 30 times slower).

:func:`redact` with ``thorough=True`` (the Celery sanitize pass and log import) skips the screens
and runs every pattern on every string.

Here live the redact functions and the walker over structures; the tables (key names,
:data:`PATTERNS`) are in :mod:`ag2_logging.redaction.patterns`, the screens and the applying of
patterns to text in :mod:`ag2_logging.redaction.engine`. Importing this package compiles no
pattern: everything is compiled the first time something is redacted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ag2_logging.redaction.engine import ALL, HAVE_RE2, SHORTEST, count, redact_patterns, screens
from ag2_logging.redaction.patterns import (
    MARKER,
    MARKER_PREFIX,
    MARKER_RE,
    NOT_SENSITIVE_KEYS,
    PATTERNS,
    SENSITIVE_KEYS,
    SENSITIVE_SUBSTRINGS,
    SENSITIVE_SUFFIXES,
    Pattern,
    is_marker,
    is_sensitive_key,
    key_kind,
    kinds,
)
from ag2_logging.serialize import dumps as _dumps

__all__ = [
    "HAVE_RE2",
    "MARKER",
    "MARKER_PREFIX",
    "NOT_SENSITIVE_KEYS",
    "PATTERNS",
    "SENSITIVE_KEYS",
    "SENSITIVE_SUBSTRINGS",
    "SENSITIVE_SUFFIXES",
    "Pattern",
    "is_marker",
    "is_sensitive_key",
    "kinds",
    "may_contain_secrets",
    "may_have_sensitive_keys",
    "redact",
    "redact_json",
    "redact_keys",
    "redact_text",
]


def redact_text(text: str, counts: dict[str, int] | None = None, *, thorough: bool = False) -> str:
    """Replace every secret found in ``text`` with a marker; ``counts`` gets +1 per kind removed.

    A text that holds a JSON object or array is redacted as that structure (key names included)
    and re-serialized when something was removed. Text without secrets is returned as is (the
    same object). ``thorough=True`` runs every pattern over the whole text with Python's ``re``
    alone, trusting no screen.
    """
    return _Walker(counts, thorough).string(text)


# ---------------------------------------------------------------------------------------------
# Structures
# ---------------------------------------------------------------------------------------------


def _is_empty(value: Any) -> bool:
    """Nothing to hide: no value, an empty one, or one that is already a marker."""
    if isinstance(value, str):
        return not value or MARKER_RE.fullmatch(value) is not None
    return value is None or (isinstance(value, list | dict | tuple) and len(value) == 0)


#: Credential-bearing HTTP headers as clients spell them (httpx lower-cases header names).
_CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-goog-api-key",
        "x-access-token",
    }
)


_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _looks_like_header_name(name: str) -> bool:
    """A two-item list is a (name, value) pair when its first item reads as a header or key name:
    a known credential header, or a capitalized, hyphenated or snake_case name (``Authorization``,
    ``X-Api-Key``, ``api_key``), not a word of prose such as ``["token", "the"]``; or when its
    second item reads as a credential (see ``_looks_like_credential``)."""
    if _HEADER_NAME.fullmatch(name) is None:
        return False
    return name.lower() in _CREDENTIAL_HEADERS or "-" in name or "_" in name or name[:1].isupper()


def _looks_like_credential(value: str | bytes) -> bool:
    """One unbroken run of letters and digits (both), eight or more: a value, not prose."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return (
        len(text) >= 8
        and not any(c.isspace() for c in text)
        and any(c.isdigit() for c in text)
        and any(c.isalpha() for c in text)
    )


def _key_marker(key: str, counts: dict[str, int] | None) -> str:
    kind = key_kind(key)
    count(counts, "key:" + kind)
    return MARKER.format(kind=kind)


#: The thorough pass runs every pattern on every string; journals repeat the same short strings
#: (keys, agent names, models, statuses) on every line, so their results are remembered.
_THOROUGH_MEMO: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}
_THOROUGH_MEMO_MAX_TEXT = 256
_THOROUGH_MEMO_MAX_ENTRIES = 16_384


class _Walker:
    __slots__ = ("counts", "thorough")

    def __init__(self, counts: dict[str, int] | None, thorough: bool) -> None:
        self.counts = counts
        self.thorough = thorough

    def string(self, text: str) -> str:
        if len(text) < SHORTEST:
            return text
        if self.thorough and len(text) <= _THOROUGH_MEMO_MAX_TEXT:
            memo = _THOROUGH_MEMO.get(text)
            if memo is None:
                local: dict[str, int] = {}
                result = _Walker(local, True)._string(text)
                if len(_THOROUGH_MEMO) >= _THOROUGH_MEMO_MAX_ENTRIES:
                    _THOROUGH_MEMO.clear()
                memo = _THOROUGH_MEMO[text] = (result, tuple(local.items()))
            if not memo[1]:
                return text  # unchanged: the caller's own object, as the uncached path returns
            if self.counts is not None:
                for kind, n in memo[1]:
                    self.counts[kind] = self.counts.get(kind, 0) + n
            return memo[0]
        return self._string(text)

    def _string(self, text: str) -> str:
        if self.thorough:
            which: frozenset[int] | set[int] = ALL
        else:
            which = screens().hits(text)
            if not which:
                return text
        # A complete JSON value (a tool's arguments, a logged payload) is decoded and redacted as
        # what it holds: key names count, and escapes (\t, \") no longer hide anything.
        stripped = text.strip()
        if (stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]")) or (
            len(stripped) >= 2 and stripped[0] == '"' and stripped[-1] == '"'
        ):
            redacted = self.nested_json(stripped)
            if redacted is not None:
                return redacted if redacted is not stripped else text
        return redact_patterns(text, which, self.counts, thorough=self.thorough)

    def nested_json(self, text: str) -> str | None:
        """Redact a string holding a JSON value as that value (None: it is not JSON)."""
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(parsed, dict | list | str):
            return None
        local: dict[str, int] = {}
        redacted = _Walker(local, self.thorough).value(parsed, 64)
        if not local:
            return text
        if self.counts is not None:
            for kind, n in local.items():
                self.counts[kind] = self.counts.get(kind, 0) + n
        return orjson.dumps(redacted).decode()

    def key(self, key: Any) -> Any:
        return self.string(key) if isinstance(key, str) else key

    def value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.string(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if depth <= 0:
            return "[TRUNCATED:depth]"
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and is_sensitive_key(key) and not _is_empty(item):
                    out[self.key(key)] = _key_marker(key, self.counts)
                else:
                    out[self.key(key)] = self.value(item, depth - 1)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            # ("Authorization", "Bearer ...") pairs: HTTP headers as a list.
            if (
                len(items) == 2
                and isinstance(items[0], str)
                and _HEADER_NAME.fullmatch(items[0]) is not None
                and is_sensitive_key(items[0])
                and isinstance(items[1], str | bytes)
                and not _is_empty(items[1])
                and (_looks_like_header_name(items[0]) or _looks_like_credential(items[1]))
            ):
                return [self.string(items[0]), _key_marker(items[0], self.counts)]
            return [self.value(item, depth - 1) for item in items]
        model_dump = getattr(value, "model_dump", None)
        if callable(model_dump) and not isinstance(value, type):
            try:
                dumped = model_dump(mode="json", warnings=False)
            except Exception:
                return _plain_marker(value)
            return self.value(dumped, depth - 1)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
            return self.value(fields, depth - 1)
        # Anything else (URL objects, Decimals, unknown classes): its JSON form, as it would be written.
        try:
            plain = orjson.loads(_dumps(value))
        except (TypeError, ValueError):
            return _plain_marker(value)
        if isinstance(plain, str | dict | list):
            return self.value(plain, depth - 1)
        return plain


def _plain_marker(value: Any) -> str:
    return f"<unserializable: {type(value).__qualname__}>"


def redact_keys(
    value: Any, counts: dict[str, int] | None = None, *, depth: int = 64, thorough: bool = False
) -> Any:
    """A copy of ``value`` with sensitive keys' values and secrets in strings replaced.

    Dicts, lists, tuples, sets, pydantic models and dataclasses are walked (tuples and sets come
    back as lists, models and dataclasses as dicts). A value in which nothing can match is
    returned as is (the same object), after one scan of its JSON form. Same as :func:`redact`.
    """
    if thorough:
        return _Walker(counts, True).value(value, depth)
    if isinstance(value, str):
        return _Walker(counts, False).string(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    try:
        raw = _dumps(value)
    except (TypeError, ValueError):  # what even the fallback cannot write (a 65-bit integer...)
        return _Walker(counts, False).value(value, depth)
    if not screens().dirty_bytes(raw):
        return value
    return _Walker(counts, False).value(value, depth)


def redact(value: Any, counts: dict[str, int] | None = None, *, thorough: bool = False) -> Any:
    """Redact any value: a string, or a structure at any depth. The one-call entry point.

    A value in which nothing can match is returned as is (the same object, after one scan of its
    JSON form); otherwise a redacted JSON-like copy. ``counts`` gets +1 per kind removed
    (``"openai_key"``, ``"key:api_key"``...). ``thorough=True`` skips the fast screens and runs
    every pattern on every string with Python's ``re`` (the sanitize pass).
    """
    return redact_keys(value, counts, thorough=thorough)


def redact_json(raw: bytes, counts: dict[str, int] | None = None) -> Any:
    """Parse serialized JSON and redact it: the recorder's entry point.

    ``raw`` is what ``ag2_logging.serialize.dumps`` produced; the scan runs on these bytes, so the
    clean case costs one parse plus one scan and builds nothing else.
    """
    plain = orjson.loads(raw)
    if not screens().dirty_bytes(raw):
        return plain
    return _Walker(counts, False).value(plain, 64)


def may_contain_secrets(data: bytes | str) -> bool:
    """Cheap test: could ``data`` (text or serialized JSON) hold anything :func:`redact` removes?

    False means certainly not; True means the slow path has something to look at.
    """
    if isinstance(data, str):
        return screens().dirty_text(data)
    return screens().dirty_bytes(data)


def may_have_sensitive_keys(json_text: str) -> bool:
    """Kept for compatibility: :func:`may_contain_secrets` on serialized JSON."""
    return screens().dirty_text(json_text)
