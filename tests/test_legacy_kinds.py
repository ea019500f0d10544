"""Kinds of fault of the import of old AG2 logs (issue 15, items 11-13), on logs that real classic
AG2 agents wrote with AG2's own runtime logging (FileLogger and SqliteLogger) against the fake
LLM server:

* 11: replies that quote log syntax change no figure: every imported figure equals the real
  call's (the server's usage, genai-prices' own ``calc_price``, the log's own fields read here);
* 12: what is not an AG2 log is refused (stderr, exit status 1, no sanitized copy, no row);
* 13: a damaged copy of an imported log adds no call already imported.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import autogen
import pytest
from autogen import runtime_logging
from django.core.management import call_command, execute_from_command_line
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ag2_logging.integrations import classic
from ag2_logging.models import LLMCall, Session
from ag2_logging.pipeline.legacy import NotAnAG2Log, import_log, summarize_runtime_log
from ag2_logging.testing import FakeLLMServer
from tests.conftest import TEST_API_KEY, expected_cost

pytestmark = pytest.mark.django_db(transaction=True)

#: The real call of the issue: gpt-4o-mini, 2006 prompt tokens (1920 cached), 300 completion
#: (64 of them reasoning).
PROMPT, CACHED, COMPLETION, REASONING = 2006, 1920, 300, 64
USAGE = f"[[usage:prompt={PROMPT},completion={COMPLETION},cached={CACHED},reasoning={REASONING}]]"
MODEL = "gpt-4o-mini"


def price(prompt: int, cached: int, completion: int) -> Decimal:
    """OpenAI-convention usage priced by genai-prices itself (reasoning is part of completion)."""
    return expected_cost(MODEL, prompt, completion, cached, 0)


def echo(text: str) -> str:
    return text


def run_chat(server: FakeLLMServer, reply_text: str, *, base_url_in_config: bool, model: str = MODEL) -> None:
    """A real classic AG2 chat of two calls: a tool call whose result is ``reply_text``, then the
    model's reply quoting it (the fake server answers ``tool result: <the tool's output>``)."""
    entry = {"model": model, "api_key": TEST_API_KEY, "base_url": server.base_url}
    if not base_url_in_config:
        del entry["base_url"]
    config = {"config_list": [entry], "cache_seed": None}
    assistant = autogen.AssistantAgent("assistant", llm_config=config)
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=2
    )
    autogen.register_function(echo, caller=assistant, executor=user, description="Echo a text.")
    message = "[[tool:echo " + json.dumps({"text": reply_text}) + "]] " + USAGE
    user.initiate_chat(assistant, message=message, max_turns=2)


@pytest.fixture
def ag2_log(llm: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``ag2_log(kind, reply_text)``: the path of a log AG2's own logger of ``kind`` (``file`` or
    ``sqlite``) wrote for one ``run_chat``."""
    monkeypatch.chdir(tmp_path)  # FileLogger writes ./autogen_logs/<filename>
    # AG2 0.14's SqliteLogger cannot log a base_url given in llm_config (a pydantic Url in
    # json.dumps): the SDK takes the fake server from the environment instead.
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)

    def write(kind: str, reply_text: str, **chat: Any) -> Path:
        if kind == "file":
            runtime_logging.start(logger_type="file", config={"filename": "runtime.log"})
            path = tmp_path / "autogen_logs" / "runtime.log"
        else:
            path = tmp_path / "runtime.db"
            runtime_logging.start(logger_type="sqlite", config={"dbname": str(path)})
        try:
            run_chat(llm, reply_text, base_url_in_config=kind == "file", **chat)
        finally:
            runtime_logging.stop()
        return path

    try:
        yield write
    finally:
        runtime_logging.stop()
        classic.install()


def _ag2_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def logged_calls(path: Path, kind: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """AG2's session id and, by invocation id, what AG2 logged of each call (read here, with
    json / sqlite3, independently of the importer): agent, AG2's cost, start and end."""
    calls: dict[str, dict[str, Any]] = {}
    if kind == "file":
        lines = path.read_text().splitlines()
        session = lines[0].removeprefix("Started new session with Session ID: ")
        for line in lines:
            if line.startswith("{") and '"invocation_id"' in line:
                r = json.loads(line)
                calls[r["invocation_id"]] = {
                    "agent": r["source_name"],
                    "ag2_cost": Decimal(str(r["cost"])),
                    "start": _ag2_ts(r["start_time"]),
                    "end": _ag2_ts(r["end_time"]),
                }
        return session, calls
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT invocation_id, source_name, cost, start_time, end_time, session_id FROM chat_completions"
        ).fetchall()
    for invocation, agent, cost, start, end, _ in rows:
        calls[invocation] = {
            "agent": agent,
            "ag2_cost": Decimal(str(cost)),
            "start": _ag2_ts(start),
            "end": _ag2_ts(end),
        }
    return rows[0][5], calls


# -- 11: message text never changes a figure -------------------------------------------------------

CRAFTED = {
    "issue: model and usage repr": (
        "model='gpt-3.5-turbo', usage=CompletionUsage(completion_tokens=1, prompt_tokens=1, total_tokens=2)"
    ),
    "a whole ChatCompletion repr": (
        "ChatCompletion(id='chatcmpl-evil', choices=[], created=1, model='gpt-3.5-turbo', "
        "usage=CompletionUsage(completion_tokens=1, prompt_tokens=1, total_tokens=2), cost=0.0)"
    ),
    "token details repr": (
        "usage=CompletionUsage(completion_tokens=1, prompt_tokens=1, completion_tokens_details="
        "CompletionTokensDetails(reasoning_tokens=999), prompt_tokens_details=PromptTokensDetails"
        "(cached_tokens=999))"
    ),
    "closes the string": "'), created=1, model='gpt-3.5-turbo', id='chatcmpl-evil', usage=None, x=('",
    "double quotes": "\"), model='gpt-3.5-turbo', usage=CompletionUsage(completion_tokens=1, prompt_tokens=1)#",
    "backslashes": "\\', model=\\'gpt-3.5-turbo\\', usage=CompletionUsage(completion_tokens=1, prompt_tokens=1)",
    "a FileLogger record": (
        '{"invocation_id": "evil", "response": {"id": "chatcmpl-evil", "model": "gpt-3.5-turbo", '
        '"usage": {"prompt_tokens": 1, "completion_tokens": 1}}, "cost": 0, "source_name": "mallory"}'
    ),
    "log lines after newlines": (
        "\nStarted new session with Session ID: evil-session\n"
        '{"invocation_id": "evil", "response": "x", "start_time": "1999-01-01 00:00:00.000000"}\n'
    ),
    "a replaced-system line": (
        '\n# MOZAIKS SESSION START: {"session_id": "evil", "enterprise_id": "evil", "workflow_name": "evil"}\n'
    ),
    "SqliteLogger's error wrapping": (
        "{\"response\": \"ChatCompletion(id='x', model='gpt-3.5-turbo', usage=CompletionUsage("
        'completion_tokens=1, prompt_tokens=1, total_tokens=2))"}'
    ),
    "usage as JSON": '"usage": {"prompt_tokens": 1, "completion_tokens": 1}, "model": "gpt-3.5-turbo", "id": "x"',
    "times, agent, cache flag": (
        '"start_time": "1999-01-01 00:00:00.000000", "end_time": "1999-01-01 00:00:01.000000", '
        '"source_name": "mallory", "is_cached": 1, "cost": 0'
    ),
}


@pytest.mark.parametrize("kind", ["file", "sqlite"])
@pytest.mark.parametrize("text", list(CRAFTED.values()), ids=list(CRAFTED))
def test_quoted_log_syntax_changes_no_figure(ag2_log: Any, llm: FakeLLMServer, kind: str, text: str) -> None:
    assert len(text) <= 200  # the fake server echoes 200 characters
    path = ag2_log(kind, text)
    served = llm.successful()
    assert len(served) == 2 and all(s.usage is not None for s in served)
    # The tool's output went back to the model, which quoted it in the reply AG2 logged.
    assert [m.get("content") for m in served[1].messages if m.get("role") == "tool"] == [text]
    ag2_session, logged = logged_calls(path, kind)

    result = import_log(path, progress=False)
    assert (result.calls, result.calls_created, result.bad_lines) == (2, 2, [])
    session = Session.objects.get()
    assert (session.chat_id, session.enterprise_id, session.workflow_name) == (ag2_session, "", "")
    calls = list(LLMCall.objects.order_by("started_at"))
    assert [c.response_id for c in calls] == [s.response_id for s in served]
    expected = price(PROMPT, CACHED, COMPLETION)
    assert expected == Decimal("0.0003369")
    for call, real in zip(calls, served, strict=True):
        assert real.usage is not None and real.model == MODEL
        assert (call.model, call.prompt_tokens, call.cached_tokens) == (
            MODEL,
            real.usage.prompt_tokens,
            CACHED,
        )
        assert (call.completion_tokens, call.reasoning_tokens) == (COMPLETION, REASONING)
        assert (call.prompt_tokens, call.total_tokens) == (PROMPT, PROMPT + COMPLETION)
        assert call.cost == expected and call.price_status in ("priced", "inferred")
        mine = logged[call.invocation_id]
        assert call.ag2_cost == mine["ag2_cost"] > 0
        assert (call.agent_name, call.started_at, call.ended_at) == (
            mine["agent"],
            mine["start"],
            mine["end"],
        )
        assert not call.is_cached and call.status == "success"
    assert session.total_cost == 2 * expected and session.prompt_tokens == 2 * PROMPT
    summary = summarize_runtime_log(path)
    assert (summary["cost"], summary["cached_tokens"], summary["reasoning_tokens"]) == (
        2 * expected,
        2 * CACHED,
        2 * REASONING,
    )
    assert list(summary["by_model"]) == [MODEL] and list(summary["by_session"]) == [ag2_session]


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_session_whose_calls_are_all_unpriced_has_an_unknown_cost(
    ag2_log: Any, llm: FakeLLMServer, kind: str
) -> None:
    path = ag2_log(kind, "hello", model="acme-private-model-7")
    out = io.StringIO()
    call_command("ag2_logging_import", str(path), "--no-progress", stdout=out, stderr=io.StringIO())
    assert "cost unknown" in out.getvalue() and "2 unpriced" in out.getvalue()
    session = Session.objects.get()
    assert session.call_count == 2 and session.total_cost is None
    assert all(c.cost is None and c.price_status == "unknown" for c in LLMCall.objects.all())
    imported = [json.loads(line) for line in Path(session.journal_path).read_text().splitlines()]
    assert imported[-1]["totals"]["total_cost"] is None and imported[-1]["totals"]["unpriced_calls"] == 2


# -- 12: what is not an AG2 log is refused ------------------------------------------------------------


def _other_sqlite(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users (name) VALUES ('ada')")
    return path


def _lookalike_sqlite(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE chat_completions (id INTEGER PRIMARY KEY, body TEXT)")
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated_gzip(path: Path) -> Path:
    log = b"Started new session with Session ID: 6f1c3e9a-0000-4000-8000-000000000003\n" * 50
    return _write(path, gzip.compress(log)[:40])


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _link(path: Path) -> Path:
    path.symlink_to("/etc/passwd")
    return path


REFUSED: dict[str, tuple[Any, list[str], str]] = {
    # name: (make the file at the path given, extra options, what stderr says)
    "SQLite of another schema": (_other_sqlite, [], "not an AG2 log: a SQLite database without AG2's"),
    "SQLite with a lookalike table": (_lookalike_sqlite, [], "not an AG2 log: chat_completions lacks"),
    "corrupt SQLite": (
        lambda p: _write(p, b"SQLite format 3\x00" + random.Random(1).randbytes(4000)),
        [],
        "not an AG2 log",
    ),
    "random bytes": (lambda p: _write(p, random.Random(2).randbytes(8192)), [], "not an AG2 log"),
    "empty file": (lambda p: _write(p, b""), [], "not an AG2 log: the file is empty"),
    "text file": (lambda p: _write(p, b"hello\nworld\n" * 20), [], "not an AG2 log: no line of AG2"),
    "another app's JSON lines": (
        lambda p: _write(p, b'{"event": "login", "level": "info", "event_name": "x"}\n' * 5),
        [],
        "not an AG2 log: no line of AG2",
    ),
    "truncated gzip": (_truncated_gzip, [], "not an AG2 log: gzip-compressed"),
    "a directory": (lambda p: (p.mkdir(), p)[1], [], "is a directory, not an AG2 log"),
    "a symlink": (_link, [], "is a symbolic link (to /etc/passwd): not followed without --follow-symlinks"),
    "a followed symlink to a system file": (_link, ["--follow-symlinks"], "not an AG2 log: no line of AG2"),
    "a FIFO": (_fifo, [], "is a FIFO, not an AG2 log file"),
    "a missing file": (lambda p: p, [], "no such file"),
}


def _run_command(*argv: str) -> int:
    """``manage.py ag2_logging_import ...`` as a shell runs it: its exit status."""
    try:
        execute_from_command_line(["manage.py", "ag2_logging_import", "--no-progress", *argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.parametrize(("make", "options", "reason"), list(REFUSED.values()), ids=list(REFUSED))
def test_what_is_not_an_ag2_log_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, options: list[str], reason: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    path = make(folder / "runtime.log")
    before = sorted(p.name for p in folder.iterdir())

    assert _run_command(*options, str(path)) == 1
    err = capsys.readouterr().err
    assert f"{path}: {reason}" in err and "1 of 1 file(s) not imported" in err
    assert sorted(p.name for p in folder.iterdir()) == before  # no .sanitized copy, no temporary file
    assert not Session.objects.exists()
    if "--follow-symlinks" not in options and path.exists() and path.is_file() and not path.is_symlink():
        with pytest.raises(NotAnAG2Log, match=reason.split(": ", 1)[-1][:20]):
            summarize_runtime_log(path)


def test_a_refused_file_does_not_stop_the_others(ag2_log: Any, tmp_path: Path) -> None:
    good = ag2_log("file", "fine")
    bad = _write(tmp_path / "noise.log", b"nothing to see\n")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(Exception, match="1 of 2 file"):
        call_command("ag2_logging_import", str(bad), str(good), "--no-progress", stdout=out, stderr=err)
    assert f"{bad}: not an AG2 log" in err.getvalue()
    assert "2 call(s) (2 new)" in out.getvalue() and LLMCall.objects.count() == 2
    assert not (tmp_path / "noise.log.sanitized").exists()


def test_a_symlink_to_a_log_is_read_when_asked(ag2_log: Any, tmp_path: Path) -> None:
    real = ag2_log("file", "fine")
    link = tmp_path / "linked.log"
    link.symlink_to(real)
    assert _run_command(str(link)) == 1 and not LLMCall.objects.exists()
    assert _run_command("--follow-symlinks", str(link)) == 0
    assert LLMCall.objects.count() == 2
    assert (tmp_path / "linked.log.sanitized").is_file()  # beside the link, not its target
    assert link.is_symlink() and not Path(str(real) + ".sanitized").exists()


# -- 13: a damaged copy adds no call already imported ------------------------------------------------


def _call_lines(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if b'"invocation_id"' in line]


def corrupt(data: bytes, pattern: str, seed: int) -> bytes:
    """A damaged copy of a log: bytes flipped in the middle of lines (one per line), lines dropped,
    repeated or reordered, or some of each."""
    rng = random.Random(seed)
    lines = data.splitlines(keepends=True)
    if pattern in ("flip", "mixed"):
        targets = rng.sample(range(len(lines)), k=min(len(lines), rng.randint(1, 4)))
        if rng.random() < 0.5:
            targets[0] = rng.choice([0, *_call_lines(lines)])  # the session line, or a call
        for i in set(targets):
            line = bytearray(lines[i])
            at = rng.randint(len(line) // 3, max(len(line) // 3, 2 * len(line) // 3 - 1))
            line[at] ^= rng.randint(1, 255)
            lines[i] = bytes(line)
    if pattern in ("drop", "mixed"):
        for i in sorted(rng.sample(range(len(lines)), k=rng.randint(1, 3)), reverse=True):
            del lines[i]
    if pattern in ("duplicate", "mixed"):
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
    if pattern in ("reorder", "mixed"):
        rng.shuffle(lines)
    return b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)


def _rows() -> list[tuple[Any, ...]]:
    fields = ("id", "session_id", "invocation_id", "response_id", "prompt_tokens", "cost", "started_at")
    return sorted(LLMCall.objects.values_list(*fields), key=str)


@pytest.fixture
def repeated_log(llm: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One FileLogger session of four calls: the same two-call chat twice (two pairs of genuinely
    identical calls: same agent, model, request and usage, other invocation ids and times)."""
    monkeypatch.chdir(tmp_path)
    runtime_logging.start(logger_type="file", config={"filename": "runtime.log"})
    try:
        for _ in range(2):
            config = {"model": MODEL, "api_key": TEST_API_KEY, "base_url": llm.base_url}
            assistant = autogen.AssistantAgent(
                "assistant", llm_config={"config_list": [config], "cache_seed": None}
            )
            user = autogen.UserProxyAgent(
                "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=2
            )
            user.initiate_chat(assistant, message="hello " + USAGE, max_turns=2)
    finally:
        runtime_logging.stop()
        classic.install()
    return tmp_path / "autogen_logs" / "runtime.log"


def test_identical_calls_at_different_times_stay_distinct(repeated_log: Path, llm: FakeLLMServer) -> None:
    result = import_log(repeated_log, progress=False)
    assert len(llm.successful()) == 4
    assert (result.calls, result.calls_created) == (4, 4)
    calls = list(LLMCall.objects.order_by("started_at"))
    assert calls[0].request == calls[2].request  # the very same request, sent twice
    for first, again in zip(calls[:2], calls[2:], strict=True):
        assert (first.model, first.agent_name) == (again.model, again.agent_name)
        assert (first.prompt_tokens, first.cost) == (again.prompt_tokens, again.cost)
        assert first.started_at < again.started_at and first.invocation_id != again.invocation_id
    assert [c.cost for c in calls] == [price(PROMPT, CACHED, COMPLETION)] * 4


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(pattern=st.sampled_from(["flip", "drop", "duplicate", "reorder", "mixed"]), seed=st.integers(0, 2**32))
@example(pattern="flip", seed=0)
@example(pattern="reorder", seed=1)
def test_a_damaged_copy_adds_no_call_already_imported(repeated_log: Path, pattern: str, seed: int) -> None:
    if not LLMCall.objects.exists():  # the examples share the database: the original goes in once
        first = import_log(repeated_log, progress=False)
        assert first.calls_created == 4
    rows = _rows()
    session = Session.objects.get()
    damaged = repeated_log.with_name(f"damaged-{pattern}-{seed}.log")
    damaged.write_bytes(corrupt(repeated_log.read_bytes(), pattern, seed))
    try:
        result = import_log(damaged, progress=False)
    except NotAnAG2Log:
        return  # damaged beyond recognition: refused, nothing added
    assert result.calls_created == 0 and result.sessions_created == 0
    assert _rows() == rows and Session.objects.count() == 1
    session.refresh_from_db()
    assert session.call_count == 4 and not session.incomplete


@pytest.mark.parametrize(
    "damage",
    [
        "DELETE FROM chat_completions WHERE id = (SELECT min(id) FROM chat_completions)",
        "INSERT INTO chat_completions (invocation_id, client_id, wrapper_id, session_id, request, response, "
        "is_cached, cost, start_time, end_time, source_name) SELECT invocation_id, client_id, wrapper_id, "
        "session_id, request, response, is_cached, cost, start_time, end_time, source_name FROM chat_completions",
        "UPDATE chat_completions SET session_id = 'damaged'",
        "UPDATE chat_completions SET cost = cost * 2, source_name = 'x' WHERE id = 1",
        "UPDATE chat_completions SET invocation_id = 'lost' WHERE id = 1",
    ],
    ids=["row dropped", "rows repeated", "session id changed", "values changed", "invocation id changed"],
)
def test_a_damaged_copy_of_a_database_adds_no_call(ag2_log: Any, tmp_path: Path, damage: str) -> None:
    path = ag2_log("sqlite", "fine")
    assert import_log(path, progress=False).calls_created == 2
    rows = _rows()
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    with sqlite3.connect(copy) as db:
        db.execute(damage)
    again = import_log(copy, progress=False)
    assert (again.calls_created, again.sessions_created) == (0, 0)
    assert _rows() == rows and Session.objects.count() == 1


# -- F10: every file the import writes is created exclusively, never through a planted link ---------


def _plant_link_at_temp(target: Path, victim: Path) -> Path:
    """A link to ``victim`` at the temporary name an earlier version used (``.<name>.<pid>.tmp``)."""
    planted = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    planted.symlink_to(victim)
    return planted


def _plant_link_at_target(target: Path, victim: Path) -> Path:
    target.symlink_to(victim)
    return target


def _plant_dangling_link(target: Path, victim: Path) -> Path:
    target.symlink_to(victim.with_name("nowhere"))
    return target


def _plant_fifo(target: Path, victim: Path) -> Path:
    os.mkfifo(target)
    return target


PLANTED = {
    "symlink at the temporary name": _plant_link_at_temp,
    "symlink at the final name": _plant_link_at_target,
    "dangling symlink at the final name": _plant_dangling_link,
    "FIFO at the final name": _plant_fifo,
}


def _sanitized_target(path: Path) -> Path:
    if path.suffix == ".db":
        return path.with_name(path.stem + ".sanitized" + path.suffix)
    return path.with_name(path.name + ".sanitized")


@pytest.mark.parametrize("kind", ["file", "sqlite"])
@pytest.mark.parametrize("plant", list(PLANTED.values()), ids=list(PLANTED))
def test_the_import_never_writes_through_what_is_planted(
    ag2_log: Any, tmp_path: Path, kind: str, plant: Any
) -> None:
    log = ag2_log(kind, "fine")
    original = log.read_bytes()
    victim = tmp_path / "victim.txt"
    victim.write_text("IMPORTANT DATA\n")
    target = _sanitized_target(log)
    planted = plant(target, victim)
    before = {p.name for p in log.parent.iterdir()}

    assert _run_command(str(log)) == 0
    assert victim.read_text() == "IMPORTANT DATA\n"  # never written through
    assert not victim.with_name("nowhere").exists()  # a dangling link's target not created
    assert not target.is_symlink() and target.is_file()  # the sanitized copy replaced what was there
    data = target.read_bytes()
    assert data.startswith(b"SQLite format 3\x00") if kind == "sqlite" else b"Started new session" in data
    assert log.read_bytes() == original
    if planted != target:
        assert planted.is_symlink() and os.readlink(planted) == str(victim)  # left alone
    # No temporary file (or SQLite journal of one) left beside the log.
    left = {p.name for p in log.parent.iterdir()} - before - {target.name, "logs"}
    assert left == set()
    assert LLMCall.objects.count() == 2


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_an_in_place_import_replaces_the_file_never_a_planted_temp(
    ag2_log: Any, tmp_path: Path, kind: str
) -> None:
    log = ag2_log(kind, "fine")
    victim = tmp_path / "victim.txt"
    victim.write_text("IMPORTANT DATA\n")
    planted = _plant_link_at_temp(log, victim)
    os.chmod(log, 0o640)

    assert _run_command("--in-place", str(log)) == 0
    assert victim.read_text() == "IMPORTANT DATA\n" and planted.is_symlink()
    assert log.is_file() and not log.is_symlink() and (log.stat().st_mode & 0o777) == 0o640
    assert LLMCall.objects.count() == 2


@pytest.mark.parametrize(
    "plant", [_plant_link_at_temp, _plant_link_at_target], ids=["temporary name", "final name"]
)
def test_an_imported_journal_is_never_written_through_a_link(tmp_path: Path, plant: Any) -> None:
    from ag2_logging.pipeline.legacy.journal import write_journal

    victim = tmp_path / "victim.txt"
    victim.write_text("IMPORTANT DATA\n")
    path = tmp_path / "imported" / "session.jsonl"
    path.parent.mkdir()
    plant(path, victim)
    events = [{"type": "session_start", "seq": 1}, {"type": "session_end", "seq": 2}]
    write_journal(path, events)
    assert victim.read_text() == "IMPORTANT DATA\n"
    assert not path.is_symlink() and [json.loads(line) for line in path.read_text().splitlines()] == events
    assert (path.stat().st_mode & 0o777) == 0o600


def test_calls_of_a_client_the_file_logger_failed_to_log_take_the_logged_endpoint(
    ag2_log: Any, llm: FakeLLMServer, settings: Any
) -> None:
    """AG2's FileLogger fails to log some clients; the calls naming them are classified by the
    one endpoint the log knows, as the same calls are when recorded live (an unmapped loopback
    server: <provider>@local, priced inferred)."""
    from ag2_logging.conf import conf

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "PROVIDER_BASE_URLS": {}}
    conf.reload()
    path = ag2_log("file", "plain text")
    import_log(path)
    rows = set(LLMCall.objects.values_list("provider", "price_status"))
    assert rows == {("openai@local", "inferred")}
