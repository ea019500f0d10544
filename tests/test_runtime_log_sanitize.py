"""The sanitize pass over the runtime log: one session's lines, found without reading every line,
and backups older than the session left unread."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ag2_logging.pipeline import sanitize
from ag2_logging.pipeline.sanitize import LineSanitizer, sanitize_runtime_log

MINE = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
SECRET = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 3


def _every_line(data: bytes, session_id: str) -> tuple[bytes, dict[str, int]]:
    """The pass as it was: split every line, sanitize those that name the session."""
    counts: dict[str, int] = {}
    lines = data.split(b"\n")
    sanitizer = LineSanitizer(counts)
    for index, line in enumerate(lines):
        if session_id.encode() in line:
            lines[index] = (sanitizer.line(line.decode("utf-8", "replace")) or "").encode()
    return b"\n".join(lines), counts


_lines = st.lists(
    st.tuples(
        st.sampled_from([MINE, OTHER, f"{MINE} and {MINE}", ""]),
        st.sampled_from([f'{{"api_key": "{SECRET}"}}', f"# AG2 CALL: {SECRET}", "plain text", "", "é ü"]),
        st.sampled_from(["", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----"]),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(lines=_lines, trailing_newline=st.booleans())
def test_the_pass_changes_what_sanitizing_every_line_changed(
    tmp_path_factory: object, lines: list[tuple[str, str, str]], trailing_newline: bool
) -> None:
    data = "\n".join(f"{sid} {body} {pem}" if sid else f"{body} {pem}" for sid, body, pem in lines)
    raw = (data + ("\n" if trailing_newline else "")).encode()
    path = Path(tmp_path_factory.mktemp("log")) / "ag2_runtime.log"  # type: ignore[attr-defined]
    path.write_bytes(raw)
    counts = sanitize_runtime_log(path, MINE)
    expected, expected_counts = _every_line(raw, MINE)
    assert path.read_bytes() == expected
    assert counts == expected_counts
    if any(sid.startswith(MINE) and SECRET in body for sid, body, _ in lines):
        assert SECRET.encode() not in b"".join(
            line for line in path.read_bytes().split(b"\n") if MINE.encode() in line
        )


def test_a_backup_written_before_the_session_started_is_not_read(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ag2_runtime.log"
    path.write_text(f"{MINE} {SECRET}\n")
    old, recent = Path(f"{path}.2"), Path(f"{path}.1")
    old.write_text(f"{OTHER} {SECRET}\n")
    recent.write_text(f"{MINE} {SECRET}\n")
    started = dt.datetime.now(dt.UTC)
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    read: list[Path] = []
    real = sanitize._sanitize_runtime_file

    def spy(file: Path, session_id: str, counts: dict[str, int]) -> None:
        read.append(file)
        real(file, session_id, counts)

    monkeypatch.setattr(sanitize, "_sanitize_runtime_file", spy)
    counts = sanitize_runtime_log(path, MINE, since=started)
    assert sorted(read) == sorted([path, recent])
    assert SECRET not in path.read_text() and SECRET not in recent.read_text()
    assert sum(counts.values()) == 2
    # Without a start time every backup is read, as before.
    read.clear()
    sanitize_runtime_log(path, MINE)
    assert sorted(read) == sorted([path, recent, old])
