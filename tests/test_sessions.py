"""The session API: ``with``/``async with``, start/stop, statuses, nesting, hooks, logging off."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import autogen
import pytest
from autogen import runtime_logging

from ag2_logging import (
    ag2_logging_session,
    current_session_id,
    flush,
    get_ag2_runtime_logger,
    session_totals,
    signals,
)
from ag2_logging.conf import conf
from ag2_logging.integrations import classic
from ag2_logging.log import SessionContextFilter
from ag2_logging.models import LLMCall, Session
from ag2_logging.testing import FakeLLMServer
from tests.conftest import llm_config

pytestmark = pytest.mark.django_db(transaction=True)


def chat(server: FakeLLMServer, message: str = "hi [[terminate]]") -> Any:
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server))
    user = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    return user.initiate_chat(assistant, message=message, max_turns=1)


def test_exception_fails_the_session_and_is_reraised() -> None:
    with pytest.raises(ValueError, match="bad input"):
        with ag2_logging_session("c-fail", "wf", "acme"):
            raise ValueError("bad input")
    session = Session.objects.get()
    assert session.status == "failed"
    assert session.error == "ValueError: bad input"
    assert session.ended_at is not None


def test_cancellation_cancels_the_session() -> None:
    async def body() -> None:
        async with ag2_logging_session("c-cancel", "wf", "acme"):
            await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(body())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    flush()
    assert Session.objects.get().status == "cancelled"


def test_start_and_stop_session_the_seed_systems_api(llm: FakeLLMServer) -> None:
    runtime = get_ag2_runtime_logger()
    assert runtime.start_session(chat_id="chat_123", workflow_name="my_workflow", enterprise_id="e1") is True
    try:
        assert runtime.current_session_id is not None
        chat(llm)
        totals = runtime.session_totals()
        assert totals is not None and totals["call_count"] == 1
    finally:
        runtime.stop_session()
    assert current_session_id() is None
    session = Session.objects.get()
    assert (session.chat_id, session.workflow_name, session.enterprise_id) == (
        "chat_123",
        "my_workflow",
        "e1",
    )
    assert session.status == "completed"
    assert session.call_count == 1


def test_missing_chat_id_gets_a_generated_one() -> None:
    with ag2_logging_session() as recorder:
        assert recorder is not None
    session = Session.objects.get()
    assert len(session.chat_id) == 32 and session.workflow_name == "" and session.enterprise_id == ""


def test_nested_session_is_a_child_and_costs_are_not_counted_twice(llm: FakeLLMServer) -> None:
    with ag2_logging_session("outer", "wf", "acme") as outer:
        chat(llm, "outer call [[marker:o]] [[terminate]]")
        with ag2_logging_session("inner", "wf-sub", "acme") as inner:
            chat(llm, "inner call [[marker:i]] [[terminate]]")
        assert current_session_id() == outer.session_id
    assert outer is not None and inner is not None
    parent = Session.objects.get(id=outer.session_id)
    child = Session.objects.get(id=inner.session_id)
    assert child.parent_id == parent.id
    assert parent.call_count == 1 and child.call_count == 1
    assert LLMCall.objects.get(session=child).request["messages"][-1]["content"].startswith("inner call")
    assert LLMCall.objects.get(session=parent).request["messages"][-1]["content"].startswith("outer call")


def test_live_totals_while_running(llm: FakeLLMServer) -> None:
    assert session_totals() is None
    with ag2_logging_session("c-live"):
        chat(llm)
        chat(llm)
        totals = session_totals()
    assert totals is not None
    assert totals["call_count"] == 2
    assert totals["prompt_tokens"] == 240 and totals["completion_tokens"] == 60
    assert totals["cached_tokens"] == 80 and totals["reasoning_tokens"] == 20
    assert totals["total_cost"] == str(Session.objects.get().total_cost.normalize())


def test_signals_carry_the_documented_arguments(llm: FakeLLMServer) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def started(sender: Any, **kwargs: Any) -> None:
        seen.append(("started", kwargs))

    def call(sender: Any, **kwargs: Any) -> None:
        seen.append(("call", kwargs))

    def finished(sender: Any, **kwargs: Any) -> None:
        seen.append(("finished", kwargs))

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("a broken receiver must not break the workflow")

    signals.session_started.connect(started)
    signals.llm_call_recorded.connect(call)
    signals.llm_call_recorded.connect(broken)
    signals.session_finished.connect(finished)
    try:
        with ag2_logging_session("c-sig", "wf", "acme") as recorder:
            chat(llm)
    finally:
        signals.session_started.disconnect(started)
        signals.llm_call_recorded.disconnect(call)
        signals.llm_call_recorded.disconnect(broken)
        signals.session_finished.disconnect(finished)
    assert recorder is not None
    assert [kind for kind, _ in seen] == ["started", "call", "finished"]
    assert seen[0][1] == {
        "signal": signals.session_started,
        "session_id": recorder.session_id,
        "chat_id": "c-sig",
        "workflow_name": "wf",
        "enterprise_id": "acme",
        "parent_id": None,
    }
    assert seen[1][1]["session_id"] == recorder.session_id
    assert seen[1][1]["call"]["prompt_tokens"] == 120
    assert seen[2][1]["status"] == "completed"
    assert seen[2][1]["totals"]["call_count"] == 1


def test_log_filter_adds_the_session_context(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("tests.project")
    flt = SessionContextFilter()
    log.addFilter(flt)
    try:
        with caplog.at_level(logging.INFO, logger="tests.project"):
            log.info("outside")
            with ag2_logging_session("c-log", "wf-log", "ent-log") as recorder:
                log.info("inside")
    finally:
        log.removeFilter(flt)
    # only this logger's records: the app's own warnings (a pipeline retry, say) may be captured too
    outside, inside = [r for r in caplog.records if r.name == "tests.project"]
    assert outside.session_id == "" and outside.enterprise_id == ""  # type: ignore[attr-defined]
    assert recorder is not None
    assert inside.session_id == str(recorder.session_id)  # type: ignore[attr-defined]
    assert (inside.chat_id, inside.workflow_name, inside.enterprise_id) == (  # type: ignore[attr-defined]
        "c-log",
        "wf-log",
        "ent-log",
    )


def test_runtime_log_records_start_and_stop_like_the_seed_system(logs_dir: Path) -> None:
    with ag2_logging_session("c-rt", "wf", "acme") as recorder:
        pass
    assert recorder is not None
    lines = (logs_dir / "ag2_runtime.log").read_text().splitlines()
    assert lines[0] == f"Started new session with Session ID: {recorder.session_id}"
    assert lines[1].startswith("# AG2 SESSION START: ")
    assert '"chat_id":"c-rt"' in lines[1] and '"enterprise_id":"acme"' in lines[1]
    assert lines[2].startswith("# AG2 SESSION END: ")
    assert '"status":"completed"' in lines[2] and '"call_count":0' in lines[2]


def test_concurrent_threads_never_mix(llm: FakeLLMServer) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with ag2_logging_session(f"thread-{n}", "wf", f"ent-{n}"):
                for _ in range(n + 1):
                    chat(llm, f"from thread [[marker:t{n}]] [[terminate]]")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for n in range(4):
        session = Session.objects.get(chat_id=f"thread-{n}")
        calls = list(session.llm_calls.all())
        assert len(calls) == n + 1 == session.call_count
        assert all(f"[[marker:t{n}]]" in c.response["choices"][0]["message"]["content"] for c in calls)


def test_logging_off_writes_nothing_and_installs_no_logger(
    settings: Any, logs_dir: Path, llm: FakeLLMServer
) -> None:
    classic.uninstall()
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "ENABLED": False}
    conf.reload()
    runtime = get_ag2_runtime_logger()
    with ag2_logging_session("c-off", "wf", "acme") as recorder:
        chat(llm)
        assert current_session_id() is None
    assert recorder is None
    assert runtime.start_session("c-off-2") is False
    runtime.stop_session()  # a no-op, never an error
    assert not runtime_logging.is_logging
    assert Session.objects.count() == 0 and LLMCall.objects.count() == 0
    assert not logs_dir.exists()


def test_session_ids_are_unique_and_rows_exist_when_with_returns() -> None:
    ids = set()
    for _ in range(3):
        with ag2_logging_session("same-chat") as recorder:
            assert recorder is not None
            assert Session.objects.filter(id=recorder.session_id, status="running").exists()
            ids.add(recorder.session_id)
    assert len(ids) == 3 and all(isinstance(i, uuid.UUID) for i in ids)
    assert Session.objects.filter(status="completed").count() == 3


def test_log_filter_knows_the_session_on_ag2_executor_threads(
    llm: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An async chat's LLM calls are logged from an executor thread without the ContextVar: the
    recorder's own warnings there (an unknown model) still carry the session's ids."""
    flt = SessionContextFilter()
    caplog.handler.addFilter(flt)  # on a handler, as the README shows: it sees every logger's records
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(llm, model="model-nobody-prices"))
    user = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)

    async def run() -> Any:
        async with ag2_logging_session("c-exec-log", "wf", "ent-exec") as recorder:
            await user.a_initiate_chat(assistant, message="hi [[terminate]]", max_turns=1, silent=True)
        return recorder

    try:
        with caplog.at_level(logging.WARNING, logger="ag2_logging"):
            recorder = asyncio.run(run())
    finally:
        caplog.handler.removeFilter(flt)
    flush()
    record = next(
        r
        for r in caplog.records
        if r.name.startswith("ag2_logging") and "model-nobody-prices" in r.getMessage()
    )
    assert record.threadName != "MainThread"  # logged on AG2's executor thread
    assert record.session_id == str(recorder.session_id)  # type: ignore[attr-defined]
    assert record.enterprise_id == "ent-exec"  # type: ignore[attr-defined]


def test_the_heartbeat_touches_running_sessions_only_and_loads_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The heartbeat runs on the database thread, which session start and end wait on: it is one
    UPDATE of the running rows, without importing the pipeline's recovery modules (that import
    paused the thread for tens of milliseconds at the first beat)."""
    import sys

    from ag2_logging.capture import db_thread
    from ag2_logging.capture.counters import stats
    from ag2_logging.pipeline import handoff

    def beats() -> dict[str, Any]:
        return dict(Session.objects.values_list("chat_id", "last_heartbeat_at"))

    with ag2_logging_session("c-beat-done", "wf", "acme") as done:
        assert done is not None
    with ag2_logging_session("c-beat-running", "wf", "acme") as running:
        assert running is not None
        flush()
        before, failures = beats(), stats.get("db_failures", 0)
        for name in (
            "ag2_logging.pipeline.recovery",
            "ag2_logging.pipeline.chain",
            "ag2_logging.pipeline.ingest",
        ):
            monkeypatch.setitem(sys.modules, name, None)  # importing any of them now raises
        db_thread.submit_db(handoff.beat, [running.session_id, done.session_id]).result(timeout=30)
        monkeypatch.undo()
        after = beats()
        assert stats.get("db_failures", 0) == failures  # the job raised nothing (it is logged, not raised)
    assert after["c-beat-running"] is not None
    assert before["c-beat-running"] is None or after["c-beat-running"] > before["c-beat-running"]
    assert after["c-beat-done"] == before["c-beat-done"]
