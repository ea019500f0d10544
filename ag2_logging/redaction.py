"""Scrub secrets from what AG2 hands the app, before anything is written.

Two passes, both pure functions:

* by key name, at any depth (``api_key``, ``password``, anything ending in ``_token``...):
  :func:`redact_keys` on JSON-like structures;
* by pattern inside strings (provider keys, cloud credentials, JWTs, ``Authorization`` headers,
  passwords in URLs, PEM blocks, ``KEY=value`` lines): :func:`redact_text`.

Speed matters because this runs on every LLM call: each pattern has cheap literal "anchors"
(substrings every match must contain); a text is searched with the regex only when one of the
anchors is present, so clean text costs a handful of C-level substring searches.

A redacted value becomes ``[REDACTED:<kind>]``: it says what was removed and keeps no part of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MARKER = "[REDACTED:{kind}]"

#: Key names whose values are always removed (compared lower-cased, ``-`` read as ``_``).
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
        "authorization",
        "proxy_authorization",
        "cookie",
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
        "bearer",
    }
)
SENSITIVE_SUFFIXES: tuple[str, ...] = ("_key", "_token", "_secret", "_password", "_passwd", "_credentials")
#: Keys that end like a secret but are not one.
NOT_SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "max_tokens",
        "total_tokens",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "sort_key",
        "cache_key",
        "primary_key",
        "foreign_key",
        "partition_key",
        "idempotency_key",
        "max_completion_tokens",
        "num_tokens",
        "input_tokens",
        "output_tokens",
        "thinking_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cache_write_tokens",
        "stop_token",
        "public_key",
    }
)


def is_sensitive_key(key: str) -> bool:
    k = key.lower().replace("-", "_")
    if k in NOT_SENSITIVE_KEYS:
        return False
    return k in SENSITIVE_KEYS or k.endswith(SENSITIVE_SUFFIXES)


@dataclass(frozen=True)
class Pattern:
    kind: str
    regex: re.Pattern[str]
    #: Substrings (lower-case when ``fold`` is set) of which every match contains at least one.
    anchors: tuple[str, ...]
    fold: bool = False
    #: Regex group holding the secret; 0 = the whole match.
    group: int = 0


def _p(kind: str, pattern: str, anchors: Iterable[str], *, fold: bool = False, group: int = 0) -> Pattern:
    flags = re.IGNORECASE if fold else 0
    return Pattern(kind, re.compile(pattern, flags), tuple(anchors), fold, group)


# Secret characters never include a quote or backslash, so replacing a match inside JSON text
# keeps the JSON valid.
_TAIL = r"[A-Za-z0-9_\-]"

#: The pattern table: one documented place (README, "Redaction").
PATTERNS: tuple[Pattern, ...] = (
    _p(
        "pem_private_key",
        r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|$)",
        ["PRIVATE KEY-----"],
    ),
    _p("anthropic_key", rf"\bsk-ant-(?:api|admin)\d\d-{_TAIL}{{20,}}", ["sk-ant-"]),
    _p("openai_key", rf"\bsk-(?:proj-|svcacct-|admin-|None-)?{_TAIL}{{20,}}", ["sk-"]),
    _p("openrouter_key", r"\bsk-or-v1-[a-f0-9]{32,}", ["sk-or-"]),
    _p("groq_key", rf"\bgsk_{_TAIL}{{20,}}", ["gsk_"]),
    _p("xai_key", rf"\bxai-{_TAIL}{{20,}}", ["xai-"]),
    _p("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}", ["hf_"]),
    _p("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}", ["AIza"]),
    _p("aws_access_key_id", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b", ["AKIA", "ASIA", "ABIA", "ACCA"]),
    _p(
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
    ),
    _p("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}", ["glpat-"]),
    _p(
        "slack_token",
        r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
        ["xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"],
    ),
    _p("slack_webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+", ["hooks.slack.com"]),
    _p("stripe_key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", ["_live_", "_test_"]),
    _p("npm_token", r"\bnpm_[A-Za-z0-9]{36}", ["npm_"]),
    _p("pypi_token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}", ["pypi-"]),
    _p("sendgrid_key", r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}", ["SG."]),
    _p("twilio_key", r"\bSK[0-9a-fA-F]{32}\b", ["SK"]),
    _p("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", ["eyJ"]),
    # Authorization header values; the credential must contain a digit or base64 padding/symbols so
    # prose such as "basic understanding" is left alone.
    _p(
        "authorization_header",
        r"\b(bearer|basic)\s+((?=[A-Za-z0-9._~+/\-]*[0-9+/=])[A-Za-z0-9._~+/\-]{8,}=*)",
        ["bearer", "basic"],
        fold=True,
        group=2,
    ),
    _p("url_password", r"\b[a-z][a-z0-9+.\-]*://[^\s:/@\"\\]+:([^\s@/\"\\]+)@", ["://"], fold=True, group=1),
    # KEY=value environment lines (upper-case names, as environments write them).
    _p(
        "env_secret",
        r"\b[A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|PWD|CREDENTIALS)[A-Z0-9_]*\s*[=:]\s*"
        r"[\"']?([^\s\"'\\]{6,})",
        ["KEY", "TOKEN", "SECRET", "PASSW", "PWD", "CREDENTIAL"],
        group=1,
    ),
    # password=... in query strings and connection strings (no spaces around '=').
    _p(
        "query_secret",
        r"\b(?:password|passwd|pwd|api_key|apikey|access_token|secret|client_secret)=([^\s&;\"'\\]{4,})",
        ["password=", "passwd=", "pwd=", "api_key=", "apikey=", "access_token=", "secret="],
        fold=True,
        group=1,
    ),
)


def _anchored(text: str, patterns: tuple[Pattern, ...]) -> list[Pattern]:
    lowered: str | None = None
    hits: list[Pattern] = []
    for pattern in patterns:
        if pattern.fold:
            if lowered is None:
                lowered = text.lower()
            haystack = lowered
        else:
            haystack = text
        for anchor in pattern.anchors:
            if anchor in haystack:
                hits.append(pattern)
                break
    return hits


def redact_text(text: str, counts: dict[str, int] | None = None) -> str:
    """Replace every secret found in ``text`` with a marker; ``counts`` gets +1 per kind removed."""
    for pattern in _anchored(text, PATTERNS):
        marker = MARKER.format(kind=pattern.kind)
        group = pattern.group

        def _sub(
            match: re.Match[str], marker: str = marker, group: int = group, kind: str = pattern.kind
        ) -> str:
            secret = match.group(group)
            if not secret or secret.startswith("[REDACTED:"):
                return match.group(0)
            if counts is not None:
                counts[kind] = counts.get(kind, 0) + 1
            if group == 0:
                return marker
            start, end = match.span(group)
            whole_start = match.start(0)
            whole = match.group(0)
            return whole[: start - whole_start] + marker + whole[end - whole_start :]

        text = pattern.regex.sub(_sub, text)
    return text


def redact_keys(value: Any, counts: dict[str, int] | None = None, *, depth: int = 64) -> Any:
    """Return a copy of a JSON-like structure with sensitive keys' values and secrets in strings replaced."""
    if isinstance(value, str):
        return redact_text(value, counts)
    if depth <= 0:
        return "[TRUNCATED:depth]"
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and is_sensitive_key(key) and item not in (None, "", [], {}):
                if counts is not None:
                    counts["key:" + key.lower()] = counts.get("key:" + key.lower(), 0) + 1
                out[key] = MARKER.format(kind=key.lower())
            else:
                out[key] = redact_keys(item, counts, depth=depth - 1)
        return out
    if isinstance(value, list | tuple):
        return [redact_keys(item, counts, depth=depth - 1) for item in value]
    return value


_KEY_HINTS = ("key", "token", "secret", "passw", "pwd", "authoriz", "cookie", "credential", "bearer")


def may_have_sensitive_keys(json_text: str) -> bool:
    """Cheap test on serialized JSON: could any object key be sensitive?"""
    lowered = json_text.lower()
    return any(hint in lowered for hint in _KEY_HINTS)


def redact(value: Any, counts: dict[str, int] | None = None) -> Any:
    """Redact a JSON-like value (structure or string): the public one-call entry point."""
    return redact_keys(value, counts)
