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
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from ag2_logging.serialize import dumps as _dumps

try:  # pragma: no branch - google-re2 is a dependency; the fallback keeps odd platforms working
    import re2 as _re2

    HAVE_RE2 = True
except ImportError:  # pragma: no cover
    _re2 = None
    HAVE_RE2 = False

__all__ = [
    "MARKER",
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

MARKER = "[REDACTED:{kind}]"
MARKER_PREFIX = "[REDACTED:"
_MARKER_RE = re.compile(r"\[REDACTED:[A-Za-z0-9_.:\-]{1,64}\]", re.ASCII)

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
def _key_kind(key: str) -> str:
    return _normalize_key(key)[:40] or "key"


# ---------------------------------------------------------------------------------------------
# Patterns
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """One credential format: what it is called, how to find it, which part is the secret."""

    kind: str
    regex: re.Pattern[str]
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
_WS = r"(?:[ \t]|\\+t)"
# An optional quote, possibly JSON-escaped (screens only).
_Q = r"(?:\\*[\"'])?"

_BOOLISH = frozenset(
    {"true", "false", "null", "none", "nil", "yes", "no", "on", "off", "undefined", "required", "optional"}
)
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)*", re.ASCII)


def _plausible(value: str, *, quoted: bool) -> bool:
    """Could ``value`` be a credential (as opposed to a word, a number, a flag)?"""
    if not value or _MARKER_RE.fullmatch(value):
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
    return _plausible(match.group("uv") or "", quoted=False)


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


def _header_check(match: re.Match[str]) -> bool:
    value = match.group(1)
    return bool(value) and not _MARKER_RE.fullmatch(value) and any(not c.isalpha() for c in value)


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
    return Pattern(kind, re.compile(pattern, _FLAGS | flags), screen, groups, check, description, not_after)


# Assignments: an identifier (judged by is_sensitive_key), an optional closing quote (JSON keys,
# possibly escaped), a separator, then a quoted value (up to the same quote followed by a
# delimiter) or an unquoted one.
_IDENT = r"(?<![A-Za-z0-9_.\-])(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,80})"
_ASSIGN_VALUE = (
    r"(?:(?P<bs>\\*)(?P<q>[\"'])(?P<qv>[^\r\n]{1,1024}?)(?P=bs)(?P=q)(?![A-Za-z0-9_])"
    r"|(?P<uv>[^\s\"'\\,;&)}\]<>]+))"
)

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
        r"(?i)bearer" + _WS + "+",
        "Bearer credentials (a credential of 8+ characters with a digit or a symbol, so that "
        "'bearer of bad news' stays)",
        groups=(1,),
    ),
    _p(
        "basic_auth",
        r"(?i)\bbasic(?:[ \t]|\\+t)+([A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])",
        r"(?i:basic)" + _WS + r"+[A-Za-z0-9+/][A-Za-z0-9+/]*[A-Z0-9+/=]",
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
        r"://[^\s:/@\"'\\]*:([^\s@/\"'\\]+)@",
        r"://[^\s:/@\"'\\]*:[^\s@/\"'\\]+@",
        "Passwords in URLs (postgres://user:PASSWORD@host, redis://:PASSWORD@host, ...)",
        groups=(1,),
    ),
    _p(
        "connection_string_password",
        r"(?i)(?:^|(?<=[;\"'{(\s]))(?:[ \t]|\\+t)*(?:password|pwd|passwd|accountkey|sharedaccesskey)(?:[ \t]|\\+t)*=(?:[ \t]|\\+t)*"
        r"([^;\"'\r\n\\]+?)(?:[ \t]|\\+t)*(?=;|[\"'\r\n\\]|$)",
        r"(?i)(?:password|pwd|passwd|accountkey|sharedaccesskey)" + _WS + "*=",
        "Passwords and keys in ;-separated connection strings (ADO.NET, ODBC, JDBC, Azure "
        "Storage), spaces included",
        groups=(1,),
        check=_value_check(1),
    ),
    _p(
        "env_secret",
        _IDENT + r"(?:[ \t]|\\+t)*=(?:[ \t]|\\+t)*" + _ASSIGN_VALUE,
        None,
        "KEY=value environment lines whose upper-case name is a secret name (OPENAI_API_KEY=..., "
        "DB_PASSWORD=...)",
        groups=("qv", "uv"),
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
        _IDENT + r"(?:\\*[\"'])?(?:[ \t]|\\+t)*(?::=|=>|=|:)(?:[ \t]|\\+t)*" + _ASSIGN_VALUE,
        None,
        "Assignments in code, JSON, YAML and prose whose name is a secret name "
        '(password = "...", "api_key": "...", token: ...); unquoted values need a digit or a '
        "symbol",
        groups=("qv", "uv"),
        check=_assignment_check,
    ),
    _p(
        "password_phrase",
        r"(?i)\b(?:password|passcode|passphrase|pwd)(?:[ \t]|\\+t)+(?:is|was)(?:[ \t]|\\+t)+[\"']?([^\s\"'\\,;]{4,})",
        r"(?i)(?:password|passcode|passphrase|pwd)" + _WS + r"+(?:is|was)",
        "Passwords given in prose ('my password is ...'); the password needs a digit or a symbol",
        groups=(1,),
        check=_value_check(1),
    ),
)


def kinds() -> tuple[str, ...]:
    """Every kind a pattern can report (key-name redactions report ``key:<name>``)."""
    return tuple(p.kind for p in PATTERNS)


def is_marker(text: str) -> bool:
    return _MARKER_RE.fullmatch(text) is not None


# ---------------------------------------------------------------------------------------------
# Screens: one automaton over all patterns, plus identifiers that resemble secret names
# ---------------------------------------------------------------------------------------------


def _word(word: str) -> str:
    # "_" in a normalized name stands for "_", "-", ".", " " or a camelCase boundary.
    return "".join("[_.\\- ]?" if c == "_" else re.escape(c) for c in word)


def _candidate_regex() -> str:
    """RE2: an identifier that may be a secret name, then an optional (escaped) quote and a
    separator: JSON keys (``"api_key":``), list pairs (``"Authorization",``), assignments
    (``DB_PASSWORD=``, ``token: ``, ``\\"pwd\\":``).

    It accepts every name :func:`is_sensitive_key` accepts (and a few more, such as ``monkey``):
    names ending in a sensitive word, or holding a sensitive substring. The captured run is the
    identifier's last run of ``[A-Za-z0-9_.- ]`` characters, which normalizes to the same last
    segment as the full key, so ``is_sensitive_key(capture)`` is the verdict on the real name.
    Token counts (``prompt_tokens``, ``max_tokens``) end in no sensitive word and never match,
    which keeps the clean path to one scan.
    """
    words = sorted(SENSITIVE_KEYS | {suffix[1:] for suffix in SENSITIVE_SUFFIXES}, key=len, reverse=True)
    ending = "|".join(_word(w) for w in words)
    inside = "|".join(_word(w) for w in SENSITIVE_SUBSTRINGS)
    run = r"[A-Za-z0-9_.\- ]*"
    return rf"(?i)({run}(?:(?:{inside}){run}|(?:{ending})))" + _Q + _WS + r"*[:=,]"


_CANDIDATE = _candidate_regex()
#: The same for Python's ``re`` (the thorough pass, and platforms without google-re2): every run
#: before a separator, taken whole (possessive, from its first character: linear time), judged by
#: is_sensitive_key alone.
_PY_CANDIDATE = r"(?<![A-Za-z0-9_.\- ])([A-Za-z0-9_.\- ]++)" + _Q + _WS + r"*[:=,]"


class _Engine:
    """The compiled screens, for ``str`` and ``bytes`` haystacks."""

    def __init__(self, patterns: tuple[Pattern, ...]) -> None:
        self.screened = [(i, p.screen) for i, p in enumerate(patterns) if p.screen is not None]
        self.identifier_patterns = frozenset(i for i, p in enumerate(patterns) if p.screen is None)
        screens = "|".join(f"(?:{screen})" for _, screen in self.screened)
        # One pass decides the clean case: no screen and no candidate name anywhere.
        everything = f"{screens}|(?:{_CANDIDATE})"
        if _re2 is not None:
            options = _re2.Options()
            options.max_mem = 64 << 20
            self.any_bytes = _re2.compile(everything.encode(), options)
            self.any_str = _re2.compile(everything, options)
            self.screens_bytes = _re2.compile(screens.encode(), options)
            self.candidates_bytes = _re2.compile(_CANDIDATE.encode(), options)
            self.candidates_str = _re2.compile(_CANDIDATE, options)
            self.set_str = _re2.Set.SearchSet(options)
            for _, screen in self.screened:
                self.set_str.Add(screen)
            self.set_str.Compile()
        else:  # pragma: no cover - exercised only without google-re2
            self.py_screens = [(i, re.compile(s)) for i, s in self.screened]
            self.candidates_str = re.compile(_PY_CANDIDATE)
            self.candidates_bytes = re.compile(_PY_CANDIDATE.encode())
        self.py_candidates_str = re.compile(_PY_CANDIDATE)

    def dirty_bytes(self, data: bytes) -> bool:
        if _re2 is not None:
            if self.any_bytes.search(data) is None:
                return False
            if self.screens_bytes.search(data) is not None:
                return True
        else:  # pragma: no cover
            text = data.decode("utf-8", "replace")
            if any(r.search(text) for _, r in self.py_screens):
                return True
        return any(
            is_sensitive_key(m.group(1).decode("utf-8", "replace"))
            for m in self.candidates_bytes.finditer(data)
        )

    def sensitive_identifier(self, text: str) -> bool:
        return any(is_sensitive_key(m.group(1)) for m in self.candidates_str.finditer(text))

    def name_starts(self, text: str, *, thorough: bool = False) -> list[int]:
        """Where the last word of each sensitive name starts (``DB_PASSWORD`` in ``export DB_PASSWORD=``).

        ``thorough``: found with Python's ``re`` rather than RE2 (the sanitize pass trusts no
        screen).
        """
        starts = []
        finder = self.py_candidates_str if thorough else self.candidates_str
        for m in finder.finditer(text):
            run = m.group(1)
            if is_sensitive_key(run):
                stripped = run.rstrip(" ")
                starts.append(m.start(1) + stripped.rfind(" ") + 1)
        return starts

    def hits(self, text: str) -> set[int]:
        """Indices of the patterns worth running on ``text`` (empty: nothing to do)."""
        if _re2 is not None:
            if self.any_str.search(text) is None:
                return set()
            found = {self.screened[j][0] for j in self.set_str.Match(text) or ()}
        else:  # pragma: no cover
            found = {i for i, r in self.py_screens if r.search(text)}
        if self.sensitive_identifier(text):
            found |= self.identifier_patterns
        return found

    def dirty_text(self, text: str) -> bool:
        return bool(self.hits(text))


_engine = _Engine(PATTERNS)
#: No pattern matches fewer characters than this (``://:x@``), so shorter strings are skipped.
_SHORTEST = 6
_ALL = frozenset(range(len(PATTERNS)))


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def _count(counts: dict[str, int] | None, kind: str) -> None:
    if counts is not None:
        counts[kind] = counts.get(kind, 0) + 1


def _replacement(pattern: Pattern, match: re.Match[str], counts: dict[str, int] | None) -> str | None:
    """The text that replaces ``match`` (None: leave it)."""
    span = pattern.secret_span(match)
    if span is None or span[0] == span[1]:
        return None
    # A marker is never redacted again (idempotence), even when a pattern's value class stops
    # short of its closing bracket.
    if match.string.startswith(MARKER_PREFIX, span[0]) or not pattern.accepts(match):
        return None
    _count(counts, pattern.kind)
    start, whole = match.start(), match.group(0)
    return whole[: span[0] - start] + MARKER.format(kind=pattern.kind) + whole[span[1] - start :]


def _apply(pattern: Pattern, text: str, counts: dict[str, int] | None) -> str:
    def sub(match: re.Match[str]) -> str:
        replaced = _replacement(pattern, match, counts)
        return match.group(0) if replaced is None else replaced

    return pattern.regex.sub(sub, text)


def _apply_at(pattern: Pattern, text: str, starts: list[int], counts: dict[str, int] | None) -> str:
    """Like :func:`_apply`, trying the pattern only where a sensitive name starts."""
    out: list[str] = []
    last = 0
    for pos in starts:
        if pos < last:
            continue
        match = pattern.regex.match(text, pos)
        if match is None:
            continue
        replaced = _replacement(pattern, match, counts)
        if replaced is None:
            continue
        out.append(text[last : match.start()])
        out.append(replaced)
        last = match.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _redact_patterns(
    text: str, which: frozenset[int] | set[int], counts: dict[str, int] | None, *, thorough: bool = False
) -> str:
    for index, pattern in enumerate(PATTERNS):
        if index not in which:
            continue
        if pattern.screen is None:
            text = _apply_at(pattern, text, _engine.name_starts(text, thorough=thorough), counts)
        else:
            text = _apply(pattern, text, counts)
    return text


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
        return not value or _MARKER_RE.fullmatch(value) is not None
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
    kind = _key_kind(key)
    _count(counts, "key:" + kind)
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
        if len(text) < _SHORTEST:
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
            which: frozenset[int] | set[int] = _ALL
        else:
            which = _engine.hits(text)
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
        return _redact_patterns(text, which, self.counts, thorough=self.thorough)

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
    if not _engine.dirty_bytes(raw):
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
    if not _engine.dirty_bytes(raw):
        return plain
    return _Walker(counts, False).value(plain, 64)


def may_contain_secrets(data: bytes | str) -> bool:
    """Cheap test: could ``data`` (text or serialized JSON) hold anything :func:`redact` removes?

    False means certainly not; True means the slow path has something to look at.
    """
    if isinstance(data, str):
        return _engine.dirty_text(data)
    return _engine.dirty_bytes(data)


def may_have_sensitive_keys(json_text: str) -> bool:
    """Kept for compatibility: :func:`may_contain_secrets` on serialized JSON."""
    return _engine.dirty_text(json_text)
