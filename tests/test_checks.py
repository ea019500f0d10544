"""Settings resolution and the system checks: one test per check id."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from ag2_logging.checks import check_pipeline_broker, check_pipeline_mode, check_settings
from ag2_logging.conf import DEFAULTS, conf, parse_switch
from tests.support import read_only_dir

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, settings: Any) -> pytest.MonkeyPatch:
    """A clean environment and settings that leave every key to the environment."""
    for name in (
        "AG2_RUNTIME_LOGGING",
        "AG2_RUNTIME_LOG_FILE",
        "AUTOGEN_RUNTIME_LOGGING",
        "AUTOGEN_RUNTIME_LOG_FILE",
        "LOGS_BASE_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    settings.AG2_LOGGING = {}
    conf.reload()
    return monkeypatch


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


@pytest.mark.parametrize("value", ["true", "1", "on", "enabled", "file", " TRUE ", "On", "FILE"])
def test_switch_on_values(value: str) -> None:
    assert parse_switch(value) is True


@pytest.mark.parametrize("value", ["false", "0", "off", "disabled", "", "  ", "OFF", "Disabled"])
def test_switch_off_values(value: str) -> None:
    assert parse_switch(value) is False


def test_enabled_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("AG2_RUNTIME_LOGGING", "enabled")
    assert conf.reload().enabled is True
    env.setenv("AG2_RUNTIME_LOGGING", "off")
    assert conf.reload().enabled is False


def test_settings_dict_overrides_the_environment(env: pytest.MonkeyPatch, settings: Any) -> None:
    env.setenv("AG2_RUNTIME_LOGGING", "true")
    settings.AG2_LOGGING = {"ENABLED": False}
    assert conf.reload().enabled is False


def test_default_log_file_is_under_base_dir(env: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> None:
    settings.BASE_DIR = tmp_path
    resolved = conf.reload()
    assert resolved.log_file == tmp_path / "logs" / "logs" / "ag2_runtime.log"
    assert resolved.journal_dir == tmp_path / "logs" / "logs" / "sessions"


def test_logs_base_dir(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("LOGS_BASE_DIR", str(tmp_path / "app-logs"))
    assert conf.reload().log_file == tmp_path / "app-logs" / "ag2_runtime.log"


def test_log_file_from_the_environment_wins_over_logs_base_dir(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("LOGS_BASE_DIR", str(tmp_path / "base"))
    env.setenv("AG2_RUNTIME_LOG_FILE", str(tmp_path / "x" / "rt.log"))
    assert conf.reload().log_file == tmp_path / "x" / "rt.log"


def test_E001_invalid_switch_value(env: pytest.MonkeyPatch) -> None:
    env.setenv("AG2_RUNTIME_LOGGING", "maybe")
    messages = check_settings()
    assert ids(messages) == ["ag2_logging.E001"]
    assert "'maybe'" in messages[0].msg and messages[0].hint
    assert conf.enabled is False


def test_E002_settings_not_a_dict(env: pytest.MonkeyPatch, settings: Any) -> None:
    settings.AG2_LOGGING = ["ENABLED"]
    assert ids(check_settings()) == ["ag2_logging.E002"]


def test_E003_unknown_keys(env: pytest.MonkeyPatch, settings: Any) -> None:
    settings.AG2_LOGGING = {"ENABLE": True, "LOGFILE": "x"}
    messages = check_settings()
    assert ids(messages) == ["ag2_logging.E003"]
    assert "ENABLE, LOGFILE" in messages[0].msg
    assert messages[0].hint.startswith("Did you mean ENABLED for ENABLE, LOG_FILE for LOGFILE?")


@contextlib.contextmanager
def _log_dir(kind: str, tmp_path: Path) -> Iterator[Path]:
    """The directory LOG_FILE is put in, for each row of the E004 table."""
    if kind == "parent is a file":
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        yield blocker / "logs"
    elif kind == "missing under /proc":
        yield Path("/proc") / f"ag2-logging-{os.getpid()}" / "logs"
    elif kind == "existing under /proc":
        yield Path(f"/proc/{os.getpid()}")
    elif kind == "missing under sysfs":
        yield Path("/sys/kernel/ag2-logging/logs")
    elif kind in ("read-only, existing", "read-only, missing"):
        with read_only_dir(tmp_path) as ro:
            yield ro if kind == "read-only, existing" else ro / "logs"
    elif kind == "writable, missing":
        yield tmp_path / "new" / "logs"
    else:
        yield tmp_path


@pytest.mark.parametrize(
    ("kind", "unwritable"),
    [
        ("parent is a file", True),
        ("missing under /proc", True),
        ("existing under /proc", True),
        ("missing under sysfs", True),
        ("read-only, existing", True),
        ("read-only, missing", True),
        ("writable, missing", False),
        ("writable, existing", False),
    ],
)
def test_E004_unwritable_directory(
    env: pytest.MonkeyPatch, settings: Any, tmp_path: Path, kind: str, unwritable: bool
) -> None:
    """A real probe, not ``os.access`` (which says yes to root on /proc, sysfs, a read-only mount)."""
    with _log_dir(kind, tmp_path) as directory:
        before = sorted(tmp_path.rglob("*")) if not unwritable else []
        settings.AG2_LOGGING = {"ENABLED": True, "LOG_FILE": str(directory / "rt.log")}
        messages = check_settings()
        if unwritable:
            assert ids(messages) == ["ag2_logging.E004", "ag2_logging.E004"]  # the log's and the journals'
            assert str(directory) in messages[0].msg
            # Each hint names the settings that move its own directory.
            assert "AG2_RUNTIME_LOG_FILE" in messages[0].hint and "JOURNAL_DIR" not in messages[0].hint
            assert "AG2_LOGGING['JOURNAL_DIR']" in messages[1].hint
        else:
            assert "ag2_logging.E004" not in ids(messages)
            assert sorted(tmp_path.rglob("*")) == before  # the probe leaves nothing behind


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("JOURNAL_FSYNC", "always"),
        ("CAPTURE_BODIES", "sometimes"),
        ("MAX_BODY_CHARS", 0),
        ("CELERY_QUEUE", 5),
        ("INGEST_ON_SESSION_END", "maybe"),
        ("PROVIDER_BASE_URLS", ["http://x"]),
        ("LOCAL_MODEL_RATE", "-1"),
    ],
)
def test_E005_bad_values(env: pytest.MonkeyPatch, settings: Any, key: str, value: object) -> None:
    settings.AG2_LOGGING = {key: value}
    messages = check_settings()
    assert ids(messages) == ["ag2_logging.E005"]
    assert key in messages[0].msg


def test_E006_archive_storage_missing(env: pytest.MonkeyPatch, settings: Any) -> None:
    settings.AG2_LOGGING = {"JOURNAL_ARCHIVE_STORAGE": "journal-archive"}
    messages = check_settings()
    assert ids(messages) == ["ag2_logging.E006"]
    assert "journal-archive" in messages[0].msg
    settings.STORAGES = {
        **settings.STORAGES,
        "journal-archive": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    assert check_settings() == []


def test_E007_journal_storage_missing(env: pytest.MonkeyPatch, settings: Any) -> None:
    settings.AG2_LOGGING = {"JOURNAL_STORAGE": "shared-journals"}
    messages = check_settings()
    assert ids(messages) == ["ag2_logging.E007"]
    assert "shared-journals" in messages[0].msg and messages[0].hint


@pytest.mark.parametrize(
    ("value", "expected"), [("inline", "inline"), ("celery", "celery"), ("auto", "celery")]
)
def test_I001_pipeline_mode_is_reported(
    env: pytest.MonkeyPatch, settings: Any, value: str, expected: str
) -> None:
    # The suite's Celery app (tests/celery_app.py) has a broker and runs eagerly: auto picks celery.
    settings.AG2_LOGGING = {"ENABLED": True, "PIPELINE": value}
    messages = check_pipeline_mode()
    assert ids(messages) == ["ag2_logging.I001"]
    assert messages[0].msg.startswith(f"AG2 logging pipeline: {expected} ")
    assert messages[0].hint


@pytest.mark.django_db  # Django 6 runs the database checks with `check` too
def test_I001_is_a_deploy_check(env: pytest.MonkeyPatch, settings: Any) -> None:
    settings.AG2_LOGGING = {"ENABLED": True, "PIPELINE": "inline"}
    from io import StringIO

    quiet, deploy = StringIO(), StringIO()
    call_command("check", stdout=quiet, stderr=quiet)
    assert "I001" not in quiet.getvalue()
    call_command("check", "--deploy", stdout=deploy, stderr=deploy)
    assert "ag2_logging.I001" in deploy.getvalue() and "pipeline: inline" in deploy.getvalue()


def test_I001_says_when_logging_is_off(env: pytest.MonkeyPatch, settings: Any) -> None:
    """``check --deploy`` in a production that forgot the switch says so (a new-user trial saw
    nothing about the mode with logging off); the broker is not checked then."""
    settings.AG2_LOGGING = {"ENABLED": False}
    messages = check_pipeline_mode()
    assert ids(messages) == ["ag2_logging.I001"]
    assert messages[0].msg == "AG2 logging is off (AG2_LOGGING['ENABLED']=False): nothing is recorded."
    assert "AG2_RUNTIME_LOGGING=true" in str(messages[0].hint)
    assert check_pipeline_broker() == []


def test_E005_bad_pipeline_mode(env: pytest.MonkeyPatch, settings: Any) -> None:
    settings.AG2_LOGGING = {"PIPELINE": "sometimes"}
    messages = check_settings()
    assert ids(messages) == ["ag2_logging.E005"]
    assert "PIPELINE" in messages[0].msg


def test_W006_celery_broker_unreachable(env: pytest.MonkeyPatch, settings: Any) -> None:
    import tests.celery_app

    app_conf = tests.celery_app.app.conf
    env.setitem(app_conf, "task_always_eager", False)
    env.setitem(app_conf, "broker_url", "redis://127.0.0.1:1/0")
    settings.AG2_LOGGING = {"ENABLED": True, "PIPELINE": "celery"}
    messages = check_pipeline_broker()
    assert ids(messages) == ["ag2_logging.W006"]
    assert "cannot be reached" in messages[0].msg and "inline" in messages[0].hint
    env.setitem(app_conf, "task_always_eager", True)  # eager: no broker is used
    assert check_pipeline_broker() == []


def test_W001_legacy_switch(env: pytest.MonkeyPatch) -> None:
    env.setenv("AUTOGEN_RUNTIME_LOGGING", "file")
    messages = check_settings()
    assert ids(messages) == ["ag2_logging.W001"]
    assert "AG2_RUNTIME_LOGGING" in messages[0].hint
    assert conf.enabled is True  # still works


def test_W002_legacy_log_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("AUTOGEN_RUNTIME_LOG_FILE", str(tmp_path / "old.log"))
    messages = check_settings()
    assert ids(messages) == ["ag2_logging.W002"]
    assert "AG2_RUNTIME_LOG_FILE" in messages[0].hint
    assert conf.log_file == tmp_path / "old.log"


def test_W003_legacy_switch_ignored_when_new_is_set(env: pytest.MonkeyPatch) -> None:
    env.setenv("AUTOGEN_RUNTIME_LOGGING", "file")
    env.setenv("AG2_RUNTIME_LOGGING", "off")
    messages = check_settings()
    assert ids(messages) == ["ag2_logging.W003"]
    assert "ignored" in messages[0].msg
    assert conf.enabled is False  # the new one wins


def test_W004_legacy_log_file_ignored_when_new_is_set(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("AUTOGEN_RUNTIME_LOG_FILE", str(tmp_path / "old.log"))
    env.setenv("AG2_RUNTIME_LOG_FILE", str(tmp_path / "new.log"))
    messages = check_settings()
    assert ids(messages) == ["ag2_logging.W004"]
    assert conf.log_file == tmp_path / "new.log"


def test_W005_enabled_without_any_ag2_generation(
    env: pytest.MonkeyPatch, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ag2_logging import integrations

    settings.AG2_LOGGING = {"ENABLED": True}
    monkeypatch.setattr(integrations, "installed_generations", lambda: [])
    assert ids(check_settings()) == ["ag2_logging.W005"]


def test_clean_configuration_has_no_messages(env: pytest.MonkeyPatch) -> None:
    env.setenv("AG2_RUNTIME_LOGGING", "true")
    assert check_settings() == []
    call_command("check")


def test_call_command_check_fails_on_an_error(env: pytest.MonkeyPatch) -> None:
    env.setenv("AG2_RUNTIME_LOGGING", "yes please")
    with pytest.raises(SystemCheckError, match=r"ag2_logging\.E001"):
        call_command("check")


def test_manage_py_check_fails_with_the_documented_id(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "AG2_TEST_RUN_DIR": str(tmp_path),
        "PYTHONPATH": str(REPO),
    }
    # tests.settings sets ENABLED in AG2_LOGGING; the environment drives it in this run.
    code = (
        "import django, sys; from django.conf import settings; "
        "import tests.settings as s; s.AG2_LOGGING.pop('ENABLED', None); "
        # As a new project: no LOGGING, so a line logged by the app would reach stderr too.
        "s.LOGGING = {'version': 1, 'disable_existing_loggers': False}; "
        "from django.core.management import execute_from_command_line; execute_from_command_line(['m', 'check'])"
    )
    ok = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "AG2_RUNTIME_LOGGING": "true"},
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "AG2_RUNTIME_LOGGING": "sometimes"},
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert bad.returncode != 0
    assert "ag2_logging.E001" in bad.stderr
    # Said by the checks, not logged besides: the app's start-up reads its settings quietly.
    assert bad.stderr.count("AG2_RUNTIME_LOGGING='sometimes' is not a valid on/off value") == 1, bad.stderr


SCRIPT_WITH_A_SESSION = (
    "import django, os; import tests.settings as s; s.AG2_LOGGING.pop('ENABLED', None)\n"
    "if os.environ.get('AG2_TEST_EXTRA_KEY'): s.AG2_LOGGING[os.environ['AG2_TEST_EXTRA_KEY']] = True\n"
    "s.LOGGING = {'version': 1, 'disable_existing_loggers': False}  # as a new project: none\n"
    "django.setup()\n"
    "from ag2_logging import ag2_logging_session\n"
    "for n in range(2):\n"
    "    with ag2_logging_session(f'chat-{n}', 'wf', 'acme') as recorder:\n"
    "        print('recorder', recorder)\n"
)


@pytest.mark.parametrize(
    ("variable", "value", "said", "hint"),
    [
        (
            "AG2_RUNTIME_LOGGING",
            "maybe",
            "ag2_logging.E001 AG2_RUNTIME_LOGGING='maybe' is not a valid on/off value",
            "Use one of",
        ),
        (
            "AG2_RUNTIME_LOGGING",
            "yes",
            "ag2_logging.E001 AG2_RUNTIME_LOGGING='yes' is not a valid on/off value",
            "Use one of",
        ),
        (
            "AG2_LOGGING_PIPELINE",
            "sideways",
            "ag2_logging.E005 AG2_LOGGING['PIPELINE']='sideways' is invalid",
            "remove it",
        ),
        (  # a key misspelt in settings (reported by a new user: the script said nothing)
            "AG2_TEST_EXTRA_KEY",
            "ENABLE",
            "ag2_logging.E003 AG2_LOGGING has unknown key(s): ENABLE; they are ignored.",
            "Did you mean ENABLED?",
        ),
    ],
)
def test_a_script_is_told_of_a_bad_setting_once(
    tmp_path: Path, variable: str, value: str, said: str, hint: str
) -> None:
    """A script or ``manage.py shell`` runs no system checks: the error is logged (once), not
    left to a session that silently records nothing."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "AG2_TEST_RUN_DIR": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "AG2_RUNTIME_LOGGING": "true",
        variable: value,
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT_WITH_A_SESSION],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(said) == 1, proc.stderr
    assert hint in proc.stderr  # the hint comes with it


def test_E008_otel_on_without_its_packages(env: pytest.MonkeyPatch, settings: Any) -> None:
    from ag2_logging import checks

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "OTEL": True, "OTEL_ENDPOINT": "http://127.0.0.1:4318"}
    conf.reload()
    env.setattr(checks, "_importable", lambda module: not module.startswith("opentelemetry"))
    messages = checks.check_otel()
    assert ids(messages) == ["ag2_logging.E008"]
    assert "[otel]" in messages[0].hint


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"OTEL": True}, ["ag2_logging.W007"]),  # on, no endpoint, no global provider
        ({"OTEL": True, "OTEL_ENDPOINT": "http://127.0.0.1:4318"}, []),
        ({"OTEL": False}, []),  # off: nothing to say
    ],
)
def test_W007_otel_on_with_nowhere_to_send(
    env: pytest.MonkeyPatch, settings: Any, overrides: dict[str, Any], expected: list[str]
) -> None:
    from opentelemetry import trace

    from ag2_logging import checks

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, **overrides}
    conf.reload()
    # Another test may have set a global tracer provider in this process: this one has none.
    env.setattr(trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider())
    messages = checks.check_otel()
    assert ids(messages) == expected
    if expected:
        assert "OTEL_ENDPOINT" in messages[0].hint


def test_every_check_id_is_tested_and_documented() -> None:
    source = (REPO / "ag2_logging" / "checks.py").read_text() + (REPO / "ag2_logging" / "conf.py").read_text()
    used = set(re.findall(r'"([EWI]\d{3})"', source))
    assert used == {
        "E001",
        "E002",
        "E003",
        "E004",
        "E005",
        "E006",
        "E007",
        "E008",
        "W001",
        "W002",
        "W003",
        "W004",
        "W005",
        "W006",
        "W007",
        "W008",
        "I001",
    }
    tests = Path(__file__).read_text()
    readme = (REPO / "README.md").read_text()
    for check_id in used:
        assert f"def test_{check_id}_" in tests, check_id
        assert f"ag2_logging.{check_id}" in readme, check_id


def test_every_setting_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [key for key in DEFAULTS if f"`{key}`" not in readme]
    assert missing == []


def test_W008_live_websocket_wanted_without_channels(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import ag2_logging.checks as app_checks
    from ag2_logging.checks import check_live_transport

    monkeypatch.setattr(app_checks, "_importable", lambda module: module != "channels")
    settings.ASGI_APPLICATION = "tests.asgi.application"
    conf.reload()
    (warning,) = check_live_transport()
    assert warning.id == "ag2_logging.W008" and warning.hint
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LIVE_TRANSPORT": "polling"}
    conf.reload()
    assert check_live_transport() == []
    # A WSGI project (neither ASGI_APPLICATION nor CHANNEL_LAYERS) is not warned.
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LIVE_TRANSPORT": "auto"}
    del settings.ASGI_APPLICATION
    if hasattr(settings, "CHANNEL_LAYERS"):
        del settings.CHANNEL_LAYERS
    conf.reload()
    assert check_live_transport() == []
    # Asked for explicitly, it is warned even so; with Channels installed, never.
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LIVE_TRANSPORT": "websocket"}
    conf.reload()
    assert [w.id for w in check_live_transport()] == ["ag2_logging.W008"]
    monkeypatch.setattr(app_checks, "_importable", lambda module: True)
    assert check_live_transport() == []
