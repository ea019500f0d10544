"""Credential values this process has seen, held in memory only, so an echo of one is scrubbed.

A provider that answers ``401 Incorrect API key provided: <key>`` hands the key back inside an
error message, where no pattern may recognise it. Every credential value the app is shown (the
``api_key`` of an ``llm_config`` entry or of a client AG2 reports, ``Authorization`` /
``api-key`` / ``x-api-key`` header values, a password in a base URL's userinfo or a secret in its
query) is remembered here with :func:`remember_credential` and friends, and every redaction
(:func:`ag2_logging.redaction.redact`, ``redact_text``, ``redact_json``, the sanitize pass) then
replaces any later occurrence with ``[REDACTED:credential]`` (:func:`scrub_known_credentials`).

Shapes scrubbed for each remembered value: as is, JSON-escaped (``\\"``, ``\\\\``, ``\\uXXXX``),
percent-encoded (``quote`` and ``quote_plus``) and HTML-escaped. For Basic auth, the base64 of
``user:password`` too: a ``Basic <b64>`` header value is remembered as its base64 and as the
password it decodes to; a URL's ``user:password@`` as the password (raw and decoded) and as the
base64 of ``user:password`` that an HTTP client sends. A value is not tracked inside other
encodings (base64 of a longer text, hashes).

Not remembered: values shorter than :data:`MIN_LENGTH`, and placeholder-like values (only
lower-case letters and ``-_.``, under :data:`PLAIN_MIN_LENGTH` characters: ``not-needed``,
``sk-whatever``), which would otherwise eat ordinary words. At most :data:`MAX_VALUES` values are
kept (the oldest are forgotten first); the matchers are rebuilt on the first redaction after a
value was added.

The values are never written anywhere and never logged; they live in this module until the
process ends. A Celery worker (the sanitize pass run out of process) has not seen them: there
only the patterns apply.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from ag2_logging.redaction.patterns import MARKER, is_sensitive_key

try:  # pragma: no branch - google-re2 is a dependency; Python's re is the fallback
    import re2 as _re2
except ImportError:  # pragma: no cover
    _re2 = None

__all__ = [
    "KIND",
    "MAX_VALUES",
    "MIN_LENGTH",
    "PLAIN_MIN_LENGTH",
    "forget_credentials",
    "generation",
    "known_credentials",
    "may_hold_known_bytes",
    "may_hold_known_text",
    "remember_credential",
    "remember_from_client",
    "remember_from_config",
    "remember_from_url",
    "scrub_known_credentials",
]

#: Shorter values are not remembered: scrubbing them would eat ordinary words.
MIN_LENGTH = 8
#: A value made only of lower-case letters and ``-_.`` is remembered from this length on.
PLAIN_MIN_LENGTH = 20
#: The most values kept; past it the oldest are forgotten (the matchers over 1,024 values take
#: about 0.1 s to build, once after each change).
MAX_VALUES = 1024
#: The kind counted for a scrubbed value: ``[REDACTED:credential]``.
KIND = "credential"
_MARKER = MARKER.format(kind=KIND)
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "x-goog-api-key", "x-auth-token"}
)
_HEADER_KEYS = frozenset({"default_headers", "headers", "extra_headers", "_custom_headers"})
_URL_KEYS = frozenset({"base_url", "api_base", "azure_endpoint", "url", "endpoint", "proxy", "http_proxy"})
_SCHEME = re.compile(r"(?i)(bearer|basic|token|apikey)[ \t]+(\S.*)\Z", re.DOTALL)
_PLAIN = re.compile(r"[a-z._\-]+\Z")
#: Above this many shapes one automaton finds them all; below, ``in`` per shape is faster.
_IN_SCAN_MAX = 6


class _Known:
    """The remembered values and every shape of them, with the matchers built once per change."""

    __slots__ = ("finder", "finder_bytes", "regex", "shapes", "shapes_bytes", "values")

    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = values
        shapes: set[str] = set()
        for value in values:
            shapes.update(_shapes(value))
        ordered = sorted(shapes, key=len, reverse=True)  # longest first: no shape eats a longer one's head
        self.shapes = tuple(ordered)
        # In serialized JSON (what the recorder scans) each shape is JSON-escaped once more.
        self.shapes_bytes = tuple(sorted({_in_json(s) for s in ordered}, key=len, reverse=True))
        # Replacing runs on Python's re (only where a shape was found); finding, on every call,
        # on one RE2 automaton when there are many shapes (Python's re tries each at each offset).
        self.regex = re.compile("|".join(re.escape(s) for s in ordered))
        self.finder: Any = self.regex
        self.finder_bytes: Any = re.compile(b"|".join(re.escape(s) for s in self.shapes_bytes))
        if _re2 is not None and len(ordered) > _IN_SCAN_MAX:
            options = _re2.Options()
            options.max_mem = 64 << 20
            try:
                finder = _re2.compile(self.regex.pattern, options)
                self.finder_bytes = _re2.compile(self.finder_bytes.pattern, options)
                self.finder = finder
            except Exception:  # pragma: no cover - past RE2's memory budget: Python's re finds too
                self.finder_bytes = re.compile(b"|".join(re.escape(s) for s in self.shapes_bytes))


_lock = threading.Lock()
_values: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
_known: _Known | None = None
#: Values were added since ``_known`` was built: it is rebuilt on the next use, so a burst of
#: remembering (an ``llm_config`` of many entries) compiles the matchers once.
_stale = False
#: Bumped whenever the remembered values change: results cached by the redaction (which scrubs
#: them) are good only within one generation.
_generation = 0


def generation() -> int:
    """A number that changes whenever the remembered values change (for caches of results)."""
    return _generation


def _shapes(value: str) -> set[str]:
    """The forms ``value`` takes once written: raw, JSON-escaped, percent-encoded, HTML-escaped."""
    out = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote_plus(value),
        html.escape(value),
    }
    return {s for s in out if len(s) >= MIN_LENGTH}


def _in_json(shape: str) -> bytes:
    """``shape`` as it stands inside a JSON string written by orjson (UTF-8, ``"`` and ``\\``
    and control characters escaped)."""
    return json.dumps(shape, ensure_ascii=False)[1:-1].encode()


def _worth_remembering(value: str) -> bool:
    if len(value) < MIN_LENGTH or value in _MARKER or "REDACTED" in value.upper():
        return False  # a marker, or a piece of one: scrubbing it would never end
    return len(value) >= PLAIN_MIN_LENGTH or _PLAIN.match(value) is None


def _add(values: Iterable[str]) -> None:
    global _stale, _generation
    fresh = [v for v in values if _worth_remembering(v) and v not in _values]
    if not fresh:
        return
    with _lock:
        for value in fresh:
            _values[value] = None
        while len(_values) > MAX_VALUES:
            del _values[next(iter(_values))]
        _stale = True
        _generation += 1


def _current() -> _Known | None:
    """The matchers over the remembered values (None: nothing remembered), rebuilt if stale."""
    global _known, _stale
    if _stale:
        with _lock:
            if _stale:
                _known = _Known(tuple(_values)) if _values else None
                _stale = False
    return _known


def _basic_parts(token: str) -> list[str]:
    """A Basic credential: its base64, and the ``user:password`` and password it decodes to."""
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return [token]
    if ":" not in decoded:
        return [token]
    return [token, decoded, decoded.split(":", 1)[1]]


def _plain_text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    secret = getattr(value, "get_secret_value", None)  # pydantic SecretStr
    if callable(secret):
        try:
            plain = secret()
        except Exception:
            return None
        return plain if isinstance(plain, str) else None
    return None


def remember_credential(value: object) -> None:
    """Remember one credential value: a ``str``, ``bytes`` or pydantic ``SecretStr``.

    A scheme word (``Bearer``, ``Basic``, ``Token``) is dropped and the rest remembered as well as
    the whole; a ``Basic`` value also as the ``user:password`` and password it decodes to. Values
    shorter than :data:`MIN_LENGTH`, placeholder-like ones, non-strings and markers are ignored.
    Never raises.
    """
    try:
        text = _plain_text(value)
        if text is None:
            return
        text = text.strip()
        found = [text]
        scheme = _SCHEME.match(text)
        if scheme is not None:
            rest = scheme.group(2).strip()
            found += _basic_parts(rest) if scheme.group(1).lower() == "basic" else [rest]
        _add(found)
    except Exception:  # pragma: no cover - remembering must never break a caller
        return


def remember_from_url(url: object) -> None:
    """Remember the password of a URL's userinfo (raw and percent-decoded, and the base64 of
    ``user:password`` an HTTP client sends as Basic auth) and the values of its sensitive query
    keys (``?api_key=...``). Accepts a ``str`` or any object whose ``str()`` is a URL. Never raises."""
    try:
        text = url if isinstance(url, str) else str(url) if url is not None else ""
        if "://" not in text:
            return
        parts = urlsplit(text)
        if parts.password:
            user, password = unquote(parts.username or ""), unquote(parts.password)
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            _add([parts.password, password, basic])
        _add(value for key, value in parse_qsl(parts.query) if is_sensitive_key(key))
    except Exception:  # a URL we cannot read has nothing to remember
        return


def _remember_headers(headers: object) -> None:
    items: Iterable[Any]
    if isinstance(headers, Mapping):
        items = headers.items()
    elif isinstance(headers, list | tuple):
        items = [pair for pair in headers if isinstance(pair, list | tuple) and len(pair) == 2]
    else:
        items = getattr(headers, "items", lambda: ())()  # httpx.Headers
    for name, value in items:
        name = name.decode("latin-1") if isinstance(name, bytes) else name
        if isinstance(name, str) and (name.lower() in _CREDENTIAL_HEADERS or is_sensitive_key(name)):
            remember_credential(value)


def remember_from_config(config: object, _depth: int = 0) -> None:
    """Walk an ``llm_config`` (dicts, lists, ``config_list`` entries, pydantic models) and remember
    every string under a sensitive key (``api_key``, ``azure_ad_token``...), every credential
    header value of ``default_headers``/``headers``/``extra_headers`` and every secret of a base
    URL. Never raises."""
    if _depth > 8 or config is None:
        return
    if not isinstance(config, Mapping | list | tuple) and hasattr(config, "model_dump"):
        try:
            config = config.model_dump()
        except Exception:  # a config we cannot read has nothing to remember
            return
    if isinstance(config, Mapping):
        for key, value in config.items():
            lowered = str(key).lower()
            if lowered in _HEADER_KEYS:
                _remember_headers(value)
            elif lowered in _URL_KEYS:
                remember_from_url(value)
            elif isinstance(key, str) and is_sensitive_key(key) and _plain_text(value) is not None:
                remember_credential(value)
            elif isinstance(value, Mapping | list | tuple) or hasattr(value, "model_dump"):
                remember_from_config(value, _depth + 1)
    elif isinstance(config, list | tuple):
        for item in config:
            remember_from_config(item, _depth + 1)


#: Clients already read, with the ``api_key`` they had then: the integrations call
#: :func:`remember_from_client` on every request (about 19 µs to read a client again), so a
#: client is read once, and again only when its key changes.
_clients_read: weakref.WeakKeyDictionary[Any, object] = weakref.WeakKeyDictionary()


def remember_from_client(client: object) -> None:
    """Remember what an SDK client carries (an ``openai.OpenAI``, an AG2 client wrapper...): its
    ``api_key``, its default headers and its base URL. A client already read with the same
    ``api_key`` is not read again. Never raises."""
    if client is None:
        return
    key = getattr(client, "api_key", None)
    try:
        if _clients_read.get(client, _clients_read) == key:
            return
    except TypeError:  # not weakly referenceable or not hashable: read it every time
        pass
    try:
        remember_credential(getattr(client, "api_key", None))
        for attribute in ("_custom_headers", "default_headers"):
            _remember_headers(getattr(client, attribute, None))
        remember_from_url(getattr(client, "base_url", None))
        inner = getattr(client, "_oai_client", None) or getattr(client, "client", None)
        if inner is not None and inner is not client and not isinstance(inner, str):
            remember_credential(getattr(inner, "api_key", None))
    except Exception:  # pragma: no cover - remembering must never break a caller
        return
    try:
        _clients_read[client] = key
    except TypeError:
        pass


def known_credentials() -> frozenset[str]:
    """The remembered values (for tests; never log or write this)."""
    with _lock:
        return frozenset(_values)


def forget_credentials() -> None:
    """Forget every remembered value (tests; a process that rotates its keys)."""
    global _known, _stale, _generation
    with _lock:
        _values.clear()
        _known, _stale = None, False
        _generation += 1
        _clients_read.clear()


def may_hold_known_text(text: str) -> bool:
    """True when ``text`` holds some shape of a remembered value (False at once when none is)."""
    known = _current()
    if known is None:
        return False
    if len(known.shapes) <= _IN_SCAN_MAX:
        return any(shape in text for shape in known.shapes)
    return known.finder.search(text) is not None


def may_hold_known_bytes(data: bytes) -> bool:
    """:func:`may_hold_known_text` for serialized (UTF-8) JSON."""
    known = _current()
    if known is None:
        return False
    if len(known.shapes_bytes) <= _IN_SCAN_MAX:
        return any(shape in data for shape in known.shapes_bytes)
    return known.finder_bytes.search(data) is not None


def scrub_known_credentials(text: str, counts: dict[str, int] | None = None) -> str:
    """``text`` with every shape of every remembered value replaced by ``[REDACTED:credential]``;
    ``counts["credential"]`` gets +1 per occurrence. Returns the very same object when nothing
    was found (and at once when nothing is remembered)."""
    known = _current()
    if known is None or not text or not may_hold_known_text(text):
        return text
    scrubbed, hits = known.regex.subn(_MARKER, text)
    if hits and counts is not None:
        counts[KIND] = counts.get(KIND, 0) + hits
    return scrubbed if hits else text
