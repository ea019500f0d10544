"""The redaction tables: which key names are secret and which credential formats to find.

Data only, plus the small checks some entries need: :data:`SENSITIVE_KEYS` and friends (key
names, judged by :func:`is_sensitive_key`), and :data:`PATTERNS`, the one documented table of
credential formats. Each :class:`Pattern` keeps its regular expression as source text and
compiles it on first use (:attr:`Pattern.regex`), so importing this module compiles no pattern;
the screens and the matching live in :mod:`ag2_logging.redaction.engine`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache

MARKER = "[REDACTED:{kind}]"
MARKER_PREFIX = "[REDACTED:"
MARKER_RE = re.compile(r"\[REDACTED:[A-Za-z0-9_.:\-]{1,64}\]", re.ASCII)

# ---------------------------------------------------------------------------------------------
# Key names
# ---------------------------------------------------------------------------------------------

#: Key names whose values are always removed (after normalization: camelCase and ``-``, ``.``,
#: spaces read as ``_``, lower-cased; only the last ``[a-z0-9_]`` run of a key is looked at, so
#: ``headers/X-Api-Key`` is judged as ``x_api_key``).
SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "api_key",
        "apikey",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "auth",
        "authorization",
        "proxy_authorization",
        "cookie",
        "cookies",
        "set_cookie",
        "private_key",
        "credentials",
        "credential",
        "azure_ad_token",
        "azure_ad_token_provider",
        "aws_secret_access_key",
        "aws_session_token",
        "x_api_key",
        "session_token",
        "sessionid",
        "csrftoken",
        "bearer",
        "dsn",
    }
)
#: Endings that make any key sensitive (``openai_api_key``, ``db_password``, ``x_auth``...). Every
#: name of :data:`SENSITIVE_KEYS` also counts as an ending after ``_``.
SENSITIVE_SUFFIXES: tuple[str, ...] = (
    "_key",
    "_token",
    "_secret",
    "_password",
    "_passwd",
    "_pwd",
    "_pass",
    "_passphrase",
    "_credentials",
    "_credential",
    "_auth",
    "_authorization",
    "_cookie",
    "_cookies",
    "_apikey",
    "_sessionid",
    "_csrftoken",
    "_bearer",
    "_dsn",
)
#: Substrings that make any key sensitive wherever they appear (``password_hash``, ``secret_ref``).
SENSITIVE_SUBSTRINGS: tuple[str, ...] = ("password", "passwd", "secret", "credential", "apikey", "api_key")
#: Keys that look like secrets but are not (token counts, database keys, public keys).
NOT_SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "sort_key",
        "cache_key",
        "primary_key",
        "foreign_key",
        "partition_key",
        "routing_key",
        "idempotency_key",
        "public_key",
        "lookup_key",
        "group_key",
        "unique_key",
        "object_key",
        "hash_key",
        "range_key",
        "row_key",
        "dict_key",
        "map_key",
        "key",
    }
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\-. ]")
_NOT_WORD = re.compile(r"[^a-z0-9_]")


def _normalize_key(key: str) -> str:
    """``X-Api-Key`` -> ``x_api_key``; ``headers/apiKey`` -> ``api_key`` (last segment)."""
    k = _SEPARATORS.sub("_", _CAMEL.sub("_", key).lower())
    return _NOT_WORD.split(k)[-1]


#: Every sensitive name is also a sensitive ending ("my_azure_ad_token_provider"), which keeps the
#: verdict on a name's last run consistent with the verdict on its last word (see _candidate_regex).
_ENDINGS = SENSITIVE_SUFFIXES + tuple("_" + k for k in sorted(SENSITIVE_KEYS))


@lru_cache(maxsize=8192)
def is_sensitive_key(key: str) -> bool:
    """True when the value under ``key`` must never be written."""
    k = _normalize_key(key)
    if not k or k in NOT_SENSITIVE_KEYS:
        return False
    if k in SENSITIVE_KEYS or k.endswith(_ENDINGS):
        return True
    return any(sub in k for sub in SENSITIVE_SUBSTRINGS)


@lru_cache(maxsize=1024)
def key_kind(key: str) -> str:
    return _normalize_key(key)[:40] or "key"


# ---------------------------------------------------------------------------------------------
# Patterns
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """One credential format: what it is called, how to find it, which part is the secret."""

    kind: str
    #: The Python regular expression, as source text (compiled on first use: :attr:`regex`).
    source: str
    #: RE2 expression that every match of ``regex`` also matches, in raw text and in JSON-escaped
    #: text. ``None``: the pattern starts with a name that :func:`is_sensitive_key` accepts
    #: (``DB_PASSWORD=...``, ``"token": "..."``) and is tried where such a name stands.
    screen: str | None
    #: Regex groups holding the secret, first that matched wins; ``()`` = the whole match.
    groups: tuple[int | str, ...] = ()
    #: Extra test on the match (e.g. Basic credentials must decode to ``user:password``).
    check: Callable[[re.Match[str]], bool] | None = None
    description: str = ""
    #: Characters that may not stand right before a match ("task-..." holds no OpenAI key). Checked
    #: in Python rather than with a look-behind, which would cost ``re`` its literal-prefix search.
    not_after: str = ""
    #: ``re`` flags the source is compiled with.
    flags: int = re.ASCII

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled expression (compiled the first time a redaction runs this pattern)."""
        return re.compile(self.source, self.flags)

    def secret_span(self, match: re.Match[str]) -> tuple[int, int] | None:
        if not self.groups:
            return match.span()
        for group in self.groups:
            if match.group(group) is not None:
                return match.span(group)
        return None

    def accepts(self, match: re.Match[str]) -> bool:
        start = match.start()
        text = match.string
        if (
            self.not_after
            and start > 0
            and text[start - 1] in self.not_after
            and not _after_escape(text, start)
        ):
            return False
        return self.check is None or self.check(match)


_ESCAPE_BEFORE = re.compile(r"\\(?:[nrtbf]|u[0-9a-fA-F]{4})\Z")


def _after_escape(text: str, start: int) -> bool:
    """True when ``text[:start]`` ends with a JSON escape (``\\n``, ``\\u00e9``): the secret
    starts a new token even though a letter stands before it."""
    return _ESCAPE_BEFORE.search(text, max(0, start - 6), start) is not None


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_WORD = _ALNUM + "_"
_FLAGS = re.ASCII
# A secret never starts right after a letter or digit: written at the start of a pattern, it is
# turned into ``Pattern.not_after``.
_L = r"(?<![A-Za-z0-9])"
# ... and a fixed-length one never runs on into more token characters.
_R = r"(?![A-Za-z0-9])"
_RT = r"(?![A-Za-z0-9_\-])"
# Whitespace inside a header or assignment, in raw text and JSON-escaped text (screens only).
SCREEN_WS = r"(?:[ \t]|\\+t)"
# An optional quote, possibly JSON-escaped (screens only).
SCREEN_QUOTE = r"(?:\\*[\"'])?"

_BOOLISH = frozenset(
    {"true", "false", "null", "none", "nil", "yes", "no", "on", "off", "undefined", "required", "optional"}
)
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)*", re.ASCII)


def _plausible(value: str, *, quoted: bool) -> bool:
    """Could ``value`` be a credential (as opposed to a word, a number, a flag)?"""
    if not value or MARKER_RE.fullmatch(value):
        return False
    if value.lower() in _BOOLISH or _NUMBER.fullmatch(value):
        return False
    if quoted:
        return True
    # Unquoted in prose ("token: each word...") a credential has a digit or a symbol (sentence
    # punctuation at the end does not count), or is long and of mixed case.
    core = value.rstrip(".,!?:")
    if len(core) < 4:
        return False
    if any(c.isdigit() for c in core) or not core.replace("-", "").replace("'", "").isalpha():
        return True
    return len(core) >= 12 and not core.islower() and not core.isupper()


def _assignment_check(match: re.Match[str]) -> bool:
    name = match.group("name")
    if not is_sensitive_key(name):
        return False
    if match.group("qv") is not None:
        return _plausible(match.group("qv"), quoted=True)
    if match.group("tv") is not None:
        return _plausible(match.group("tv"), quoted=True)
    groups = match.groupdict()
    return _plausible(groups.get("xv") or groups.get("cv") or groups["uv"] or "", quoted=False)


def _env_check(match: re.Match[str]) -> bool:
    name = match.group("name")
    if name.upper() != name or not any(c.isalpha() for c in name):
        return False
    return _assignment_check(match)


def _value_check(group: int | str) -> Callable[[re.Match[str]], bool]:
    def check(match: re.Match[str]) -> bool:
        return _plausible(match.group(group) or "", quoted=False)

    return check


def _basic_check(match: re.Match[str]) -> bool:
    """``Basic <b64>`` is a credential when it decodes to ``user:password``."""
    token = match.group(1)
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return ":" in decoded and decoded.isprintable()


def _url_password_check(match: re.Match[str]) -> bool:
    """A password cut before its ``@`` is one when it looks like one (``:port`` and
    ``:placeholder`` at the end of a text are not)."""
    return match.group(2) is None or _plausible(match.group(2), quoted=False)


def _connection_check(match: re.Match[str]) -> bool:
    if match.group(1) is not None:
        return _plausible(match.group(1), quoted=False)
    return not MARKER_RE.fullmatch(match.group(2) or "")


def _header_check(match: re.Match[str]) -> bool:
    value = match.group(1)
    return bool(value) and not MARKER_RE.fullmatch(value) and any(not c.isalpha() for c in value)


def _p(
    kind: str,
    pattern: str,
    screen: str | None,
    description: str,
    *,
    flags: int = 0,
    groups: tuple[int | str, ...] = (),
    check: Callable[[re.Match[str]], bool] | None = None,
) -> Pattern:
    not_after = ""
    if pattern.startswith(_L):
        pattern, not_after = pattern[len(_L) :], _ALNUM
    elif pattern.startswith((r"(?i)\b", r"\b")):
        pattern, not_after = pattern.replace(r"\b", "", 1), _WORD
    return Pattern(kind, pattern, screen, groups, check, description, not_after, _FLAGS | flags)


# Keys without a recognisable prefix, anchored on a key word (as gitleaks' generic-api-key):
# "azure key: <32 hex>", "the API key provided: ...", "secret for prod = ...". The key word, up
# to three more words, a separator, then a hex or base62/base64 value of 16+ characters.
_GENERIC_WORDS = r"key|secret|token|passw(?:or)?d|pwd|pw|passphrase|credentials?|creds"
_GENERIC_VALUE_CHARS = r"A-Za-z0-9+/_~=\-"
_GENERIC_VALUE = r"[" + _GENERIC_VALUE_CHARS + r"]{16,512}+(?:\.[" + _GENERIC_VALUE_CHARS + r"]+)*+"
# Screens: a space, a tab, a no-break space or a line break, raw or JSON-escaped.
_SCREEN_SPACE = r"(?:[ \t\r\n" + "\u00a0" + r"]|\\+[tnr]|\\+u00[aA]0)"
#: Words that, between the key word and the separator, say the value is not the key itself.
GENERIC_STOP_WORDS: frozenset[str] = frozenset(
    {
        "commit", "sha", "sha1", "sha256", "hash", "digest", "checksum", "fingerprint", "id", "ids",
        "uuid", "guid", "name", "names", "count", "counts", "length", "len", "size", "limit",
        "limits", "usage", "type", "types", "version", "file", "path", "url", "prefix", "suffix",
        "hint", "index", "format", "field", "header", "rotation", "expiry", "expires", "expired",
        "created", "updated", "label", "alias", "owner", "scope", "scopes",
    }
)  # fmt: skip
#: Entropy floors in bits per character (Shannon, over the value's own characters): random hex
#: has ~3.4 at 16 characters (fewer than 1 in 1,000 draws below 2.5) and ~3.7 at 32, random
#: lower-case base36 ~4.1, random base62 ~4.5; words and repeated characters far less. A value
#: that is one unit repeated (``1234abcd1234abcd``) is never a key, whatever its entropy.
GENERIC_MIN_ENTROPY_HEX = 2.5
GENERIC_MIN_ENTROPY_ONE_CASE = 3.2
GENERIC_MIN_ENTROPY = 3.5
GENERIC_MIN_LENGTH = 16
_ALNUM_CHARS = string.ascii_letters + string.digits
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_REPEATED = re.compile(r"(.{1,16}?)\1+")
_NAME_CHARS = frozenset(_ALNUM_CHARS + "_.-")
_PREVIOUS_WORD = re.compile(r"([A-Za-z0-9_\-]+)[ \t]+\Z")


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character (0.0 for an empty string)."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _generic_name_ok(match: re.Match[str]) -> bool:
    """The key word (``key``, ``keys``, ``key1``) stands alone or ends a secret name (``api_key``,
    ``AZURE_KEY``, ``apiKey``, ``api_keys``), not ``monkey``, ``prompt_tokens``, ``cache_key`` or
    ``public key``."""
    text, start, word = match.string, match.start(), match.group("kw") + (match.group("ks") or "")
    begin = start
    while begin > max(0, start - 80) and text[begin - 1] in _NAME_CHARS:
        begin -= 1
    name = text[begin:start] + word
    if name != word:
        return is_sensitive_key(name)
    previous = _PREVIOUS_WORD.search(text, max(0, start - 40), start)
    return previous is None or (previous.group(1) + "_" + match.group("kw")).lower() not in NOT_SENSITIVE_KEYS


def generic_value_ok(value: str) -> bool:
    """Could ``value`` (next to a key word) be a key: 16+ characters, letters and digits (or
    both cases at 20+), not a UUID, not one unit repeated, above the entropy floor (bits per
    character: hex 2.5, one case and digits 3.2, mixed case 3.5)."""
    if len(value) < GENERIC_MIN_LENGTH or _UUID.fullmatch(value) or _REPEATED.fullmatch(value):
        return False
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    mixed = any(c.isupper() for c in value) and any(c.islower() for c in value)
    if not has_alpha or not (has_digit or (mixed and len(value) >= 20)):
        return False
    if _HEX.fullmatch(value):
        floor = GENERIC_MIN_ENTROPY_HEX
    elif mixed:
        floor = GENERIC_MIN_ENTROPY
    else:  # one case and digits (base36): fewer symbols, a lower ceiling
        floor = GENERIC_MIN_ENTROPY_ONE_CASE
    return entropy(value) > floor


def _filler_word_ok(word: str) -> bool:
    """A word between the key word and the separator: plain prose ("provided", "for", "prod"),
    or a secret name; not a stop word, and not another identifier (``prompt_tokens``,
    ``keyId``), which would be the value's real label."""
    if word.lower() in GENERIC_STOP_WORDS:
        return False
    if word.isalpha() and (word.islower() or word.isupper() or word[1:].islower()):
        return True
    return is_sensitive_key(word)


#: Words that make ``key``/``token`` a credential's name in prose without a separator ("use api
#: key <hex>"): a bare hex value after any other word ("the key <hex>", "token <hex>") may be a
#: hash or an id.
GENERIC_QUALIFIERS: frozenset[str] = frozenset(
    {
        "api", "access", "subscription", "private", "client", "signing", "master", "admin",
        "service", "deploy", "license", "licence", "encryption", "app", "bot", "refresh",
        "personal", "ingestion", "webhook", "x-api", "azure", "openai",
    }
)  # fmt: skip
_LAST_WORD = re.compile(r"([A-Za-z0-9\-]+)[ \t]*\Z")


def _unseparated_ok(match: re.Match[str]) -> bool:
    """No separator between the key word and the value ("Token <key>", "api key <key> is
    invalid"): one run of base62/base64 (no ``-`` or ``.``, which ids such as ``chatcmpl-...``
    have), and a bare hex value only in quotes or after a qualifier (:data:`GENERIC_QUALIFIERS`)
    or as part of a secret name (``x-api-key``)."""
    value = match.group("gv")
    if any(c in value for c in "-.,"):
        return False
    if match.group("gq") or not _HEX.fullmatch(value):
        return True
    text, start = match.string, match.start()
    if start > 0 and text[start - 1] in _NAME_CHARS:
        return True  # x-api-key, api_key: already judged a secret name
    previous = _LAST_WORD.search(text, max(0, start - 40), start)
    return previous is not None and previous.group(1).lower() in GENERIC_QUALIFIERS


def _generic_check(match: re.Match[str]) -> bool:
    filler = match.group("filler")
    if filler is None:
        if not _unseparated_ok(match):
            return False
    elif not all(_filler_word_ok(word) for word in filler.split()):
        return False
    # A list ("keys: <k1>, <k2>") is judged by its first value.
    return _generic_name_ok(match) and generic_value_ok(match.group("gv").split(",")[0])


# Assignments: an identifier (judged by is_sensitive_key), an optional closing quote (JSON keys,
# possibly escaped), a separator, then a quoted value (up to the same quote followed by a
# delimiter) or an unquoted one.
_IDENT = r"(?<![A-Za-z0-9_.\-])(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,80})"
_UPPER_IDENT = r"(?<![A-Za-z0-9_.\-])(?P<name>[A-Z_][A-Z0-9_.\-]{0,80})"


def _assign_value(*, colon: bool) -> str:
    """The value of an assignment: quoted, or unquoted. A quoted value whose closing quote never
    comes (JSON cut at ``max_tokens``, a log line cut at its length limit: ``"password":
    "Hunter2-``) runs to the end of its line or of the text: group ``tv``, tried only when the
    closed form failed. ``colon``: the expression has groups ``sep`` and ``lt``; after a plain
    ``:`` (YAML, prose) an unquoted value runs to the next whitespace (``Hunter2&Co2024``,
    ``Hunter2(2024)xyz``), without trailing sentence punctuation; inside an XML element
    (``<password>...``) it runs to the next ``<``."""
    # The closing quote is preceded by exactly the opening quote's backslashes: a JSON-escaped
    # quote inside the value (``"Hunter2\\"-...``) does not close it.
    quoted = (
        r"(?P<bs>\\*)(?P<q>[\"'])(?P<qv>[^\r\n]{1,1024}?)(?<!\\)(?P=bs)(?P=q)(?![A-Za-z0-9_])"
        r"|\\*[\"'](?P<tv>[^\r\n\"'][^\r\n]{0,1023})(?=[\r\n]|\Z)"
    )
    unquoted = r"(?P<uv>[^\s\"'\\,;&)}\]<>]+)"
    if not colon:
        return "(?:" + quoted + "|" + unquoted + ")"
    return (
        "(?:" + quoted + r"|(?(lt)(?P<xv>[^<\r\n]{1,1024})"
        r"|(?(sep)(?P<cv>[^\s\"'\\<>]{1,1024}(?<![.,;:!?)}\]]))|" + unquoted + ")))"
    )


_ASSIGN_VALUE = _assign_value(colon=False)

#: The pattern table: the one documented place for credential formats. Order matters: specific
#: formats come before generic ones, so a key gets the most precise kind (a redacted value is
#: a marker, which no later pattern matches).
PATTERNS: tuple[Pattern, ...] = (
    # -- private keys ------------------------------------------------------------------------
    _p(
        "pem_private_key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY",
        "PEM private key blocks (RSA, EC, DSA, OpenSSH, PKCS#8, encrypted, PGP), header to footer, "
        "or to the end of the text when the footer is missing",
        flags=re.DOTALL,
    ),
    _p(
        "age_secret_key",
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
        r"AGE-SECRET-KEY-1",
        "age encryption secret keys",
    ),
    # -- LLM providers -----------------------------------------------------------------------
    _p(
        "anthropic_key",
        _L + r"sk-ant-(?:api|admin|oat|ort|sid)\d\d-[A-Za-z0-9_\-]{20,}",
        r"sk-ant-",
        "Anthropic API, admin and OAuth keys (sk-ant-api03-...)",
    ),
    _p("openrouter_key", _L + r"sk-or-v1-[A-Za-z0-9]{32,}", r"sk-or-v1-", "OpenRouter keys"),
    _p(
        "openai_key",
        _L + r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
        r"sk-[A-Za-z0-9_\-]{20}",
        "OpenAI keys (sk-, sk-proj-, sk-svcacct-, sk-admin-) and the sk- keys of OpenAI-compatible "
        "providers (DeepSeek, Moonshot, ...)",
    ),
    _p(
        "google_api_key",
        _L + r"AIza[0-9A-Za-z_\-]{35}" + _RT,
        r"AIza[0-9A-Za-z_\-]{35}",
        "Google API keys (Gemini, Maps, Firebase)",
    ),
    _p("groq_key", _L + r"gsk_[A-Za-z0-9]{20,}", r"gsk_[A-Za-z0-9]{20}", "Groq keys"),
    _p("xai_key", _L + r"xai-[A-Za-z0-9]{20,}", r"xai-[A-Za-z0-9]{20}", "xAI (Grok) keys"),
    _p(
        "huggingface_token",
        _L + r"(?:hf_|api_org_)[A-Za-z0-9]{30,}",
        r"(?:hf|api_org)_[A-Za-z0-9]{30}",
        "Hugging Face user and organization tokens",
    ),
    _p("perplexity_key", _L + r"pplx-[A-Za-z0-9]{32,}", r"pplx-[A-Za-z0-9]{32}", "Perplexity keys"),
    _p("replicate_token", _L + r"r8_[A-Za-z0-9]{30,}", r"r8_[A-Za-z0-9]{30}", "Replicate tokens"),
    _p("langsmith_key", _L + r"lsv2_(?:pt|sk)_[A-Za-z0-9_]{20,}", r"lsv2_(?:pt|sk)_", "LangSmith keys"),
    _p("together_key", _L + r"tgp_v1_[A-Za-z0-9_\-]{20,}", r"tgp_v1_", "Together AI keys"),
    # -- cloud providers ---------------------------------------------------------------------
    _p(
        "aws_access_key_id",
        _L + r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}" + _R,
        r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}",
        "AWS access key ids (the secret access key is caught by its name, e.g. aws_secret_access_key=...)",
    ),
    _p("google_oauth_secret", _L + r"GOCSPX-[A-Za-z0-9_\-]{28}", r"GOCSPX-", "Google OAuth client secrets"),
    _p("google_oauth_token", _L + r"ya29\.[0-9A-Za-z_\-]{20,}", r"ya29\.", "Google OAuth access tokens"),
    _p(
        "google_refresh_token",
        _L + r"1//0[A-Za-z0-9_\-]{40,}",
        r"1//0[A-Za-z0-9_\-]{40}",
        "Google OAuth refresh tokens",
    ),
    _p(
        "azure_ad_client_secret",
        # A "." right after it ends a sentence; one followed by more secret characters does not.
        _L + r"[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~\-]|\.[A-Za-z0-9_~.\-])",
        r"[0-9]Q~[A-Za-z0-9_~.\-]{31}",
        "Microsoft Entra ID (Azure AD) client secrets",
    ),
    _p("digitalocean_token", _L + r"do[por]_v1_[a-f0-9]{64}", r"do[por]_v1_", "DigitalOcean tokens"),
    _p(
        "alibaba_access_key_id",
        _L + r"LTAI[A-Za-z0-9]{20}" + _R,
        r"LTAI[A-Za-z0-9]{20}",
        "Alibaba Cloud access key ids",
    ),
    _p(
        "databricks_token",
        _L + r"dapi[a-f0-9]{32}(?:-\d)?" + _R,
        r"dapi[a-f0-9]{32}",
        "Databricks personal access tokens",
    ),
    _p("heroku_key", _L + r"HRKU-[A-Za-z0-9_\-]{20,}", r"HRKU-", "Heroku API keys (new format)"),
    _p(
        "hashicorp_vault_token",
        _L + r"hv[sb]\.[A-Za-z0-9_\-]{24,}",
        r"hv[sb]\.[A-Za-z0-9_\-]{24}",
        "HashiCorp Vault service and batch tokens",
    ),
    _p(
        "terraform_token",
        _L + r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=\-]{60,}",
        r"\.atlasv1\.",
        "Terraform Cloud / HCP Terraform API tokens",
    ),
    _p("pulumi_token", _L + r"pul-[a-f0-9]{40}" + _R, r"pul-[a-f0-9]{40}", "Pulumi access tokens"),
    _p(
        "doppler_token",
        _L + r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",
        r"dp\.(?:pt|st|sa|ct|scim|audit)\.",
        "Doppler tokens",
    ),
    _p(
        "grafana_token",
        _L + r"(?:glc_[A-Za-z0-9+/]{32,}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})",
        r"gl(?:c|sa)_[A-Za-z0-9+/]{32}",
        "Grafana Cloud and service account tokens",
    ),
    _p("newrelic_key", _L + r"NR(?:AK|AA|II|JS)-[A-Za-z0-9]{27}", r"NR(?:AK|AA|II|JS)-", "New Relic keys"),
    _p(
        "sentry_token",
        _L + r"(?:sntrys_[A-Za-z0-9+/=_\-]{20,}|sntryu_[a-f0-9]{64})",
        r"sntry[su]_",
        "Sentry auth tokens",
    ),
    _p(
        "cloudflare_origin_ca_key",
        _L + r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}",
        r"v1\.0-[a-f0-9]{24}-",
        "Cloudflare origin CA keys",
    ),
    # -- source hosting ----------------------------------------------------------------------
    _p(
        "github_token",
        _L + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_",
        "GitHub personal, OAuth, app, refresh and fine-grained tokens",
    ),
    _p(
        "gitlab_token",
        _L + r"(?:gl(?:pat|dt|ptt|rt|cbt|imt|ft|oas|soat|ffct|agent)-[A-Za-z0-9_\-]{20,}"
        r"|GR1348941[A-Za-z0-9_\-]{20,})",
        r"gl(?:pat|dt|ptt|rt|cbt|imt|ft|oas|soat|ffct|agent)-|GR1348941",
        "GitLab personal, deploy, trigger, runner, CI job, OAuth and feed tokens",
    ),
    _p(
        "bitbucket_token",
        _L + r"ATBB[A-Za-z0-9_=.\-]{24,}",
        r"ATBB[A-Za-z0-9_=.\-]{24}",
        "Bitbucket app passwords",
    ),
    _p("atlassian_token", _L + r"ATATT3[A-Za-z0-9_\-=]{20,}", r"ATATT3", "Atlassian API tokens"),
    # -- chat, e-mail, social ----------------------------------------------------------------
    _p(
        "slack_token",
        _L
        + r"(?:xox[abposre]-[A-Za-z0-9\-]{10,}|xapp-\d-[A-Za-z0-9\-]{10,}|xoxe\.xox[bp]-\d-[A-Za-z0-9]{20,})",
        r"xox[abposre]-|xapp-[0-9]-|xoxe\.xox",
        "Slack bot, user, app-level and configuration tokens",
    ),
    _p(
        "slack_webhook",
        r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+",
        r"hooks\.slack\.com/",
        "Slack incoming webhook URLs",
    ),
    _p(
        "discord_webhook",
        r"https?://(?:[a-z]+\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_\-]+",
        r"discord(?:app)?\.com/api/webhooks/",
        "Discord webhook URLs",
    ),
    _p(
        "discord_bot_token",
        _L + r"[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38}" + _RT,
        r"[MNO][A-Za-z0-9_\-]{23}[A-Za-z0-9_\-]{0,2}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27}",
        "Discord bot tokens",
    ),
    _p(
        "telegram_bot_token",
        _L + r"\d{8,10}:AA[A-Za-z0-9_\-]{33}" + _RT,
        r"[0-9]{8}:AA[A-Za-z0-9_\-]{33}",
        "Telegram bot tokens",
    ),
    _p(
        "teams_webhook",
        r"https://[A-Za-z0-9.\-]*webhook\.office\.com/webhookb2/[^\s\"'\\<>]+",
        r"webhook\.office\.com/",
        "Microsoft Teams incoming webhook URLs",
    ),
    _p(
        "facebook_token",
        _L + r"EAA[A-Za-z0-9]{90,}",
        r"EAA[A-Za-z0-9]{40}",
        "Facebook / Meta Graph API access tokens",
    ),
    _p("twilio_key", _L + r"SK[0-9a-fA-F]{32}" + _R, r"SK[0-9a-fA-F]{32}", "Twilio API keys"),
    _p(
        "sendgrid_key",
        _L + r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        r"SG\.[A-Za-z0-9_\-]{22}\.",
        "SendGrid API keys",
    ),
    _p("mailgun_key", _L + r"key-[a-f0-9]{32}" + _R, r"key-[a-f0-9]{32}", "Mailgun private API keys"),
    _p(
        "mailchimp_key",
        _L + r"[a-f0-9]{32}-us\d{1,2}" + _R,
        r"[a-f0-9]{32}-us[0-9]",
        "Mailchimp API keys",
    ),
    _p("brevo_key", _L + r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}", r"xkeysib-", "Brevo (Sendinblue) keys"),
    # -- payments ----------------------------------------------------------------------------
    _p(
        "stripe_key",
        _L + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
        r"[sr]k_(?:live|test)_",
        "Stripe secret and restricted keys",
    ),
    _p("stripe_webhook_secret", _L + r"whsec_[A-Za-z0-9]{24,}", r"whsec_", "Stripe webhook signing secrets"),
    _p(
        "square_token",
        _L + r"(?:sq0(?:atp|csp)-[A-Za-z0-9_\-]{22,}|EAAA[A-Za-z0-9_+\-]{60,})",
        r"sq0(?:atp|csp)-|EAAA[A-Za-z0-9_+\-]{40}",
        "Square access tokens and OAuth secrets",
    ),
    _p(
        "braintree_token",
        r"access_token\$(?:production|sandbox)\$[a-z0-9]{16}\$[a-f0-9]{32}",
        r"access_token\$",
        "Braintree / PayPal access tokens",
    ),
    _p("shopify_token", _L + r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}", r"shp(?:at|ca|pa|ss)_", "Shopify tokens"),
    _p(
        "plaid_token",
        _L
        + r"access-(?:sandbox|development|production)-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}",
        r"access-(?:sandbox|development|production)-",
        "Plaid access tokens",
    ),
    _p(
        "flutterwave_key",
        _L + r"FLWSECK(?:_TEST)?-[a-fA-F0-9]{32}-X",
        r"FLWSECK",
        "Flutterwave secret keys",
    ),
    # -- package registries ------------------------------------------------------------------
    _p("npm_token", _L + r"npm_[A-Za-z0-9]{36}" + _R, r"npm_[A-Za-z0-9]{36}", "npm access tokens"),
    _p("pypi_token", _L + r"pypi-AgE[A-Za-z0-9_\-]{50,}", r"pypi-AgE", "PyPI and TestPyPI API tokens"),
    _p("rubygems_key", _L + r"rubygems_[a-f0-9]{48}", r"rubygems_", "RubyGems API keys"),
    _p("nuget_key", _L + r"oy2[a-z0-9]{43}" + _R, r"oy2[a-z0-9]{43}", "NuGet API keys"),
    _p("dockerhub_token", _L + r"dckr_pat_[A-Za-z0-9_\-]{27,}", r"dckr_pat_", "Docker Hub access tokens"),
    _p(
        "artifactory_token",
        _L + r"AKCp[A-Za-z0-9]{60,}",
        r"AKCp[A-Za-z0-9]{20}",
        "JFrog Artifactory API keys",
    ),
    _p("clojars_token", _L + r"CLOJARS_[a-z0-9]{60}", r"CLOJARS_", "Clojars deploy tokens"),
    # -- tokens and headers ------------------------------------------------------------------
    _p(
        "jwt",
        _L + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
        r"eyJ[A-Za-z0-9_\-]*\.eyJ",
        "JSON Web Tokens (signed or not)",
    ),
    _p(
        "bearer_token",
        r"(?i)\bbearer(?:[ \t]|\\+t)+((?=[A-Za-z0-9._~+/\-]*[0-9+/=_~])[A-Za-z0-9._~+/\-]{8,}=*)",
        r"(?i)bearer" + SCREEN_WS + "+",
        "Bearer credentials (a credential of 8+ characters with a digit or a symbol, so that "
        "'bearer of bad news' stays)",
        groups=(1,),
    ),
    _p(
        "basic_auth",
        r"(?i)\bbasic(?:[ \t]|\\+t)+([A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])",
        r"(?i:basic)" + SCREEN_WS + r"+[A-Za-z0-9+/][A-Za-z0-9+/]*[A-Z0-9+/=]",
        "Basic credentials (base64 that decodes to user:password)",
        groups=(1,),
        check=_basic_check,
    ),
    _p(
        "authorization_header",
        r"(?i)(?<![A-Za-z0-9_\-])(?:proxy[_\-])?authorization\\*[\"']?(?:[ \t]|\\+t)*[:=](?:[ \t]|\\+t)*\\*[\"']?"
        r"((?:[A-Za-z][A-Za-z0-9_\-]*(?:[ \t]|\\+t)+)?[A-Za-z0-9._~+/=:\-]{6,})",
        None,
        "Authorization header values of any scheme (Token, Digest, AWS4-HMAC-SHA256, ...)",
        groups=(1,),
        check=_header_check,
    ),
    _p(
        "cookie_header",
        r"(?i)(?<![A-Za-z0-9_\-])(?:set-)?cookie\\*[\"']?(?:[ \t]|\\+t)*:(?:[ \t]|\\+t)*([^\r\n\"'\\]*=[^\r\n\"'\\]*)",
        None,
        "Cookie and Set-Cookie header values",
        groups=(1,),
    ),
    _p(
        "url_password",
        # A URL cut before its "@" (``postgres://ops:Hunter2-...`` at the end of a text cut at
        # max_tokens): the rest of the text, when it is no port (a digit or a symbol, not digits only).
        r"://[^\s:/@\"'\\]*:(?:([^\s@/\"'\\]+)@|([^\s@/\"'\\]*[^\s@/\"'\\0-9][^\s@/\"'\\]*)\Z)",
        r"://[^\s:/@\"'\\]*:(?:[^\s@/\"'\\]+@|[^\s@/\"'\\]*[^\s@/\"'\\0-9][^\s@/\"'\\]*(?:[\"\\]|$))",
        "Passwords in URLs (postgres://user:PASSWORD@host, redis://:PASSWORD@host, ...), also in a "
        "URL cut before its '@' at the end of the text",
        groups=(1, 2),
        check=_url_password_check,
    ),
    _p(
        "connection_string_password",
        r"(?i)(?:^|(?<=[;\"'{(\s]))(?:[ \t]|\\+t)*(?:password|pwd|passwd|accountkey|sharedaccesskey)(?:[ \t]|\\+t)*=(?:[ \t]|\\+t)*"
        r"([^;\"'\r\n\\]+?)(?:[ \t]|\\+t)*(?=;|[\"'\r\n\\]|$)"
        # MySQL clients: the password glued to -p (-P is the port), or --password=
        r"|(?<![A-Za-z0-9_\-])(?-i:mysql(?:dump|admin|sh|import|check|slap)?)(?=[ \t])[^\r\n]{0,200}?[ \t]"
        r"(?-i:-p|--password=)([^\s\"'\\]+)",
        r"(?i)(?:password|pwd|passwd|accountkey|sharedaccesskey)" + SCREEN_WS + "*="
        r"|mysql[a-z]*(?:[ \t]|\\+t)[^\r\n]*-(?:p|-password=)",
        "Passwords and keys in ;-separated connection strings (ADO.NET, ODBC, JDBC, Azure "
        "Storage), spaces included; MySQL client command lines (mysql -u root -pPASSWORD, "
        "--password=PASSWORD)",
        groups=(1, 2),
        check=_connection_check,
    ),
    _p(
        "env_secret",
        # The name upper-case in the expression itself: a lower-case name fails at once rather
        # than after its value was read (quadratic on "token=token=...").
        _UPPER_IDENT + r"(?:[ \t]|\\+t)*=(?:[ \t]|\\+t)*" + _ASSIGN_VALUE,
        None,
        "KEY=value environment lines whose upper-case name is a secret name (OPENAI_API_KEY=..., "
        "DB_PASSWORD=...)",
        groups=("qv", "tv", "uv"),
        check=_env_check,
    ),
    _p(
        "query_secret",
        r"(?i)(?<![A-Za-z0-9_.\-])(?:password|passwd|pwd|pass|api_key|apikey|api-key|access_token|auth_token"
        r"|refresh_token|client_secret|secret|token|sig|_authtoken|accountkey|sharedaccesskey)=([^\s&;\"'\\]{3,})",
        r"(?i)(?:password|passwd|pwd|pass|api_key|apikey|api-key|access_token|auth_token|refresh_token"
        r"|client_secret|secret|token|sig|_authtoken|accountkey|sharedaccesskey)=",
        "Secrets in query strings and .npmrc lines (?token=..., &sig=..., _authToken=...)",
        groups=(1,),
    ),
    _p(
        "secret_assignment",
        r"(?P<lt>(?<=<))?"
        + _IDENT
        + r"(?:\\*[\"'])?(?:[ \t]|\\+t)*(?::=|=>|=|(?P<sep>:)|(?(lt)>|(?!)))(?:[ \t]|\\+t)*"
        # pretty-printed JSON: the value on the next line; a list's first item
        + r"(?:(?:\r?\n|\\+n)(?:[ \t]|\\+t)*(?=\\*[\"'\[]))?(?:\[(?:[ \t]|\\+t)*(?=\\*[\"']))?"
        + _assign_value(colon=True),
        None,
        "Assignments in code, JSON, YAML, XML and prose whose name is a secret name "
        '(password = "...", "api_key": "...", token: ..., <password>...</password>); unquoted values '
        "need a digit or a symbol and, after a plain ':', run to the next whitespace; a quoted "
        "value cut off before its closing quote runs to the end of its line",
        groups=("qv", "tv", "xv", "cv", "uv"),
        check=_assignment_check,
    ),
    _p(
        "password_phrase",
        r"(?i)\b(?:password|passcode|passphrase|pwd)(?:[ \t]|\\+t)+(?:is|was)(?:[ \t]|\\+t)+[\"']?([^\s\"'\\,;]{4,})",
        r"(?i)(?:password|passcode|passphrase|pwd)" + SCREEN_WS + r"+(?:is|was)",
        "Passwords given in prose ('my password is ...'); the password needs a digit or a symbol",
        groups=(1,),
        check=_value_check(1),
    ),
    _p(
        "generic_secret",
        r"(?i)(?P<kw>" + _GENERIC_WORDS + r")(?P<ks>s|[0-9]{1,2})?(?![A-Za-z0-9])"
        r"(?:(?P<filler>(?:[ \t]+[A-Za-z][A-Za-z0-9_\-]{0,24}){0,3}?)(?:\\*[\"'])?(?:\*\*)?[ \t]*"
        r"(?:::|:=|=>|->|[:=>\uff1a]|(?<=[ \t])(?:is|was)(?=[ \t]))[ \t\u00a0]*(?:\r?\n[ \t]*)?"
        r"|(?=[ \t\u00a0]))"  # no separator: "api key <key> is invalid", "Token <key>"
        r"[ \t\u00a0]*(?:\*\*[ \t]*)?(?P<gq>(?:\\*[\"'`]){0,3})"
        r"(?P<gv>" + _GENERIC_VALUE + r"(?:,[ \t]*" + _GENERIC_VALUE + r")*+)"
        r"(?![" + _GENERIC_VALUE_CHARS + r"]|\.[A-Za-z0-9])",
        r"(?i)(?:" + _GENERIC_WORDS + r")(?:[A-Za-z0-9_ \t\-]*(?:\\*[\"'])?(?:\*\*)?" + _SCREEN_SPACE + r"*"
        r"(?:::|:=|[:=]>?|->|>|" + "\uff1a" + r"|\\+u[fF][fF]1[aA]|is|was)" + _SCREEN_SPACE + r"*"
        r"|(?:s|[0-9]{1,2})?" + _SCREEN_SPACE + r"+)"
        r"(?:\*\*" + _SCREEN_SPACE + r"*)?(?:\\*[\"'`]){0,3}[" + _GENERIC_VALUE_CHARS + r".]{16}",
        "Keys without a known prefix next to a key word (key(s), secret, token(s), password, pw, "
        "credential): 'azure key: <32 hex>', 'API key provided: ...', 'The API key <key> is "
        "invalid', 'Token <key>', '**API key:** `<key>`', 'key:' and the key on the next line; hex or "
        "base62/base64 of 16+ characters with letters and digits above an entropy floor (a list "
        "'keys: <k1>, <k2>' is taken whole); not a UUID, not after 'commit', 'hash', 'id'... "
        "(GENERIC_STOP_WORDS), not a cache, public, primary... key",
        groups=("gv",),
        check=_generic_check,
    ),
)


def kinds() -> tuple[str, ...]:
    """Every kind a pattern can report (key-name redactions report ``key:<name>``)."""
    return tuple(p.kind for p in PATTERNS)


def is_marker(text: str) -> bool:
    return MARKER_RE.fullmatch(text) is not None
