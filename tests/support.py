"""Helpers for tests that run other processes: child Django processes and real Celery workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import connection
from kombu import Connection

REPO = Path(__file__).resolve().parent.parent
BROKER_URL = os.environ.get("AG2_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")


class FlakyStorage(FileSystemStorage):
    """A ``FileSystemStorage`` that is down for a while: its first ``AG2_TEST_STORAGE_FAILURES``
    saves in a process raise ``OSError`` (as a storage backend does when its server refuses),
    then it saves as usual."""

    failures_left: int | None = None

    def _save(self, name: str, content: Any) -> str:
        cls = type(self)
        if cls.failures_left is None:
            cls.failures_left = int(os.environ.get("AG2_TEST_STORAGE_FAILURES", "0"))
        if cls.failures_left > 0:
            cls.failures_left -= 1
            raise OSError(f"storage unreachable ({cls.failures_left} more refusals)")
        return super()._save(name, content)


def database_url() -> str:
    """A URL for the database this test uses (the test database), for child processes."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    scheme, default_user, default_port = (
        ("mysql", "root", 3306) if connection.vendor == "mysql" else ("postgres", "postgres", 5432)
    )
    user = settings.get("USER") or default_user
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or default_port
    return f"{scheme}://{user}@{host}:{port}/{settings['NAME']}"


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": database_url(),
        "AG2_TEST_RUN_DIR": str(tmp_path / f"child-{uuid.uuid4().hex[:6]}"),
        **extra,
    }


def run_child(script: str, env: dict[str, str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


@contextmanager
def celery_worker(
    tmp_path: Path,
    *,
    concurrency: int = 4,
    loglevel: str = "WARNING",
    prefix: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, Path]]:
    """A real prefork worker on ``BROKER_URL``, on a queue of its own, against this test database.

    Yields the queue name and the worker's log file. The worker's sessions enqueue their own
    ingest on the same queue (``AG2_TEST_CELERY_QUEUE``). ``prefix`` is put before the command
    (it must end by exec-ing it, so that the process group is the worker's: e.g. ``unshare``);
    ``extra_env`` is added to the worker's environment."""
    queue = f"ag2-test-{uuid.uuid4().hex[:8]}"
    env = child_env(
        tmp_path,
        CELERY_BROKER_URL=BROKER_URL,
        CELERY_TASK_ALWAYS_EAGER="false",
        AG2_TEST_CELERY_QUEUE=queue,
        **(extra_env or {}),
    )
    log_path = tmp_path / f"worker-{queue}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--pool=prefork",
         f"--concurrency={concurrency}", "-Q", queue, "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-l", loglevel],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield queue, log_path
    finally:
        stop_worker(proc)
        log.close()
        with Connection(BROKER_URL) as conn:
            conn.default_channel.queue_delete(queue)
        if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
            pytest.fail(f"worker exited with {proc.returncode}: {log_path.read_text()[-3000:]}")


def stop_worker(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def database_thread_held() -> Iterator[threading.Event]:
    """The app's database thread busy with a job until the yielded event is set; on leaving, the
    event is set and the job waited for."""
    from ag2_logging.capture import db_thread

    release = threading.Event()
    held = db_thread.submit_db(release.wait)
    try:
        yield release
    finally:
        release.set()
        held.result(timeout=30)


def in_fork(report: Callable[[], str]) -> str:
    """``report()`` run in a child forked from this process (which keeps its threads' state but
    not the threads), its string sent back; ``"error <exc>"`` when it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, never return into pytest
        try:
            answer = report()
        except BaseException as exc:  # reported to the parent
            answer = f"error {exc!r}"
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def wait_for(predicate: Any, *, timeout: float = 120, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can write in: as root (who ignores mode bits) a read-only tmpfs,
    otherwise mode 0555."""
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() != 0:
        target.chmod(0o555)
        try:
            yield target
        finally:
            target.chmod(0o755)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def reset_otel_globals() -> None:
    """OpenTelemetry's global tracer and meter providers can be set once per process: unset them
    (what OpenTelemetry's own test utilities do), so that each export test sets its own."""
    from opentelemetry import metrics, trace
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    metrics._internal._METER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    metrics._internal._METER_PROVIDER = None  # type: ignore[attr-defined]
