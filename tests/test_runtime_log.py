"""The runtime log rotates by size, keeps LOG_BACKUP_COUNT files, and is safe with many writers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ag2_logging.capture import runtime_log
from ag2_logging.conf import conf


@pytest.fixture
def log_file(logs_dir: Path) -> Path:
    return logs_dir / "ag2_runtime.log"


def configure(settings: Any, max_bytes: int, backup_count: int) -> None:
    settings.AG2_LOGGING = {
        **settings.AG2_LOGGING,
        "LOG_MAX_BYTES": max_bytes,
        "LOG_BACKUP_COUNT": backup_count,
    }
    conf.reload()


def test_rotates_when_the_next_write_would_pass_the_limit(settings: Any, log_file: Path) -> None:
    configure(settings, max_bytes=100, backup_count=3)
    runtime_log.write("a" * 49, "b" * 49)  # 100 bytes with the newlines: exactly the limit
    assert log_file.stat().st_size == 100
    assert runtime_log.backups(log_file) == []
    runtime_log.write("c")  # 102 > 100: rotate first, then write
    assert log_file.read_text() == "c\n"
    assert runtime_log.backups(log_file) == [log_file.with_name("ag2_runtime.log.1")]
    assert log_file.with_name("ag2_runtime.log.1").read_text() == "a" * 49 + "\n" + "b" * 49 + "\n"


def test_keeps_log_backup_count_files_newest_first(settings: Any, log_file: Path) -> None:
    configure(settings, max_bytes=10, backup_count=3)
    for n in range(8):
        runtime_log.write(f"line-{n}")  # 7 bytes each: one line per file
    assert log_file.read_text() == "line-7\n"
    assert [p.name for p in runtime_log.backups(log_file)] == [
        "ag2_runtime.log.1",
        "ag2_runtime.log.2",
        "ag2_runtime.log.3",
    ]
    assert [p.read_text() for p in runtime_log.backups(log_file)] == ["line-6\n", "line-5\n", "line-4\n"]
    assert not log_file.with_name("ag2_runtime.log.4").exists()


def test_zero_max_bytes_never_rotates(settings: Any, log_file: Path) -> None:
    configure(settings, max_bytes=0, backup_count=3)
    for n in range(50):
        runtime_log.write(f"line-{n}")
    assert len(log_file.read_text().splitlines()) == 50
    assert runtime_log.backups(log_file) == []


def test_zero_backup_count_drops_the_old_content(settings: Any, log_file: Path) -> None:
    configure(settings, max_bytes=10, backup_count=0)
    runtime_log.write("line-1")
    runtime_log.write("line-2")
    assert log_file.read_text() == "line-2\n"
    assert runtime_log.backups(log_file) == []


def test_a_write_larger_than_the_limit_is_kept_whole_in_its_own_file(settings: Any, log_file: Path) -> None:
    configure(settings, max_bytes=10, backup_count=2)
    runtime_log.write("short")
    runtime_log.write("x" * 30)
    runtime_log.write("next")
    assert log_file.read_text() == "next\n"
    assert [p.read_text() for p in runtime_log.backups(log_file)] == ["x" * 30 + "\n", "short\n"]


def test_a_write_failure_is_logged_never_raised(
    settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LOG_FILE": str(blocker / "ag2_runtime.log")}
    conf.reload()
    monkeypatch.setattr(runtime_log, "_failed", False)
    runtime_log.write("lost")
    runtime_log.write("lost again")
    said = [r for r in caplog.records if "cannot write the runtime log" in r.getMessage()]
    assert len(said) == 1  # once, not once per line
    # A script runs no system checks: the line is check E004's, with the reason and the way out,
    # and no traceback.
    assert (
        said[0]
        .getMessage()
        .startswith(f"ag2_logging.E004 cannot write the runtime log {blocker / 'ag2_runtime.log'}: [Errno ")
    )
    assert "AG2_RUNTIME_LOG_FILE" in said[0].getMessage() and said[0].exc_info is None


WORKER = textwrap.dedent(
    """
    import os, sys, time
    import django
    from django.conf import settings

    log_file, go, worker, count, max_bytes, backups = sys.argv[1:7]
    settings.configure(
        AG2_LOGGING={"LOG_FILE": log_file, "LOG_MAX_BYTES": int(max_bytes), "LOG_BACKUP_COUNT": int(backups)}
    )
    django.setup()
    from ag2_logging.capture import runtime_log

    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    n = 0
    while n < int(count):
        pad = "." * ((n * 7 + int(worker) * 3) % 20)
        if n % 5 == 0 and n + 1 < int(count):  # some writes carry two lines, like a session start
            runtime_log.write(f"w{worker} n{n:05d} {pad}|", f"w{worker} n{n + 1:05d} {pad}|")
            n += 2
        else:
            runtime_log.write(f"w{worker} n{n:05d} {pad}|")
            n += 1
    """
)


def test_many_processes_rotating_at_once_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    log_file = tmp_path / "multi" / "ag2_runtime.log"
    go = tmp_path / "go"
    workers, lines_each, max_bytes, backup_count = 6, 800, 1024, 500
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(log_file),
                str(go),
                str(w),
                str(lines_each),
                str(max_bytes),
                str(backup_count),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(workers)
    ]
    try:
        for proc in procs:  # every worker imported Django and waits: then they all start at once
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        go.write_text("")
        started = time.monotonic()
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert time.monotonic() - started < 30

    files = [log_file, *runtime_log.backups(log_file)]
    on_disk = {p for p in log_file.parent.iterdir() if p.name != "ag2_runtime.log.lock"}
    assert on_disk == set(files), "rotated files are numbered without gaps"
    assert 50 < len(files) <= backup_count + 1, "the writers should have rotated many times"
    seen: Counter[str] = Counter()
    line_shape = re.compile(r"w\d n\d{5} \.*\|")
    for path in files:
        data = path.read_bytes()
        # Every write is smaller than the limit, so no file may pass it.
        assert len(data) <= max_bytes, path
        assert data.endswith(b"\n"), path
        for line in data.decode().splitlines():
            assert line_shape.fullmatch(line), (path, line)  # whole lines only, never interleaved
            seen[line.split(" ", 2)[0] + " " + line.split(" ", 2)[1]] += 1
    expected = {f"w{w} n{n:05d}" for w in range(workers) for n in range(lines_each)}
    assert set(seen) == expected
    assert [key for key, times in seen.items() if times != 1] == []
    # Rotation keeps order: within one writer, older files hold older lines.
    order: dict[int, list[int]] = {w: [] for w in range(workers)}
    for path in reversed(files):
        for line in path.read_text().splitlines():
            w, n = line.split(" ", 2)[:2]
            order[int(w[1:])].append(int(n[1:]))
    assert all(numbers == sorted(numbers) for numbers in order.values())
