"""Settings: one ``AG2_LOGGING`` dict, each key defaulting from the environment.

Every key is one row of ``SETTINGS``: (key, environment variable, parser, default). Values are
resolved lazily and cached until Django's ``setting_changed`` signal fires (or ``conf.reload()``
is called), so ``override_settings`` works and the hot path pays one attribute read. Nothing is
copied at import time and nothing is written into ``django.conf.settings``.

Precedence for every key: ``settings.AG2_LOGGING[KEY]`` > environment variable > default. Three
keys have rules of their own, kept in one function each: ``ENABLED`` and ``LOG_FILE`` (their
deprecated ``AUTOGEN_RUNTIME_*`` variables) and ``JOURNAL_DIR`` (beside the runtime log).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import environ
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

TRUE_VALUES = frozenset({"true", "1", "on", "enabled", "file"})
FALSE_VALUES = frozenset({"false", "0", "off", "disabled", ""})

ENV_ENABLED = "AG2_RUNTIME_LOGGING"
ENV_LOG_FILE = "AG2_RUNTIME_LOG_FILE"
ENV_LOGS_BASE_DIR = "LOGS_BASE_DIR"
LEGACY_ENV_ENABLED = "AUTOGEN_RUNTIME_LOGGING"
LEGACY_ENV_LOG_FILE = "AUTOGEN_RUNTIME_LOG_FILE"

DEFAULT_LOG_FILE = Path("logs") / "logs" / "ag2_runtime.log"
LOG_FILE_NAME = "ag2_runtime.log"
PIPELINE_MODES = ("auto", "inline", "celery")
_VALID_FSYNC = ("session_end", "event", "never")
OTEL_SEMCONVS = ("latest", "core")
LIVE_TRANSPORTS = ("auto", "websocket", "polling")


class ConfigError(ValueError):
    """A setting has a value the app cannot use (reported by the system checks).

    ``expected`` says what would be accepted, for the check's message."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def parse_switch(raw: object) -> bool:
    """Parse an on/off value as the seed system did; raise ConfigError for anything else."""
    if isinstance(raw, bool):
        return raw
    if raw is None:
        return False
    text = str(raw).strip().lower()
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise ConfigError("an on/off value: true, 1, on, enabled, file or false, 0, off, disabled, empty")


# -- parsers: raw value -> value, or ConfigError(expected) -------------------------------------------

Parser = Callable[[Any], Any]


def _switch(raw: Any) -> bool:
    try:
        return parse_switch(raw)
    except ConfigError:
        raise ConfigError("True or False") from None


def _choice(*options: str) -> Parser:
    def parse(raw: Any) -> str:
        if raw not in options:
            raise ConfigError("one of " + ", ".join(sorted(options)))
        return str(raw)

    return parse


def _positive_int(raw: Any) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise ConfigError("a positive integer")
    return raw


def _same(value: Any) -> Any:
    return value


def _number(minimum: float, *, allow_none: bool = False, cast: Callable[[Any], Any] = float) -> Parser:
    def parse(raw: Any) -> Any:
        if raw is None and allow_none:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < minimum:
            raise ConfigError(f"a number >= {minimum:g}" + (" or None" if allow_none else ""))
        return cast(raw)

    return parse


def _name_or_none(what: str) -> Parser:
    def parse(raw: Any) -> str | None:
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise ConfigError(f"{what} or None")
        return raw

    return parse


def _url_map(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ConfigError("a dict of base URL prefix -> provider id")
    return dict(raw)


def _rate(raw: Any) -> Decimal:
    try:
        rate = Decimal(str(raw))
        if not rate.is_finite() or rate < 0:
            raise ArithmeticError
    except (ArithmeticError, ValueError):
        raise ConfigError("a non-negative number (price per million tokens)") from None
    return rate


def _header(raw: Any) -> str:
    if not isinstance(raw, str) or not re.fullmatch(r"[A-Za-z0-9-]+", raw):
        raise ConfigError("an HTTP header name such as X-Enterprise-ID")
    return raw


def _patterns(raw: Any) -> tuple[re.Pattern[str], ...]:
    if not isinstance(raw, list | tuple):
        raise ConfigError("a list of regular expressions")
    compiled = []
    for pattern in raw:
        try:
            compiled.append(re.compile(str(pattern)))
        except re.error as exc:
            raise ConfigError(f"a list of valid regular expressions ({pattern!r}: {exc})") from None
    return tuple(compiled)


def _url_or_none(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not re.match(r"https?://[^/\s]+", raw):
        raise ConfigError("an http(s) URL such as http://localhost:4318, or None")
    return raw.rstrip("/")


def _time_zone(raw: Any) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(str(raw))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("an IANA time zone name such as UTC or Europe/Paris") from None


def _redis_url_or_none(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not re.match(r"(redis|rediss|unix)://", raw):
        raise ConfigError("a Redis URL such as redis://localhost:6379/0, or None")
    import importlib.util

    if importlib.util.find_spec("redis") is None:
        raise ConfigError("a Redis URL with the redis package installed (pip install redis), or None")
    return raw


def _host(raw: Any) -> str:
    if raw is not None and not (isinstance(raw, str) and raw):
        raise ConfigError("a host name or None")
    return raw or socket.gethostname()


class Setting(NamedTuple):
    """One key of ``AG2_LOGGING``: where it comes from and how it is read."""

    key: str
    default: Any
    parse: Parser
    #: Environment variable read (with django-environ) when the key is not in AG2_LOGGING.
    env: str | None = None

    @property
    def attr(self) -> str:
        return self.key.lower()


#: Every key of ``AG2_LOGGING`` but the three with rules of their own (``SPECIAL``). The README
#: documents each one (a test fails when one is missing there).
SETTINGS: tuple[Setting, ...] = (
    # When journals are fsynced: "session_end" (default), "event" or "never".
    Setting("JOURNAL_FSYNC", "session_end", _choice(*_VALID_FSYNC)),
    # Keep prompts and responses in the journal and on LLMCall rows.
    Setting("CAPTURE_BODIES", True, _switch),
    # Longest text kept per body field before truncation (with a marker).
    Setting("MAX_BODY_CHARS", 20_000, _positive_int),
    # Celery queue for the app's tasks (None = Celery's default queue).
    Setting("CELERY_QUEUE", None, _name_or_none("a queue name")),
    # Start the session's pipeline chain when it ends.
    Setting("INGEST_ON_SESSION_END", True, _switch),
    # Base URL prefix -> provider id, for gateways, proxies and local servers.
    Setting("PROVIDER_BASE_URLS", {}, _url_map),
    # Price per million tokens for local models (ollama, base URLs mapped to "local").
    Setting("LOCAL_MODEL_RATE", "0", _rate),
    # Request headers @ag2_logged and the middleware read the ids from.
    Setting("ENTERPRISE_HEADER", "X-Enterprise-ID", _header),
    Setting("CHAT_HEADER", "X-Chat-ID", _header),
    # Regexes of request paths the middleware opens a session for (besides opted-in views).
    Setting("MIDDLEWARE_PATHS", [], _patterns),
    # Runtime log rotation: size in bytes before rotating (0 = never), and rotated files kept.
    Setting("LOG_MAX_BYTES", 10 * 1024 * 1024, _number(0, cast=int)),
    Setting("LOG_BACKUP_COUNT", 5, _number(0, cast=int)),
    # Days to keep raw rows (LLMCall, AgentEvent, ToolCall, finished Sessions); None = forever.
    Setting("RETENTION_DAYS", None, _number(1, allow_none=True, cast=_same)),
    # Days to keep journal files of ingested sessions; None = forever.
    Setting("JOURNAL_RETENTION_DAYS", None, _number(1, allow_none=True, cast=_same)),
    # A STORAGES alias journals are archived to before deletion (None = delete them).
    Setting("JOURNAL_ARCHIVE_STORAGE", None, _name_or_none("a STORAGES alias")),
    # Seconds between heartbeats of a running session, and without one before recovery takes it.
    Setting("HEARTBEAT_SECONDS", 30, _number(1)),
    Setting("RECOVERY_AFTER_SECONDS", 300, _number(1)),
    # Where the post-session chain runs: "auto", "inline" or "celery".
    Setting("PIPELINE", "auto", _choice(*PIPELINE_MODES), env="AG2_LOGGING_PIPELINE"),
    # A STORAGES alias finished journals are published to, for workers on other hosts.
    Setting("JOURNAL_STORAGE", None, _name_or_none("a STORAGES alias"), env="AG2_LOGGING_JOURNAL_STORAGE"),
    # Attempts of one session's chain when its journal cannot be read, before it is marked failed.
    Setting("PIPELINE_MAX_RETRIES", 6, _number(0, cast=int)),
    # Seconds the inline pipeline may take at process exit to finish pending work.
    Setting("PIPELINE_DRAIN_SECONDS", 10, _number(0)),
    # Finished sessions not in the reports after this many seconds are reported (doctor, admin).
    Setting("PIPELINE_PENDING_ALERT_SECONDS", 900, _number(1)),
    # Recover this host's unfinished journals in the background when the first session opens.
    Setting("RECOVER_ON_START", True, _switch),
    # The name of this host on sessions and in recovery (None: socket.gethostname()).
    Setting("HOST_NAME", None, _host),
    # OpenTelemetry export (extra "otel"): each summarized session becomes a trace, plus metrics.
    Setting("OTEL", False, _switch, env="AG2_LOGGING_OTEL"),
    # OTLP/HTTP base URL (http://collector:4318) used when the project set no global providers.
    Setting("OTEL_ENDPOINT", None, _url_or_none, env="AG2_LOGGING_OTEL_ENDPOINT"),
    # GenAI convention names: "latest" (semantic-conventions-genai) or "core" (core semconv <= 1.41).
    Setting("OTEL_SEMCONV", "latest", _choice(*OTEL_SEMCONVS)),
    # Prompts, replies and tool arguments/results on spans (redacted; needs CAPTURE_BODIES too).
    Setting("OTEL_CAPTURE_CONTENT", False, _switch),
    # Seconds one export to the collector may take (connect, send, retries) before it gives up.
    Setting("OTEL_TIMEOUT", 5, _number(0.1)),
    # Unexported sessions sent after each successful export (the backlog), at most this many.
    Setting("OTEL_BACKLOG_BATCH", 20, _number(0, cast=int)),
    # Bearer token accepted by the Prometheus metrics view besides a staff login (None: staff only).
    Setting("PROMETHEUS_TOKEN", None, _name_or_none("a token string"), env="AG2_LOGGING_PROMETHEUS_TOKEN"),
    # The time zone budgets' calendar periods (day, week, month) are read in.
    Setting("BUDGET_TIME_ZONE", "UTC", _time_zone),
    # A Redis URL for the budgets' ledger (None: the database ledger).
    Setting("BUDGET_REDIS_URL", None, _redis_url_or_none, env="AG2_LOGGING_BUDGET_REDIS_URL"),
    # Also mail_admins() when a budget reaches its soft threshold.
    Setting("BUDGET_MAIL_ADMINS", False, _switch),
    # Output tokens a call without max_tokens is reserved for.
    Setting("BUDGET_OUTPUT_TOKENS", 4096, _positive_int),
    # Seconds between a process's writes of its running sessions' live counters, and between the
    # live dashboard's refreshes (0: no live counters).
    Setting("LIVE_SECONDS", 2, _number(0)),
    # How the live dashboard is updated: "auto" (a WebSocket under ASGI with Django Channels,
    # else polling), "websocket" or "polling".
    Setting("LIVE_TRANSPORT", "auto", _choice(*LIVE_TRANSPORTS)),
)

#: Keys resolved by a function of their own: the switch, the runtime log and the journal directory.
SPECIAL: dict[str, Any] = {
    # Master switch. Env: AG2_RUNTIME_LOGGING (legacy: AUTOGEN_RUNTIME_LOGGING).
    "ENABLED": False,
    # Process-wide runtime log. Env: AG2_RUNTIME_LOG_FILE (legacy: AUTOGEN_RUNTIME_LOG_FILE).
    "LOG_FILE": None,
    # Base directory for logs. Env: LOGS_BASE_DIR.
    "LOGS_BASE_DIR": None,
    # Where per-session journals are written; default: <dir of LOG_FILE>/sessions.
    "JOURNAL_DIR": None,
}

#: Every key of ``settings.AG2_LOGGING`` with its default.
DEFAULTS: dict[str, Any] = {**SPECIAL, **{s.key: s.default for s in SETTINGS}}


@dataclass(frozen=True, eq=False)  # no generated comparison: less to compile at start-up
class Resolved:
    """The settings as the app uses them, plus what the checks need to report."""

    enabled: bool
    log_file: Path
    journal_dir: Path
    journal_fsync: str
    capture_bodies: bool
    max_body_chars: int
    celery_queue: str | None
    ingest_on_session_end: bool
    provider_base_urls: dict[str, str]
    local_model_rate: Decimal
    enterprise_header: str
    chat_header: str
    middleware_paths: tuple[re.Pattern[str], ...]
    log_max_bytes: int
    log_backup_count: int
    retention_days: int | None
    journal_retention_days: int | None
    journal_archive_storage: str | None
    heartbeat_seconds: float
    recovery_after_seconds: float
    pipeline: str
    journal_storage: str | None
    pipeline_max_retries: int
    pipeline_drain_seconds: float
    pipeline_pending_alert_seconds: float
    recover_on_start: bool
    host_name: str
    otel: bool
    otel_endpoint: str | None
    otel_semconv: str
    otel_capture_content: bool
    otel_timeout: float
    otel_backlog_batch: int
    prometheus_token: str | None
    budget_time_zone: Any
    budget_redis_url: str | None
    budget_mail_admins: bool
    budget_output_tokens: int
    live_seconds: float
    live_transport: str
    # Diagnostics for checks.py: (id, message, hint) tuples.
    errors: tuple[tuple[str, str, str], ...] = ()
    warnings: tuple[tuple[str, str, str], ...] = ()
    unknown_keys: tuple[str, ...] = field(default=())
    #: Where ``enabled`` was read, for people (the doctor): ``AG2_RUNTIME_LOGGING='true'``,
    #: ``AG2_LOGGING['ENABLED']=True``, or ``AG2_RUNTIME_LOGGING is not set; the default is off``.
    enabled_source: str = ""


Diagnostics = list[tuple[str, str, str]]


def _base_dir() -> Path:
    base = getattr(settings, "BASE_DIR", None)
    return Path(base) if base else Path.cwd()


def _legacy(new: str, old: str, ids: tuple[str, str], warnings: Diagnostics, hint: str) -> None:
    """Warn about a deprecated variable: ignored (``ids[1]``) or to rename (``ids[0]``)."""
    if os.environ.get(old) is None:
        return
    if os.environ.get(new) is not None:
        message = f"{old} is deprecated and ignored because {new} is also set."
        warnings.append((ids[1], message, f"Remove {old} from the environment; {new} wins."))
    else:
        warnings.append((ids[0], f"{old} is deprecated.", f"Rename it to {new}{hint}."))


def _resolve_enabled(user: dict[str, Any], errors: Diagnostics, warnings: Diagnostics) -> tuple[bool, str]:
    """ENABLED: settings > AG2_RUNTIME_LOGGING > AUTOGEN_RUNTIME_LOGGING (deprecated); and where it
    was read (``Resolved.enabled_source``)."""
    _legacy(
        ENV_ENABLED,
        LEGACY_ENV_ENABLED,
        ("W001", "W003"),
        warnings,
        " (same values: true/1/on/enabled/file or false/0/off)",
    )
    new_raw, old_raw = os.environ.get(ENV_ENABLED), os.environ.get(LEGACY_ENV_ENABLED)
    if "ENABLED" in user:
        raw, source = user["ENABLED"], "AG2_LOGGING['ENABLED']"
    elif new_raw is not None:
        raw, source = new_raw, ENV_ENABLED
    elif old_raw is not None:
        raw, source = old_raw, LEGACY_ENV_ENABLED
    else:
        raw, source = DEFAULTS["ENABLED"], "default"
    said = f"{ENV_ENABLED} is not set; the default is off" if source == "default" else f"{source}={raw!r}"
    try:
        return parse_switch(raw), said
    except ConfigError:
        errors.append(
            (
                "E001",
                f"{source}={raw!r} is not a valid on/off value; AG2 logging stays off.",
                "Use one of true, 1, on, enabled, file (on) or false, 0, off, disabled, empty (off).",
            )
        )
        return False, said


def _resolve_log_file(user: dict[str, Any], warnings: Diagnostics) -> Path:
    """LOG_FILE: settings > AG2_RUNTIME_LOG_FILE > AUTOGEN_RUNTIME_LOG_FILE > LOGS_BASE_DIR > default."""
    _legacy(ENV_LOG_FILE, LEGACY_ENV_LOG_FILE, ("W002", "W004"), warnings, "")
    logs_base = user.get("LOGS_BASE_DIR") or environ.Env().str(ENV_LOGS_BASE_DIR, default="") or None
    raw = user.get("LOG_FILE") or os.environ.get(ENV_LOG_FILE) or os.environ.get(LEGACY_ENV_LOG_FILE) or None
    if raw:
        log_file = Path(str(raw))
    elif logs_base:
        log_file = Path(str(logs_base)) / LOG_FILE_NAME
    else:
        log_file = DEFAULT_LOG_FILE
    return log_file if log_file.is_absolute() else _base_dir() / log_file


def _resolve_journal_dir(user: dict[str, Any], log_file: Path) -> Path:
    raw = user.get("JOURNAL_DIR")
    journal_dir = Path(str(raw)) if raw else log_file.parent / "sessions"
    return journal_dir if journal_dir.is_absolute() else _base_dir() / journal_dir


def _resolve_table(user: dict[str, Any], errors: Diagnostics) -> dict[str, Any]:
    """Every row of ``SETTINGS``; a bad value is check E005 and its default is used."""
    env = environ.Env()
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.key in user:
            raw = user[setting.key]
        elif setting.env and env.str(setting.env, default=""):
            raw = env.str(setting.env)
        else:
            raw = setting.default
        try:
            values[setting.attr] = setting.parse(raw)
        except ConfigError as exc:
            errors.append(
                (
                    "E005",
                    f"AG2_LOGGING[{setting.key!r}]={raw!r} is invalid: expected {exc.expected}.",
                    f"Fix AG2_LOGGING[{setting.key!r}] or remove it to use the default ({setting.default!r}).",
                )
            )
            values[setting.attr] = setting.parse(setting.default)
    return values


def _user_settings(errors: Diagnostics) -> dict[str, Any]:
    user: Any = getattr(settings, "AG2_LOGGING", {}) or {}
    if isinstance(user, dict):
        return user
    errors.append(
        (
            "E002",
            f"AG2_LOGGING must be a dict, not {type(user).__name__}.",
            "Set AG2_LOGGING = {'ENABLED': True, ...} in your settings, or remove it.",
        )
    )
    return {}


#: Check E004's hints, also given when recording finds the directory unwritable (a script runs
#: no checks).
LOG_DIR_HINT = (
    "Make the directory writable by the user running Django, or point AG2_RUNTIME_LOG_FILE "
    "(or LOGS_BASE_DIR) elsewhere."
)
JOURNAL_DIR_HINT = (
    "Make the directory writable by the user running Django, or point AG2_LOGGING['JOURNAL_DIR'] "
    "elsewhere (unset, it is the runtime log's directory + /sessions: AG2_RUNTIME_LOG_FILE, "
    "LOGS_BASE_DIR)."
)


def _unknown_keys(user: dict[str, Any], errors: Diagnostics) -> tuple[str, ...]:
    """Keys of AG2_LOGGING that no setting has (check E003, with the closest names as the hint)."""
    unknown = tuple(sorted(str(key) for key in user if key not in DEFAULTS))
    if unknown:
        close = {key: difflib.get_close_matches(key.upper(), DEFAULTS, n=1, cutoff=0.6) for key in unknown}
        guesses = [
            f"{found[0]} for {key}" if len(unknown) > 1 else found[0] for key, found in close.items() if found
        ]
        errors.append(
            (
                "E003",
                f"AG2_LOGGING has unknown key(s): {', '.join(unknown)}; they are ignored.",
                (f"Did you mean {', '.join(guesses)}? " if guesses else "")
                + "Keys are upper-case; every key is listed under Settings in the README.",
            )
        )
    return unknown


def _resolve() -> Resolved:
    errors: Diagnostics = []
    warnings: Diagnostics = []
    user = _user_settings(errors)
    enabled, enabled_source = _resolve_enabled(user, errors, warnings)
    log_file = _resolve_log_file(user, warnings)
    unknown_keys = _unknown_keys(user, errors)
    return Resolved(
        enabled=enabled,
        log_file=log_file,
        journal_dir=_resolve_journal_dir(user, log_file),
        **_resolve_table(user, errors),
        errors=tuple(errors),
        warnings=tuple(warnings),
        unknown_keys=unknown_keys,
        enabled_source=enabled_source,
    )


logger = logging.getLogger("ag2_logging.conf")
#: Configuration errors already logged by this process (each is logged once).
_logged: set[str] = set()


def _log_errors(resolved: Resolved) -> None:
    """A script or a shell never runs the system checks: a bad setting (which leaves logging off
    or a default in force) is logged once per process, with the check's id and hint."""
    for check_id, message, hint in resolved.errors:
        if message not in _logged:
            _logged.add(message)
            logger.error("ag2_logging.%s %s %s", check_id, message, hint)


def reported_by_checks(resolved: Resolved) -> None:
    """The system checks show ``resolved``'s errors: this process does not log them again."""
    _logged.update(message for _check_id, message, _hint in resolved.errors)


class _Conf:
    """Lazy view of the resolved settings: ``conf.enabled``, ``conf.log_file``...

    Errors among the settings are logged (once) at the first read through ``resolved`` after
    start-up, unless the system checks have shown them first: ``quietly()`` reads without that,
    for the app's start-up, which runs before the checks of ``manage.py check`` or ``runserver``.
    """

    _cache: Resolved | None = None

    @property
    def resolved(self) -> Resolved:
        cached = self.quietly()
        if cached.errors:
            _log_errors(cached)
        return cached

    def quietly(self) -> Resolved:
        """The resolved settings, without logging their errors."""
        cached = self._cache
        if cached is None:
            cached = self._cache = _resolve()
        return cached

    def reload(self, *, quiet: bool = False) -> Resolved:
        """Forget the cached values (after changing the environment at run time, for example)."""
        self._cache = None
        return self.quietly() if quiet else self.resolved

    @property
    def enabled(self) -> bool:
        return self.resolved.enabled

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolved, name)


conf = _Conf()


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting in {"AG2_LOGGING", "BASE_DIR"}:
        conf._cache = None
