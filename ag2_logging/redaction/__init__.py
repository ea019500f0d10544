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

* **by value**: every credential value this process was shown (an ``llm_config``'s ``api_key``,
  ``Authorization``/``api-key`` header values, a base URL's password...; see
  :mod:`ag2_logging.redaction.credentials`) is replaced wherever it appears later, raw,
  JSON-escaped, percent-encoded or HTML-escaped: a provider's ``Incorrect API key provided:
  <key>`` is ``[REDACTED:credential]``. Held in memory only; a Celery worker has not seen them.

A redacted value becomes ``[REDACTED:<kind>]``: it says what was removed and keeps no part of it.
Redaction is idempotent (a marker is never redacted again) and text without secrets comes back
unchanged (the very same object).

Speed. This runs on every LLM call. Each pattern has a *screen*: an RE2 expression that every
match of the pattern also matches, in the raw text and in its JSON encoding alike (``\\t`` for a
tab, ``\\"`` for a quote). All screens are compiled into one RE2 automaton (google-re2, a linear
time DFA), so a clean 2 KB request costs one pass over its serialized JSON (~3 µs) plus a look at
the few identifiers that resemble secret names (``max_tokens``...), which are checked against
:func:`is_sensitive_key` (cached). Only when something is found is the structure walked and the
Python patterns of the screens that hit are run. Remembered credential values add one ``in``
scan per shape of each (one regular expression past a dozen shapes), and nothing at all while
none is remembered. Without google-re2 the same screens run on
Python's ``re`` (correct, about 30 times slower).

:func:`redact` with ``thorough=True`` (the Celery sanitize pass and log import) trusts no
screen: every pattern that can match runs on every string. Which can match is decided exactly,
by one RE2 pass over RE2 supersets derived mechanically from the Python expressions themselves
(:mod:`ag2_logging.redaction.superset`: a pattern whose superset finds nothing cannot change the
text); a text RE2 cannot read (a lone surrogate) gets every pattern. The hot path skips the same
way among the patterns its screens picked.

Results of identical strings are remembered (hot path: up to 1 M characters in 8,192 strings;
thorough pass: 4 M in 32,768; 64 K per string; forgotten whole when full or when a credential
value is remembered or forgotten): system prompts, earlier messages of a conversation, key names
and models cost one dictionary look-up.

Here live the redact functions and the walker over structures; the tables (key names,
:data:`PATTERNS`) are in :mod:`ag2_logging.redaction.patterns`, the screens and the applying of
patterns to text in :mod:`ag2_logging.redaction.engine`. Importing this package compiles no
pattern: everything is compiled the first time something is redacted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ag2_logging.redaction.credentials import generation as credentials_generation
from ag2_logging.redaction.credentials import (
    may_hold_known_bytes,
    may_hold_known_text,
    remember_credential,
    remember_from_client,
    remember_from_config,
    remember_from_url,
    scrub_known_credentials,
)
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
from ag2_logging.serialize import dumps_each as _dumps_each

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
    "forget_results",
    "is_marker",
    "is_sensitive_key",
    "kinds",
    "may_contain_secrets",
    "may_have_sensitive_keys",
    "redact",
    "redact_json",
    "redact_keys",
    "redact_text",
    "remember_credential",
    "remember_from_client",
    "remember_from_config",
    "remember_from_url",
    "screened_request",
    "scrub_known_credentials",
]


def redact_text(text: str, counts: dict[str, int] | None = None, *, thorough: bool = False) -> str:
    """Replace every secret found in ``text`` with a marker; ``counts`` gets +1 per kind removed.

    A text that holds a JSON object or array is redacted as that structure (key names included)
    and re-serialized when something was removed. Text without secrets is returned as is (the
    same object). ``thorough=True`` runs every pattern that can match the text (decided exactly,
    see :mod:`ag2_logging.redaction.superset`), trusting no screen.
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


#: Not in the memo (compared by identity).
_MISS: Final[tuple[str, tuple[tuple[str, int], ...]]] = ("", ())


class _Memo:
    """Results of redacting identical strings, which journals and requests repeat (system
    prompts, every earlier message of a conversation, key names, agent names, models).

    Each result is the string's full redaction (patterns and remembered credentials) with its
    counts; None stands for "unchanged". Kept for one generation of remembered credentials
    (:func:`ag2_logging.redaction.credentials.generation`) and forgotten whole past
    ``max_chars`` characters of keys or ``max_entries`` strings; texts longer than ``max_text``
    are not kept.
    """

    __slots__ = ("chars", "entries", "generation", "max_chars", "max_entries", "max_text")

    def __init__(self, max_chars: int, max_entries: int, max_text: int) -> None:
        self.entries: dict[str, tuple[str, tuple[tuple[str, int], ...]] | None] = {}
        self.chars = 0
        self.generation = -1
        self.max_chars = max_chars
        self.max_entries = max_entries
        self.max_text = max_text

    def table(self) -> dict[str, tuple[str, tuple[tuple[str, int], ...]] | None]:
        """The entries valid now (emptied when the remembered credentials changed or full)."""
        current = credentials_generation()
        if current != self.generation or self.chars > self.max_chars or len(self.entries) > self.max_entries:
            self.entries = {}
            self.chars = 0
            self.generation = current
        return self.entries


#: Memos of the hot path (1 M characters of keys, 8,192 strings: a few conversations' prompts and
#: histories, a few MB at most in the agents' process) and of the thorough pass (4 M, 32,768).
_MEMOS = (_Memo(1 << 20, 8_192, 64 << 10), _Memo(4 << 20, 32_768, 64 << 10))


_SCALARS = frozenset({int, float, bool})


class _Walker:
    __slots__ = ("counts", "memo", "thorough")

    def __init__(self, counts: dict[str, int] | None, thorough: bool) -> None:
        self.counts = counts
        self.thorough = thorough
        self.memo = _MEMOS[thorough].table()

    def string(self, text: str) -> str:
        """``text`` redacted: the patterns (screened, or all that can match when thorough), then
        the credential values this process remembered (:mod:`~ag2_logging.redaction.credentials`).
        Results of identical texts are remembered (:class:`_Memo`)."""
        if len(text) < SHORTEST:
            return text
        found = self.memo.get(text, _MISS)
        if found is _MISS:
            found = self._remember(text)
        if found is None:
            return text  # unchanged: the caller's own object
        result, found_counts = found
        if self.counts is not None:
            for kind, n in found_counts:
                self.counts[kind] = self.counts.get(kind, 0) + n
        return result

    def _remember(self, text: str) -> tuple[str, tuple[tuple[str, int], ...]] | None:
        """Redact ``text`` afresh and keep the result (None: unchanged) in the memo."""
        local: dict[str, int] = {}
        result = scrub_known_credentials(_Walker(local, self.thorough)._string(text), local)
        found = (result, tuple(local.items())) if local else None
        memo = _MEMOS[self.thorough]
        if len(text) <= memo.max_text and memo.entries is self.memo:
            self.memo[text] = found
            memo.chars += len(text)
        return found

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

    def unchanged(self, value: Any, depth: int) -> bool:
        """True when :meth:`value` would change nothing in ``value``, a plain JSON value (dicts,
        lists, str, int, float, bool, None): every string unchanged (mostly one memo look-up),
        no sensitive key over a value, no credential pair, nothing past ``depth``. False also for
        anything else (tuples, models, subclasses), which the full walk handles. Builds nothing.
        """
        stack: list[tuple[Any, int]] = [(value, depth)]
        same, sensitive, get = self._same, is_sensitive_key, self.memo.get
        while stack:
            item, level = stack.pop()
            kind = type(item)
            if kind is str:
                if not same(item):
                    return False
            elif kind is dict:
                if level <= 0:
                    return False
                for key, inner in item.items():
                    # Inline memo look-ups: None is "unchanged", _MISS "not seen yet".
                    if type(key) is not str or (
                        len(key) >= SHORTEST
                        and (found := get(key, _MISS)) is not None
                        and (found is not _MISS or not same(key))
                    ):
                        return False
                    if sensitive(key) and not _is_empty(inner):
                        return False
                    if type(inner) is str:
                        if (
                            len(inner) >= SHORTEST
                            and (found := get(inner, _MISS)) is not None
                            and (found is not _MISS or not same(inner))
                        ):
                            return False
                    elif inner is not None and type(inner) not in _SCALARS:
                        stack.append((inner, level - 1))
            elif kind is list:
                if level <= 0 or (len(item) == 2 and type(item[0]) is str and sensitive(item[0])):
                    return False  # a possible credential pair: the full walk decides
                stack.extend((inner, level - 1) for inner in item)
            elif not (item is None or kind in _SCALARS):
                return False
        return True

    def _same(self, text: str) -> bool:
        """True when :meth:`string` leaves ``text`` as it is (a memo look-up when seen before);
        counts nothing."""
        if len(text) < SHORTEST:
            return True
        found = self.memo.get(text, _MISS)
        if found is _MISS:
            found = self._remember(text)  # counted only by the full walk, if one follows
        return found is None

    def key(self, key: Any) -> Any:
        return self.string(key) if isinstance(key, str) else key

    def value(self, value: Any, depth: int) -> Any:
        """``value`` redacted; plain JSON types first (what journals and requests hold)."""
        kind = type(value)
        if kind is str:
            return self.string(value)
        if kind is dict:
            return self.mapping(value, depth)
        if kind is list:
            return self.sequence(value, depth)
        if value is None or kind is int or kind is float or kind is bool:
            return value
        return self.other(value, depth)

    def mapping(self, value: Mapping[Any, Any], depth: int) -> Any:
        if depth <= 0:
            return "[TRUNCATED:depth]"
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and is_sensitive_key(key) and not _is_empty(item):
                out[self.key(key)] = _key_marker(key, self.counts)
            else:
                out[self.key(key)] = self.value(item, depth - 1)
        return out

    def sequence(self, value: Any, depth: int) -> Any:
        if depth <= 0:
            return "[TRUNCATED:depth]"
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

    def other(self, value: Any, depth: int) -> Any:
        """Anything but a plain str, dict, list, number or None (subclasses included)."""
        if isinstance(value, str):
            return self.string(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if depth <= 0:
            return "[TRUNCATED:depth]"
        if isinstance(value, Mapping):
            return self.mapping(value, depth)
        if isinstance(value, list | tuple | set | frozenset):
            return self.sequence(value, depth)
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


def forget_results() -> None:
    """Forget every remembered result of both modes (benchmarks of first sightings; tests)."""
    for memo in _MEMOS:
        memo.entries = {}
        memo.chars = 0
    _CLEAN_PARTS.entries = {}
    _CLEAN_PARTS.size = 0


def _plain_marker(value: Any) -> str:
    return f"<unserializable: {type(value).__qualname__}>"


def redact_keys(
    value: Any, counts: dict[str, int] | None = None, *, depth: int = 64, thorough: bool = False
) -> Any:
    """A copy of ``value`` with sensitive keys' values and secrets in strings replaced.

    Dicts, lists, tuples, sets, pydantic models and dataclasses are walked (tuples and sets come
    back as lists, models and dataclasses as dicts). A value in which nothing can match is
    returned as is (the same object), after one scan of its JSON form; with ``thorough`` so is a
    plain JSON value in which nothing changes. Same as :func:`redact`.
    """
    if thorough:
        walker = _Walker(counts, True)
        if walker.unchanged(value, depth):
            return value  # plain JSON in which nothing changes (the sanitize pass's usual line)
        return walker.value(value, depth)
    if isinstance(value, str):
        return _Walker(counts, False).string(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    walker = _Walker(counts, False)
    request = screened_request(value)
    if request is not None:
        if request[1]:
            return value
        return walker.value(value, depth)
    try:
        raw = _dumps(value)
    except (TypeError, ValueError):  # what even the fallback cannot write (a 65-bit integer...)
        return _Walker(counts, False).value(value, depth)
    if not screens().dirty_bytes(raw) and not may_hold_known_bytes(raw):
        return value
    return walker.value(value, depth)


def redact(value: Any, counts: dict[str, int] | None = None, *, thorough: bool = False) -> Any:
    """Redact any value: a string, or a structure at any depth. The one-call entry point.

    A value in which nothing can match is returned as is (the same object, after one scan of its
    JSON form); otherwise a redacted JSON-like copy. ``counts`` gets +1 per kind removed
    (``"openai_key"``, ``"key:api_key"``...). ``thorough=True`` skips the fast screens and runs
    on every string every pattern that can match it (the sanitize pass).
    """
    return redact_keys(value, counts, thorough=thorough)


def redact_json(raw: bytes, counts: dict[str, int] | None = None) -> Any:
    """Parse serialized JSON and redact it: the recorder's entry point.

    ``raw`` is what ``ag2_logging.serialize.dumps`` produced; the scan runs on these bytes, so the
    clean case costs one parse plus one scan and builds nothing else.
    """
    plain = orjson.loads(raw)
    if not screens().dirty_bytes(raw) and not may_hold_known_bytes(raw):
        return plain
    return _Walker(counts, False).value(plain, 64)


class _CleanParts:
    """Serialized values the screens found clean (the messages of the conversations running here),
    so that a conversation, which repeats its system prompt and every earlier message on each
    call, has only its new messages scanned. Kept for one generation of remembered credentials
    (a new one may be in a message that was clean) and forgotten whole past ``max_bytes``."""

    __slots__ = ("entries", "generation", "size")

    max_bytes = 4 << 20
    max_part = 256 << 10

    def __init__(self) -> None:
        self.entries: dict[bytes, None] = {}
        self.generation = -1
        self.size = 0

    def clean(self, raw: bytes) -> bool:
        """True when nothing :func:`redact` removes can be in ``raw`` (serialized JSON)."""
        entries = self.entries
        if self.generation != credentials_generation() or self.size > self.max_bytes:
            entries = self.entries = {}
            self.size, self.generation = 0, credentials_generation()
        if raw in entries:
            return True
        if screens().dirty_bytes(raw) or may_hold_known_bytes(raw):
            return False
        if len(raw) <= self.max_part:
            entries[raw] = None
            self.size += len(raw)
        return True


_CLEAN_PARTS = _CleanParts()


def screened_request(value: Any) -> tuple[bytes, bool] | None:
    """A chat request (a dict whose first key is a ``messages`` list) serialized message by
    message, as ``(raw, clean)``: ``raw`` the same bytes as ``serialize.dumps(value)``, ``clean``
    True when nothing :func:`redact` removes can be in it. Each message is screened on its own
    bytes, and a message screened clean before is not scanned again (:class:`_CleanParts`). The
    verdict is the whole body's: the walk redacts each string and key where it stands, so a body
    holds a finding exactly when one of its messages or its other fields does (no key above a
    message is sensitive: ``messages`` is not, and a list of messages is no credential pair).
    None for any other value."""
    if type(value) is not dict or not value:
        return None
    messages = value.get("messages")
    if type(messages) is not list or next(iter(value)) != "messages":
        return None
    rest = {key: item for key, item in value.items() if key != "messages"}
    *parts, tail = _dumps_each([*messages, rest])
    raw = b'{"messages":[' + b",".join(parts) + (b"]}" if tail == b"{}" else b"]," + tail[1:])
    memo = _CLEAN_PARTS
    if memo.generation != credentials_generation():
        return raw, memo.clean(tail) and all(memo.clean(part) for part in parts)
    entries = memo.entries
    for part in parts:
        if part not in entries and not memo.clean(part):
            return raw, False
    return raw, tail in entries or memo.clean(tail)


def may_contain_secrets(data: bytes | str) -> bool:
    """Cheap test: could ``data`` (text or serialized JSON) hold anything :func:`redact` removes?

    False means certainly not; True means the slow path has something to look at.
    """
    if isinstance(data, str):
        return screens().dirty_text(data) or may_hold_known_text(data)
    return screens().dirty_bytes(data) or may_hold_known_bytes(data)


def may_have_sensitive_keys(json_text: str) -> bool:
    """Kept for compatibility: :func:`may_contain_secrets` on serialized JSON."""
    return may_contain_secrets(json_text)
