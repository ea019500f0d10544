"""Settings: one ``AG2_LOGGING`` dict, each key defaulting from the environment.

Values are resolved lazily and cached until Django's ``setting_changed`` signal fires (or
``conf.reload()`` is called), so ``override_settings`` works and the hot path pays one attribute
read. Nothing is copied at import time and nothing is written into ``django.conf.settings``.

Precedence for every key: ``settings.AG2_LOGGING[KEY]`` > environment variable > default.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

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

#: Every key of ``settings.AG2_LOGGING`` with its default. The README documents each one (a test
#: fails when one is missing there).
DEFAULTS: dict[str, Any] = {
    # Master switch. Env: AG2_RUNTIME_LOGGING (legacy: AUTOGEN_RUNTIME_LOGGING).
    "ENABLED": False,
    # Process-wide runtime log (one line per session start/stop). Env: AG2_RUNTIME_LOG_FILE.
    "LOG_FILE": None,
    # Base directory for logs. Env: LOGS_BASE_DIR.
    "LOGS_BASE_DIR": None,
    # Where per-session journals are written; default: <dir of LOG_FILE>/sessions.
    "JOURNAL_DIR": None,
    # When journals are fsynced: "session_end" (default), "event" or "never".
    "JOURNAL_FSYNC": "session_end",
    # Keep prompts and responses in the journal and on LLMCall rows.
    "CAPTURE_BODIES": True,
    # Longest text kept per body field before truncation (with a marker).
    "MAX_BODY_CHARS": 20_000,
    # Celery queue for the app's tasks (None = Celery's default queue).
    "CELERY_QUEUE": None,
    # Enqueue ingest of the journal when a session ends.
    "INGEST_ON_SESSION_END": True,
    # Base URL prefix -> provider id, for gateways, proxies and local servers.
    "PROVIDER_BASE_URLS": {},
    # Price per million tokens for local models (ollama, base URLs mapped to "local").
    "LOCAL_MODEL_RATE": "0",
    # Request headers @ag2_logged and the middleware read the ids from.
    "ENTERPRISE_HEADER": "X-Enterprise-ID",
    "CHAT_HEADER": "X-Chat-ID",
    # Regexes of request paths the middleware opens a session for (besides opted-in views).
    "MIDDLEWARE_PATHS": [],
    # Runtime log rotation: size in bytes before rotating (0 = never), and rotated files kept.
    "LOG_MAX_BYTES": 10 * 1024 * 1024,
    "LOG_BACKUP_COUNT": 5,
    # Days to keep raw rows (LLMCall, AgentEvent, ToolCall, finished Sessions); None = forever.
    "RETENTION_DAYS": None,
    # Days to keep journal files of ingested sessions; None = forever.
    "JOURNAL_RETENTION_DAYS": None,
    # A STORAGES alias journals are archived to before deletion (None = delete them).
    "JOURNAL_ARCHIVE_STORAGE": None,
    # Seconds between heartbeats of a running session, and without one before recovery takes it.
    "HEARTBEAT_SECONDS": 30,
    "RECOVERY_AFTER_SECONDS": 300,
    # Where the post-session chain (sanitize -> ingest -> summarize) runs: "auto", "inline" (the
    # writing process's own background thread) or "celery" (CELERY_QUEUE). Env: AG2_LOGGING_PIPELINE.
    "PIPELINE": "auto",
    # A STORAGES alias finished journals are published to, so workers on other hosts can ingest
    # them (None = journals stay on the writer's disk). Env: AG2_LOGGING_JOURNAL_STORAGE.
    "JOURNAL_STORAGE": None,
    # Attempts of one session's chain when its journal cannot be read, before it is marked failed.
    "PIPELINE_MAX_RETRIES": 6,
    # Seconds the inline pipeline may take at process exit to finish pending work.
    "PIPELINE_DRAIN_SECONDS": 10,
    # Finished sessions not in the reports after this many seconds are reported (doctor, admin).
    "PIPELINE_PENDING_ALERT_SECONDS": 900,
    # Recover this host's unfinished journals in the background when the first session opens.
    "RECOVER_ON_START": True,
    # The name of this host on sessions and in recovery (default: socket.gethostname()).
    "HOST_NAME": None,
}

PIPELINE_MODES = ("auto", "inline", "celery")

_VALID_FSYNC = frozenset({"session_end", "event", "never"})


class ConfigError(ValueError):
    """A setting has a value the app cannot use (reported by the system checks)."""


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
    raise ConfigError(f"{raw!r} is not an on/off value")


@dataclass(frozen=True)
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
    # Diagnostics for checks.py: (id, message, hint) tuples.
    errors: tuple[tuple[str, str, str], ...] = ()
    warnings: tuple[tuple[str, str, str], ...] = ()
    unknown_keys: tuple[str, ...] = field(default=())


def _env() -> environ.Env:
    return environ.Env()


def _base_dir() -> Path:
    base = getattr(settings, "BASE_DIR", None)
    return Path(base) if base else Path.cwd()


def _resolve() -> Resolved:
    env = _env()
    user: Any = getattr(settings, "AG2_LOGGING", {}) or {}
    errors: list[tuple[str, str, str]] = []
    warnings: list[tuple[str, str, str]] = []
    if not isinstance(user, dict):
        errors.append(
            (
                "E002",
                f"AG2_LOGGING must be a dict, not {type(user).__name__}.",
                "Set AG2_LOGGING = {'ENABLED': True, ...} in your settings, or remove it.",
            )
        )
        user = {}
    unknown = tuple(sorted(k for k in user if k not in DEFAULTS))

    # ENABLED: settings > AG2_RUNTIME_LOGGING > AUTOGEN_RUNTIME_LOGGING (deprecated).
    new_raw = os.environ.get(ENV_ENABLED)
    old_raw = os.environ.get(LEGACY_ENV_ENABLED)
    if old_raw is not None:
        if new_raw is not None:
            warnings.append(
                (
                    "W003",
                    f"{LEGACY_ENV_ENABLED} is deprecated and ignored because {ENV_ENABLED} is also set.",
                    f"Remove {LEGACY_ENV_ENABLED} from the environment; {ENV_ENABLED} wins.",
                )
            )
        else:
            warnings.append(
                (
                    "W001",
                    f"{LEGACY_ENV_ENABLED} is deprecated.",
                    f"Rename it to {ENV_ENABLED} (same values: true/1/on/enabled/file or false/0/off).",
                )
            )
    if "ENABLED" in user:
        raw_enabled: object = user["ENABLED"]
        source = "AG2_LOGGING['ENABLED']"
    elif new_raw is not None:
        raw_enabled, source = new_raw, ENV_ENABLED
    elif old_raw is not None:
        raw_enabled, source = old_raw, LEGACY_ENV_ENABLED
    else:
        raw_enabled, source = DEFAULTS["ENABLED"], "default"
    try:
        enabled = parse_switch(raw_enabled)
    except ConfigError:
        enabled = False
        errors.append(
            (
                "E001",
                f"{source}={raw_enabled!r} is not a valid on/off value; AG2 logging stays off.",
                "Use one of true, 1, on, enabled, file (on) or false, 0, off, disabled, empty (off).",
            )
        )

    # LOG_FILE: settings > AG2_RUNTIME_LOG_FILE > AUTOGEN_RUNTIME_LOG_FILE > LOGS_BASE_DIR > default.
    new_file = os.environ.get(ENV_LOG_FILE) or None
    old_file = os.environ.get(LEGACY_ENV_LOG_FILE) or None
    if old_file is not None:
        if new_file is not None:
            warnings.append(
                (
                    "W004",
                    f"{LEGACY_ENV_LOG_FILE} is deprecated and ignored because {ENV_LOG_FILE} is also set.",
                    f"Remove {LEGACY_ENV_LOG_FILE} from the environment; {ENV_LOG_FILE} wins.",
                )
            )
        else:
            warnings.append(
                (
                    "W002",
                    f"{LEGACY_ENV_LOG_FILE} is deprecated.",
                    f"Rename it to {ENV_LOG_FILE}.",
                )
            )
    logs_base = user.get("LOGS_BASE_DIR") or env.str(ENV_LOGS_BASE_DIR, default="") or None
    log_file_raw = user.get("LOG_FILE") or new_file or old_file
    if log_file_raw:
        log_file = Path(str(log_file_raw))
    elif logs_base:
        log_file = Path(str(logs_base)) / LOG_FILE_NAME
    else:
        log_file = DEFAULT_LOG_FILE
    if not log_file.is_absolute():
        log_file = _base_dir() / log_file

    journal_raw = user.get("JOURNAL_DIR")
    journal_dir = Path(str(journal_raw)) if journal_raw else log_file.parent / "sessions"
    if not journal_dir.is_absolute():
        journal_dir = _base_dir() / journal_dir

    def bad(key: str, value: object, expected: str) -> None:
        errors.append(
            (
                "E005",
                f"AG2_LOGGING[{key!r}]={value!r} is invalid: expected {expected}.",
                f"Fix AG2_LOGGING[{key!r}] or remove it to use the default ({DEFAULTS[key]!r}).",
            )
        )

    fsync = user.get("JOURNAL_FSYNC", DEFAULTS["JOURNAL_FSYNC"])
    if fsync not in _VALID_FSYNC:
        bad("JOURNAL_FSYNC", fsync, "one of " + ", ".join(sorted(_VALID_FSYNC)))
        fsync = DEFAULTS["JOURNAL_FSYNC"]

    capture: object = user.get("CAPTURE_BODIES", DEFAULTS["CAPTURE_BODIES"])
    try:
        capture_bodies = parse_switch(capture)
    except ConfigError:
        bad("CAPTURE_BODIES", capture, "True or False")
        capture_bodies = DEFAULTS["CAPTURE_BODIES"]

    max_chars = user.get("MAX_BODY_CHARS", DEFAULTS["MAX_BODY_CHARS"])
    if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1:
        bad("MAX_BODY_CHARS", max_chars, "a positive integer")
        max_chars = DEFAULTS["MAX_BODY_CHARS"]

    queue = user.get("CELERY_QUEUE", DEFAULTS["CELERY_QUEUE"])
    if queue is not None and not (isinstance(queue, str) and queue):
        bad("CELERY_QUEUE", queue, "a queue name or None")
        queue = None

    ingest: object = user.get("INGEST_ON_SESSION_END", DEFAULTS["INGEST_ON_SESSION_END"])
    try:
        ingest_on_end = parse_switch(ingest)
    except ConfigError:
        bad("INGEST_ON_SESSION_END", ingest, "True or False")
        ingest_on_end = True

    urls = user.get("PROVIDER_BASE_URLS", DEFAULTS["PROVIDER_BASE_URLS"])
    if not isinstance(urls, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in urls.items()
    ):
        bad("PROVIDER_BASE_URLS", urls, "a dict of base URL prefix -> provider id")
        urls = {}

    rate_raw = user.get("LOCAL_MODEL_RATE", DEFAULTS["LOCAL_MODEL_RATE"])
    try:
        rate = Decimal(str(rate_raw))
        if not rate.is_finite() or rate < 0:
            raise ArithmeticError
    except (ArithmeticError, ValueError):
        bad("LOCAL_MODEL_RATE", rate_raw, "a non-negative number (price per million tokens)")
        rate = Decimal(0)

    headers: dict[str, str] = {}
    for key in ("ENTERPRISE_HEADER", "CHAT_HEADER"):
        value = user.get(key, DEFAULTS[key])
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9-]+", value):
            bad(key, value, "an HTTP header name such as X-Enterprise-ID")
            value = DEFAULTS[key]
        headers[key] = value

    paths_raw = user.get("MIDDLEWARE_PATHS", DEFAULTS["MIDDLEWARE_PATHS"])
    paths: list[re.Pattern[str]] = []
    if not isinstance(paths_raw, list | tuple):
        bad("MIDDLEWARE_PATHS", paths_raw, "a list of regular expressions")
    else:
        for pattern in paths_raw:
            try:
                paths.append(re.compile(str(pattern)))
            except re.error as exc:
                bad("MIDDLEWARE_PATHS", pattern, f"a valid regular expression ({exc})")

    def number(key: str, *, allow_none: bool = False, minimum: float = 0) -> Any:
        value = user.get(key, DEFAULTS[key])
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            expected = f"a number >= {minimum}" + (" or None" if allow_none else "")
            bad(key, value, expected)
            return DEFAULTS[key]
        return value

    archive = user.get("JOURNAL_ARCHIVE_STORAGE", DEFAULTS["JOURNAL_ARCHIVE_STORAGE"])
    if archive is not None and not (isinstance(archive, str) and archive):
        bad("JOURNAL_ARCHIVE_STORAGE", archive, "a STORAGES alias or None")
        archive = None

    pipeline = user.get("PIPELINE", env.str("AG2_LOGGING_PIPELINE", default="") or DEFAULTS["PIPELINE"])
    if pipeline not in PIPELINE_MODES:
        bad("PIPELINE", pipeline, "one of " + ", ".join(PIPELINE_MODES))
        pipeline = DEFAULTS["PIPELINE"]
    storage = user.get(
        "JOURNAL_STORAGE", env.str("AG2_LOGGING_JOURNAL_STORAGE", default="") or DEFAULTS["JOURNAL_STORAGE"]
    )
    if storage is not None and not (isinstance(storage, str) and storage):
        bad("JOURNAL_STORAGE", storage, "a STORAGES alias or None")
        storage = None
    recover_raw: object = user.get("RECOVER_ON_START", DEFAULTS["RECOVER_ON_START"])
    try:
        recover_on_start = parse_switch(recover_raw)
    except ConfigError:
        bad("RECOVER_ON_START", recover_raw, "True or False")
        recover_on_start = True
    host_name = user.get("HOST_NAME") or socket.gethostname()

    return Resolved(
        enabled=enabled,
        log_file=log_file,
        journal_dir=journal_dir,
        journal_fsync=str(fsync),
        capture_bodies=capture_bodies,
        max_body_chars=int(max_chars),
        celery_queue=queue,
        ingest_on_session_end=ingest_on_end,
        provider_base_urls=dict(urls),
        local_model_rate=rate,
        enterprise_header=headers["ENTERPRISE_HEADER"],
        chat_header=headers["CHAT_HEADER"],
        middleware_paths=tuple(paths),
        log_max_bytes=int(number("LOG_MAX_BYTES")),
        log_backup_count=int(number("LOG_BACKUP_COUNT")),
        retention_days=number("RETENTION_DAYS", allow_none=True, minimum=1),
        journal_retention_days=number("JOURNAL_RETENTION_DAYS", allow_none=True, minimum=1),
        journal_archive_storage=archive,
        heartbeat_seconds=float(number("HEARTBEAT_SECONDS", minimum=1)),
        recovery_after_seconds=float(number("RECOVERY_AFTER_SECONDS", minimum=1)),
        pipeline=str(pipeline),
        journal_storage=storage,
        pipeline_max_retries=int(number("PIPELINE_MAX_RETRIES", minimum=0)),
        pipeline_drain_seconds=float(number("PIPELINE_DRAIN_SECONDS", minimum=0)),
        pipeline_pending_alert_seconds=float(number("PIPELINE_PENDING_ALERT_SECONDS", minimum=1)),
        recover_on_start=recover_on_start,
        host_name=str(host_name),
        errors=tuple(errors),
        warnings=tuple(warnings),
        unknown_keys=unknown,
    )


class _Conf:
    """Lazy view of the resolved settings: ``conf.enabled``, ``conf.log_file``..."""

    _cache: Resolved | None = None

    @property
    def resolved(self) -> Resolved:
        cached = self._cache
        if cached is None:
            cached = self._cache = _resolve()
        return cached

    def reload(self) -> Resolved:
        """Forget the cached values (after changing the environment at run time, for example)."""
        self._cache = None
        return self.resolved

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
