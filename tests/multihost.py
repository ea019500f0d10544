"""Two hosts on one machine for the multi-host tests: Linux UTS and mount namespaces (``unshare``).

A ``Host`` is a host name and a run directory (its runtime log and journals). Each of its
processes runs under ``unshare --uts --mount``: it sets its own host name (so ``socket.gethostname()``
differs, as the journal header and ``Session.host`` record it) and mounts an empty tmpfs over
every other host's run directory, so no host can read another's journals; only the shared
journal storage (a directory or S3) and the test database are common to both. The mounts live in
the process's own mount namespace (``unshare`` makes it private) and go away with it.

An S3-compatible server (moto's standalone server) runs on loopback for the S3 case.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, child_env

#: What every host process needs to reach S3 on loopback only (never the instance metadata).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


MANAGE = (
    "import sys, django; django.setup(); import tests.celery_app; "
    "from django.core.management import execute_from_command_line; "
    "execute_from_command_line(['manage.py', *sys.argv[1:]])"
)


@dataclass(frozen=True)
class Host:
    name: str
    run_dir: Path
    #: The other hosts' run directories, hidden from this host's processes.
    hidden: tuple[Path, ...] = field(default=())

    @property
    def journal_dir(self) -> Path:
        return self.run_dir / "logs" / "sessions"

    def prefix(self) -> list[str]:
        """The command prefix that puts a process on this host (it execs the command, so the
        process keeps the pid and process group ``subprocess`` gave it)."""
        mounts = "".join(
            f"mount -t tmpfs -o size=1m ag2-other-host {shlex.quote(str(d))} && " for d in self.hidden
        )
        script = f'hostname {shlex.quote(self.name)} && {mounts}exec "$@"'
        return ["unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]

    def settings_env(self, **extra: str) -> dict[str, str]:
        """What this host's processes add to a child's environment (``celery_worker(extra_env=)``)."""
        return {"AG2_TEST_RUN_DIR": str(self.run_dir), **AWS_ENV, **extra}

    def env(self, tmp_path: Path, **extra: str) -> dict[str, str]:
        return child_env(tmp_path, **self.settings_env(**extra))

    def run(
        self, argv: Sequence[str], env: dict[str, str], *, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix(), *argv], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
        )

    def python(
        self, script: str, env: dict[str, str], *, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-c", script], env, timeout=timeout)

    def manage(
        self, args: Sequence[str], env: dict[str, str], *, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``manage.py <args>`` on this host, in a project that loads its Celery app first (as a
        project's ``__init__`` does), so that the doctor sees the app the worker runs."""
        return self.run([sys.executable, "-c", MANAGE, *args], env, timeout=timeout)


def two_hosts(tmp_path: Path, writer: str = "ag2-host-a", worker: str = "ag2-host-b") -> tuple[Host, Host]:
    """The writer's host and the worker's host, each blind to the other's run directory."""
    a_dir, b_dir = tmp_path / writer, tmp_path / worker
    for path in (a_dir, b_dir):
        path.mkdir(parents=True, exist_ok=True)
    return Host(writer, a_dir, hidden=(b_dir,)), Host(worker, b_dir, hidden=(a_dir,))


def namespaces_work() -> str:
    """Empty when ``unshare`` can give a process its own host name and mounts here, else why not."""
    probe = subprocess.run(
        ["unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c",
         "hostname ag2-probe && mount -t tmpfs ag2-probe /mnt && hostname"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    if probe.returncode != 0 or probe.stdout.strip() != "ag2-probe":
        return f"unshare failed ({probe.returncode}): {probe.stderr.strip()}"
    return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the S3 server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the S3 server did not listen on 127.0.0.1:{port} within {timeout}s")


@contextmanager
def s3_server(log_path: Path) -> Iterator[str]:
    """moto's standalone S3-compatible server on a free loopback port; yields its endpoint URL."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **AWS_ENV},
        )  # fmt: skip
        try:
            wait_port(port, proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def s3_client(endpoint: str) -> Any:  # boto3 clients are built at run time: no static type
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
    )


def new_bucket(endpoint: str) -> str:
    bucket = f"ag2-journals-{uuid.uuid4().hex[:8]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return bucket
