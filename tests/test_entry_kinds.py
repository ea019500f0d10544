"""Entry points, by kind (issue 15, items 17-21): every way of opening a session keeps it as long
as the work it wraps, and nothing routed to a session is dropped.

- late calls: a call routed to a session that has ended (an asyncio task or a thread that outlived
  the block, ``stop_session()`` from another thread) is recorded as unattributed, marked
  ``late_of``, and warned about once;
- Celery: ``@ag2_logged(join=True)`` gives the same ids eagerly and on a real worker; retries are
  siblings under the enqueuing session and a retried attempt ends ``retried``;
- generators, async generators and streamed responses keep their session to the last item;
- any callable decorated behaves the same with logging on and off;
- the live totals (``session_totals()``, the closing line) count what ingest counts.

The shared rows run in both virtualenvs (the recorder is driven the way the integrations drive
it: the session of the context, ``record_llm_call``); the rows marked ``classic`` run real classic
AG2 agents against the fake LLM server (``-m "not classic"`` leaves them out in ``.venv-ag2``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import AsyncClient, Client

from ag2_logging import ag2_logged, ag2_logging_session, current_session_id, flush, session_totals
from ag2_logging.capture import unattributed
from ag2_logging.capture.context import bindings, current_session
from ag2_logging.capture.journal import read_journal
from ag2_logging.capture.scope import get_ag2_runtime_logger, status_for
from ag2_logging.conf import conf
from ag2_logging.models import LLMCall, Session
from ag2_logging.pipeline import db as db_habits
from ag2_logging.pipeline.ingest import ingest_journal
from ag2_logging.testing import FakeLLMServer
from tests.conftest import expected_cost, llm_config
from tests.support import database_thread_held

pytestmark = pytest.mark.django_db(transaction=True)

LATE_WARNING = "after its session"


def record_one(marker: str = "m", **fields: Any) -> None:
    """What an integration does for one LLM call: record into the session of this context."""
    recorder = current_session.get()
    assert recorder is not None, "the call must be routed to a session (ended or not)"
    recorder.record_llm_call(
        **{
            "agent_name": "assistant",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "response": {"content": f"[[marker:{marker}]]"},
            **fields,
        }
    )


def classic_chat(server: FakeLLMServer, marker: str) -> None:
    """One real classic AG2 chat (one LLM call) in this context."""
    import autogen

    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server))
    user = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    user.initiate_chat(assistant, message=f"[[marker:{marker}]] [[terminate]]", max_turns=1, silent=True)


def journal_events(path: Path) -> list[dict[str, Any]]:
    return [line.event for line in read_journal(path) if line.event is not None]


def unattributed_events() -> list[dict[str, Any]]:
    path = unattributed.get_unattributed_recorder().journal_path
    return journal_events(path) if path.exists() else []


def late_lines() -> list[dict[str, Any]]:
    return [e for e in unattributed_events() if "late_of" in e]


# -- 17. a call made after its session ended ---------------------------------------------------------


def late_from_task(call: Callable[[], None]) -> uuid.UUID:
    """``asyncio.create_task`` inside ``async with``; the task calls after the block ended."""

    async def main() -> uuid.UUID:
        ended = asyncio.Event()

        async def late() -> None:
            await ended.wait()
            call()

        async with ag2_logging_session("c-late-task", "wf", "acme") as recorder:
            assert recorder is not None
            task = asyncio.create_task(late())
        ended.set()
        await task
        return recorder.session_id

    return asyncio.run(main())


def late_from_thread(call: Callable[[], None]) -> uuid.UUID:
    """A thread started through ``copy_context().run`` that outlives the block."""
    ended = threading.Event()

    def late() -> None:
        ended.wait()
        call()

    with ag2_logging_session("c-late-thread", "wf", "acme") as recorder:
        assert recorder is not None
        thread = threading.Thread(target=contextvars.copy_context().run, args=(late,))
        thread.start()
    ended.set()
    thread.join()
    return recorder.session_id


def late_after_stop_elsewhere(call: Callable[[], None]) -> uuid.UUID:
    """``start_session()`` in this thread, ``stop_session()`` from another, then a call here."""
    logger = get_ag2_runtime_logger()
    assert logger.start_session("c-late-stop", "wf", "acme")
    recorder = current_session.get()
    assert recorder is not None
    stopper = threading.Thread(target=logger.stop_session)
    stopper.start()
    stopper.join()
    try:
        # The context still names the ended session: it is not reported as current any more.
        assert current_session_id() is None and logger.current_session_id is None
        assert session_totals() is None
        call()
    finally:
        current_session.set(None)
    return recorder.session_id


LATE_WAYS = {"task": late_from_task, "thread": late_from_thread, "stop_elsewhere": late_after_stop_elsewhere}


def assert_late(session_id: uuid.UUID, calls: int, caplog: pytest.LogCaptureFixture) -> None:
    flush()
    session = Session.objects.get(id=session_id)
    assert (session.status, session.call_count) == ("completed", 0)
    lines = [e for e in late_lines() if e["type"] == "llm_call"]
    assert [e["late_of"] for e in lines] == [str(session_id)] * calls
    warnings = [r.getMessage() for r in caplog.records if LATE_WARNING in r.getMessage()]
    assert len(warnings) == 1 and str(session_id) in warnings[0]
    # The session's own journal ends with its closing line: nothing was appended after it.
    assert journal_events(Path(session.journal_path))[-1]["type"] == "session_end"
    result = ingest_journal(unattributed.get_unattributed_recorder().journal_path)
    assert result.session_id is None
    assert LLMCall.objects.unattributed().count() == calls
    assert LLMCall.objects.filter(session__isnull=False).count() == 0


@pytest.mark.parametrize("way", LATE_WAYS)
def test_a_late_call_is_unattributed_and_warned_once(way: str, caplog: pytest.LogCaptureFixture) -> None:
    def two_calls() -> None:
        record_one("late1")
        record_one("late2")

    with caplog.at_level("WARNING", logger="ag2_logging"):
        session_id = LATE_WAYS[way](two_calls)
    assert_late(session_id, 2, caplog)
    call = LLMCall.objects.unattributed().order_by("seq").first()
    assert call is not None
    assert (call.prompt_tokens, call.completion_tokens, call.cost) == (
        100,
        20,
        expected_cost("gpt-4o-mini", 100, 20, 0, 0),
    )


@pytest.mark.classic
@pytest.mark.parametrize("way", LATE_WAYS)
def test_a_late_classic_chat_is_unattributed_and_warned_once(
    way: str, llm: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="ag2_logging"):
        session_id = LATE_WAYS[way](lambda: classic_chat(llm, f"late-{way}"))
    assert [r.status for r in llm.served] == [200]  # the server served it
    assert_late(session_id, 1, caplog)
    call = LLMCall.objects.unattributed().get()
    assert f"[[marker:late-{way}]]" in call.response["choices"][0]["message"]["content"]
    assert len(bindings) == 0  # the late call bound no agent to the ended session


def test_late_tool_calls_and_agent_events_are_not_dropped_either() -> None:
    with ag2_logging_session("c-late-events", "wf", "acme") as recorder:
        assert recorder is not None
    recorder.record_tool_call(agent_name="a", name="lookup", arguments={"q": 1}, result="r")
    recorder.record_agent_event(agent_name="a", name="new_agent")
    assert [(e["type"], e["late_of"]) for e in late_lines()] == [
        ("tool_call", str(recorder.session_id)),
        ("agent_event", str(recorder.session_id)),
    ]
    closing = journal_events(recorder.journal_path)[-1]
    assert closing["type"] == "session_end"
    assert (closing["totals"]["tool_calls"], closing["totals"]["agent_events"]) == (0, 0)
    assert recorder.totals.dropped_events == 0


def test_binding_an_object_to_an_ended_session_does_nothing() -> None:
    class Agent:
        pass

    agent = Agent()
    with ag2_logging_session("c-bind", "wf", "acme") as recorder:
        assert recorder is not None
        bindings.bind(agent, recorder)
        assert bindings.lookup(agent) is recorder
    assert bindings.lookup(agent) is None
    bindings.bind(agent, recorder)  # a late call in a context that still names it
    assert bindings.lookup(agent) is None and len(bindings) == 0


# -- how a block's end maps to a status ---------------------------------------------------------------


def _celery_retry() -> BaseException:
    from celery.exceptions import Retry

    return Retry("again", None)


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda: None, "completed"),
        (lambda: ValueError("bad"), "failed"),
        (lambda: asyncio.CancelledError(), "cancelled"),
        (lambda: KeyboardInterrupt(), "cancelled"),
        (lambda: GeneratorExit(), "cancelled"),
        (_celery_retry, "retried"),
    ],
)
def test_status_for_each_ending(make: Callable[[], BaseException | None], status: str) -> None:
    exc = make()
    assert status_for(exc)[0] == status
    assert status_for(exc)[1] == ("" if exc is None else f"{type(exc).__name__}: {exc}")


def test_cancelled_while_the_row_is_written_still_ends_the_session() -> None:
    """``async with`` calls no ``__aexit__`` when ``__aenter__`` is cancelled: the session must end
    anyway. The database thread is held so the cancellation lands while the row is pending."""

    async def main(release: threading.Event) -> None:
        entered = asyncio.Event()

        async def body() -> None:
            entered.set()
            async with ag2_logging_session("c-cancel-enter", "wf", "acme"):
                await asyncio.sleep(3600)

        task = asyncio.create_task(body())
        await entered.wait()
        await asyncio.sleep(0)  # the task is now awaiting its row
        task.cancel()
        await asyncio.sleep(0)  # delivered: the task now waits for its closing row
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert current_session.get() is None

    with database_thread_held() as release:
        asyncio.run(main(release))
    flush()
    assert Session.objects.get().status == "cancelled"
    assert db_habits._callers == 0  # the start row was written, not cancelled and left counted


# -- 21. live totals count what ingest counts -----------------------------------------------------------

#: (fields of one call, whether it failed). Tokens and costs computed by hand below.
CALLS: list[dict[str, Any]] = [
    {"prompt_tokens": 100, "completion_tokens": 20},
    {"prompt_tokens": 40, "completion_tokens": 0, "error": "APIError: 500 upstream"},
    {"prompt_tokens": 30, "completion_tokens": 10, "retries": 2},
    {"prompt_tokens": 0, "completion_tokens": 0, "error": "RateLimitError: 429", "retries": 1},
    {"prompt_tokens": 10, "completion_tokens": 5, "model": "no-such-model-xyz", "provider": "nowhere"},
    {"prompt_tokens": 200, "completion_tokens": 50, "cached_tokens": 120, "reasoning_tokens": 30},
]


@pytest.mark.parametrize("n", range(1, len(CALLS) + 1))
def test_live_totals_and_the_closing_line_count_errors_like_ingest(n: int) -> None:
    calls = CALLS[:n]
    with ag2_logging_session("c-totals", "wf", "acme") as recorder:
        assert recorder is not None
        for fields in calls:
            record_one(**fields)
        recorder.record_tool_call(agent_name="a", name="t", arguments={}, result="x")
        live = session_totals()
    assert live is not None
    priced = [c for c in calls if c.get("model", "gpt-4o-mini") == "gpt-4o-mini" and not c.get("error")]
    expected = {
        "call_count": n,
        "error_count": sum(1 for c in calls if c.get("error")),
        "retry_count": sum(c.get("retries", 0) for c in calls),
        "unpriced_calls": sum(1 for c in calls if c.get("model") == "no-such-model-xyz"),
        "prompt_tokens": sum(c["prompt_tokens"] for c in calls),
        "completion_tokens": sum(c["completion_tokens"] for c in calls),
        "total_tokens": sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls),
        # OpenAI's convention: cached inside the prompt, reasoning inside the completion.
        "cached_tokens": sum(c.get("cached_tokens", 0) for c in calls),
        "reasoning_tokens": sum(c.get("reasoning_tokens", 0) for c in calls),
        "tool_calls": 1,
    }
    cost = sum(
        (
            expected_cost(
                "gpt-4o-mini",
                c["prompt_tokens"],
                c["completion_tokens"],
                c.get("cached_tokens", 0),
                c.get("reasoning_tokens", 0),
            )
            for c in priced
        ),
        Decimal(0),
    )
    closing = journal_events(recorder.journal_path)[-1]["totals"]
    for totals in (live, closing):
        assert {k: totals[k] for k in expected} == expected
        assert Decimal(totals["total_cost"]) == cost
    flush()
    row = Session.objects.get()
    assert {k: getattr(row, k) for k in expected if k != "tool_calls"} == {
        k: v for k, v in expected.items() if k != "tool_calls"
    }
    assert row.error_count == live["error_count"]


def test_an_object_bound_to_two_live_sessions_attributes_nothing_until_one_ends() -> None:
    class Agent:
        pass

    agent = Agent()
    with ag2_logging_session("c-a", "wf", "acme") as first:
        assert first is not None
        bindings.bind(agent, first)
        with ag2_logging_session("c-b", "wf", "acme") as second:
            assert second is not None
            bindings.bind(agent, second)
            assert bindings.lookup(agent) is None  # ambiguous: neither session gets its calls
        assert bindings.lookup(agent) is first  # the other one ended
    assert bindings.lookup(agent) is None


def test_stacked_start_session_calls_stop_in_reverse_order() -> None:
    logger = get_ag2_runtime_logger()
    logger.stop_session()  # nothing started: nothing happens
    assert logger.start_session("c-outer", "wf", "acme") and logger.start_session("c-inner", "wf", "acme")
    inner = logger.current_session_id
    logger.stop_session()
    outer = logger.current_session_id
    assert outer is not None and outer != inner
    logger.stop_session()
    assert logger.current_session_id is None and current_session.get() is None
    flush()
    rows = {s.chat_id: s for s in Session.objects.all()}
    assert (rows["c-inner"].id, rows["c-outer"].id) == (inner, outer)
    assert rows["c-inner"].parent_id == outer
    assert {s.status for s in rows.values()} == {"completed"}


def test_live_session_finds_a_running_session_by_id_only_while_it_runs() -> None:
    from ag2_logging.capture.scope import live_session

    with ag2_logging_session("c-live", "wf", "acme") as recorder:
        assert recorder is not None
        assert live_session(recorder.session_id) is recorder
        assert live_session(str(recorder.session_id)) is recorder
        assert live_session("not-a-uuid") is None
    assert live_session(recorder.session_id) is None


# -- 18. @ag2_logged(join=True): the same ids eagerly and on a worker ----------------------------------

PARENT = ("c4a", "parent_wf", "ent-4a")


def enqueue_eagerly(how: str) -> None:
    """Enqueue ``tests.joined`` (or the retrying task) the way ``how`` says; the suite's Celery app
    runs tasks eagerly (``apply()``: no message, so no ``before_task_publish``)."""
    from celery import chord, group

    from tests import tasks

    if how == "delay":
        tasks.joined.delay()
    elif how == "apply_async":
        tasks.joined.apply_async(countdown=0)
    elif how == "group":
        group(tasks.joined.s(), tasks.joined.s()).delay()
    elif how == "chord":
        chord([tasks.joined.s(), tasks.joined.s()])(tasks.joined.s())
    elif how == "retries":
        tasks.joined_retrying.delay(2)


#: How many sessions each way opens under the parent, and their statuses.
EXPECTED = {
    "delay": ["completed"],
    "apply_async": ["completed"],
    "group": ["completed"] * 2,
    "chord": ["completed"] * 3,
    "retries": ["completed", "retried", "retried"],
}


def assert_children(parent_id: uuid.UUID, statuses: list[str]) -> None:
    children = list(Session.objects.filter(parent_id=parent_id))
    assert sorted(c.status for c in children) == sorted(statuses)
    for child in children:
        assert (child.chat_id, child.workflow_name, child.enterprise_id) == PARENT
    # Attempts are siblings: no session is the child of another task's session.
    assert not Session.objects.filter(parent__parent_id=parent_id).exists()


@pytest.fixture
def eager_retries() -> Iterator[None]:
    """Eager retries run in place of raising ``Retry`` (``task_eager_propagates`` re-raises it)."""
    from tests.celery_app import app

    before = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = before


@pytest.mark.parametrize("how", EXPECTED)
@pytest.mark.usefixtures("eager_retries")
def test_join_eagerly_gets_the_enqueuing_sessions_ids(how: str) -> None:
    with ag2_logging_session(*PARENT) as parent:
        assert parent is not None
        enqueue_eagerly(how)
    flush()
    assert_children(parent.session_id, EXPECTED[how])


def test_join_outside_any_session_opens_a_session_of_its_own() -> None:
    from tests import tasks

    result = tasks.joined.delay().get()
    session = Session.objects.get()
    assert (result["session_id"], result["parent_id"], session.workflow_name) == (
        str(session.id),
        None,
        "joined",
    )


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[str]:
    from tests.support import celery_worker

    with celery_worker(tmp_path, concurrency=2) as (queue, _log):
        yield queue


def test_join_on_a_real_worker_gets_the_same_ids(worker: str) -> None:
    from celery import Celery, group

    from tests.support import BROKER_URL, wait_for

    sender = Celery(broker=BROKER_URL, set_as_current=False)
    with ag2_logging_session(*PARENT) as parent:
        assert parent is not None
        sender.send_task("tests.joined", queue=worker)
        group(sender.signature("tests.joined", queue=worker) for _ in range(2)).apply_async()
        sender.send_task("tests.joined_retrying", args=(2,), queue=worker)
    statuses = ["completed"] * 3 + ["completed", "retried", "retried"]

    def done() -> bool:
        return Session.objects.filter(parent_id=parent.session_id).exclude(status="running").count() == 6

    wait_for(done, what="six task sessions under the enqueuing session")
    assert_children(parent.session_id, statuses)


# -- 19. generators, async generators and streamed responses keep their session -------------------------


@ag2_logged(workflow_name="gen", enterprise_id="acme")
def produce(n: int, fail_at: int = -1) -> Iterator[uuid.UUID | None]:
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("generator exploded")
        record_one(f"g{i}")
        yield current_session_id()
    return None


@ag2_logged(workflow_name="agen", enterprise_id="acme")
async def aproduce(n: int, fail_at: int = -1) -> AsyncIterator[uuid.UUID | None]:
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("generator exploded")
        await asyncio.sleep(0)
        record_one(f"a{i}")
        yield current_session_id()


def consume(n: int, take: int, fail_at: int) -> list[uuid.UUID | None]:
    seen: list[uuid.UUID | None] = []
    gen = produce(n, fail_at)
    assert Session.objects.count() == 0  # nothing opens before the first item
    try:
        for sid in gen:
            assert current_session_id() is None  # the consumer's code is not in the session
            seen.append(sid)
            if len(seen) == take:
                break
    except RuntimeError:
        pass
    gen.close()
    return seen


def aconsume(n: int, take: int, fail_at: int) -> list[uuid.UUID | None]:
    async def main() -> list[uuid.UUID | None]:
        seen: list[uuid.UUID | None] = []
        agen = aproduce(n, fail_at)
        try:
            async for sid in agen:
                assert current_session_id() is None
                seen.append(sid)
                if len(seen) == take:
                    break
        except RuntimeError:
            pass
        await agen.aclose()  # type: ignore[attr-defined]
        return seen

    return asyncio.run(main())


@pytest.mark.parametrize("consumer", [consume, aconsume], ids=["generator", "async_generator"])
@pytest.mark.parametrize(
    ("take", "fail_at", "status", "calls"),
    [(99, -1, "completed", 3), (1, -1, "cancelled", 1), (99, 2, "failed", 2)],
    ids=["exhausted", "closed_early", "raises"],
)
def test_a_generator_is_one_session_from_first_to_last_item(
    consumer: Callable[[int, int, int], list[uuid.UUID | None]],
    take: int,
    fail_at: int,
    status: str,
    calls: int,
) -> None:
    assert inspect.isgeneratorfunction(produce) and inspect.isasyncgenfunction(aproduce)
    seen = consumer(3, take, fail_at)
    flush()
    session = Session.objects.get()
    assert seen == [session.id] * min(take, calls)
    assert (session.status, session.call_count, session.enterprise_id) == (status, calls, "acme")
    assert session.prompt_tokens == 100 * calls  # every item's call is the session's
    assert unattributed_events() == []


def test_a_generator_forwards_send_throw_and_its_return_value() -> None:
    @ag2_logged(workflow_name="echo")
    def echo() -> Iterator[Any]:
        got = yield "ready"
        while got != "stop":
            try:
                got = yield (got, current_session_id())
            except KeyError as exc:
                got = yield f"caught {exc.args[0]}"
        return "done"

    gen = echo()
    assert next(gen) == "ready"
    value, sid = gen.send("a")
    assert value == "a" and sid is not None
    assert gen.throw(KeyError("k")) == "caught k"
    with pytest.raises(StopIteration) as stop:
        gen.send("stop")
    assert stop.value.value == "done"
    flush()
    assert Session.objects.get(id=sid).status == "completed"


@pytest.mark.classic
def test_a_generator_running_classic_chats_keeps_them(llm: FakeLLMServer) -> None:
    @ag2_logged(workflow_name="gen_chat")
    def answers(n: int) -> Iterator[int]:
        for i in range(n):
            classic_chat(llm, f"gen{i}")
            yield i

    assert list(answers(2)) == [0, 1]
    flush()
    session = Session.objects.get()
    assert (session.status, session.call_count) == ("completed", 2)
    assert LLMCall.objects.filter(session=session).count() == 2
    assert LLMCall.objects.unattributed().count() == 0


STREAMS = {  # url -> the workflow of the session that must hold the stream's work
    "/mw/stream/": "mw_stream",
    "/mw/astream/": "mw_astream",
    "/deco/stream/": "deco_stream",
    "/deco/astream/": "deco_astream",
}


def fetch_stream(server: str, url: str) -> tuple[int, bytes]:
    """The whole body of a streamed response, through the WSGI or the ASGI test client."""
    if server == "wsgi":
        response = Client(raise_request_exception=False).get(url)
        try:
            return response.status_code, b"".join(response)  # as a WSGI server iterates it
        except RuntimeError:
            return 500, b""
        finally:
            response.close()

    async def main() -> tuple[int, bytes]:
        response = await AsyncClient(raise_request_exception=False).get(url)
        body = b""
        try:
            if response.is_async:  # type: ignore[attr-defined]
                async for part in response.streaming_content:  # type: ignore[attr-defined]
                    body += part
            else:
                body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
        except RuntimeError:
            return 500, body
        finally:
            await asyncio.to_thread(response.close)
        return response.status_code, body

    return asyncio.run(main())


@pytest.mark.filterwarnings("ignore::Warning")  # Django warns when a server of the other kind streams
@pytest.mark.parametrize("server", ["wsgi", "asgi"])
@pytest.mark.parametrize("url", STREAMS)
@pytest.mark.parametrize("boom", [False, True], ids=["streams", "raises"])
def test_a_streamed_body_runs_inside_the_session(server: str, url: str, boom: bool) -> None:
    status, body = fetch_stream(server, url + ("?boom=1" if boom else ""))
    flush()
    session = Session.objects.get(workflow_name=STREAMS[url])
    assert session.status == ("failed" if boom else "completed")
    if not boom:
        assert status == 200 and body.startswith(b"start ")
        assert json.loads(body[len(b"start ") :])["session_id"] == str(session.id)


@pytest.mark.classic
@pytest.mark.filterwarnings("ignore::Warning")
@pytest.mark.parametrize("server", ["wsgi", "asgi"])
@pytest.mark.parametrize("url", STREAMS)
def test_an_answer_streamed_with_classic_ag2_is_the_requests(
    server: str, url: str, llm: FakeLLMServer
) -> None:
    status, _body = fetch_stream(server, f"{url}?llm={llm.base_url}&marker=s{server}")
    assert status == 200
    flush()
    session = Session.objects.get(workflow_name=STREAMS[url])
    assert (session.status, session.call_count) == ("completed", 1)
    call = LLMCall.objects.get()
    assert call.session_id == session.id
    assert f"[[marker:s{server}]]" in call.response["choices"][0]["message"]["content"]


def test_a_stream_closed_early_cancels_its_session() -> None:
    response = Client().get("/mw/stream/")
    iterator = iter(response.streaming_content)  # type: ignore[attr-defined]
    assert next(iterator) == b"start "
    response.close()  # the server closes the stream: the client went away
    flush()
    assert Session.objects.get(workflow_name="mw_stream").status == "cancelled"


# -- 20. any callable decorated behaves the same with logging on and off --------------------------------


def target(x: int, enterprise_id: str = "") -> tuple[int, uuid.UUID | None]:
    return x * 2, current_session_id()


async def atarget(x: int, enterprise_id: str = "") -> tuple[int, uuid.UUID | None]:
    await asyncio.sleep(0)
    return x * 2, current_session_id()


def gtarget(x: int, enterprise_id: str = "") -> Iterator[tuple[int, uuid.UUID | None]]:
    yield x * 2, current_session_id()


async def agtarget(x: int, enterprise_id: str = "") -> AsyncIterator[tuple[int, uuid.UUID | None]]:
    yield x * 2, current_session_id()


class Holder:
    @ag2_logged
    def method(self, x: int, enterprise_id: str = "") -> tuple[int, uuid.UUID | None]:
        return x * 2, current_session_id()

    @ag2_logged  # above the descriptor
    @classmethod
    def cm_above(cls, x: int, enterprise_id: str = "") -> tuple[int, uuid.UUID | None]:
        return x * 2, current_session_id()

    @classmethod
    @ag2_logged  # below it
    def cm_below(cls, x: int, enterprise_id: str = "") -> tuple[int, uuid.UUID | None]:
        return x * 2, current_session_id()

    @ag2_logged
    @staticmethod
    def sm(x: int, enterprise_id: str = "") -> tuple[int, uuid.UUID | None]:
        return x * 2, current_session_id()


class CallableTarget:
    def __call__(self, x: int, enterprise_id: str = "") -> tuple[int, uuid.UUID | None]:
        return x * 2, current_session_id()


class AsyncCallableTarget:
    async def __call__(self, x: int, enterprise_id: str = "") -> tuple[int, uuid.UUID | None]:
        return x * 2, current_session_id()


def outcome(result: Any) -> tuple[str, Any]:
    """``(kind of what the call gave, its value)``, running coroutines and generators to the end."""

    async def drain(agen: Any) -> list[Any]:
        return [item async for item in agen]

    if inspect.iscoroutine(result):
        return "coroutine", asyncio.run(result)
    if inspect.isasyncgen(result):
        return "async generator", asyncio.run(drain(result))
    if inspect.isgenerator(result):
        return "generator", list(result)
    return "value", result


#: name -> (the undecorated callable, the decorated one, how to call them, the expected workflow).
CALLABLES: dict[str, tuple[Any, Any, Callable[[Any], Any], str]] = {
    "function": (target, ag2_logged(target), lambda f: f(3, enterprise_id="e"), "target"),
    "positional_id": (target, ag2_logged(target), lambda f: f(3, "e"), "target"),
    "coroutine": (atarget, ag2_logged(atarget), lambda f: f(3, enterprise_id="e"), "atarget"),
    "generator": (gtarget, ag2_logged(gtarget), lambda f: f(3, enterprise_id="e"), "gtarget"),
    "async_generator": (agtarget, ag2_logged(agtarget), lambda f: f(3, enterprise_id="e"), "agtarget"),
    "method": (None, Holder().method, lambda f: f(3, enterprise_id="e"), "Holder.method"),
    "classmethod_above": (None, Holder.cm_above, lambda f: f(3, enterprise_id="e"), "Holder.cm_above"),
    "classmethod_below": (None, Holder.cm_below, lambda f: f(3, enterprise_id="e"), "Holder.cm_below"),
    "staticmethod": (None, Holder.sm, lambda f: f(3, "e"), "Holder.sm"),
    "partial_keyword": (
        functools.partial(target, enterprise_id="e"),
        ag2_logged(functools.partial(target, enterprise_id="e")),
        lambda f: f(3),
        "target",
    ),
    "partial_positional": (
        functools.partial(target, 3, "e"),
        ag2_logged(functools.partial(target, 3, "e")),
        lambda f: f(),
        "target",
    ),
    "partial_with_workflow": (
        functools.partial(target, enterprise_id="e"),
        ag2_logged(workflow_name="named")(functools.partial(target, enterprise_id="e")),
        lambda f: f(3),
        "named",
    ),
    "partial_of_partial": (
        functools.partial(functools.partial(target, enterprise_id="e"), 3),
        ag2_logged(functools.partial(functools.partial(target, enterprise_id="e"), 3)),
        lambda f: f(),
        "target",
    ),
    "partial_coroutine": (
        functools.partial(atarget, enterprise_id="e"),
        ag2_logged(functools.partial(atarget, enterprise_id="e")),
        lambda f: f(3),
        "atarget",
    ),
    "callable_object": (
        CallableTarget(),
        ag2_logged(CallableTarget()),
        lambda f: f(3, "e"),
        "CallableTarget",
    ),
    "async_callable_object": (
        AsyncCallableTarget(),
        ag2_logged(AsyncCallableTarget()),
        lambda f: f(3, enterprise_id="e"),
        "AsyncCallableTarget",
    ),
}


def _session_of(value: Any) -> uuid.UUID | None:
    first = value[0] if isinstance(value, list) else value
    return first[1] if isinstance(first, tuple) else None


def _strip(value: Any) -> Any:
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value[0]


@pytest.mark.parametrize("name", CALLABLES)
def test_any_callable_behaves_the_same_with_logging_on_and_off(name: str, settings: Any) -> None:
    plain, decorated, call, workflow = CALLABLES[name]
    kind_on, value_on = outcome(call(decorated))
    flush()
    session = Session.objects.get()
    assert _session_of(value_on) == session.id
    assert session.workflow_name == workflow
    assert session.enterprise_id == "e"  # from the call, or bound in the partial
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "ENABLED": False}
    conf.reload()
    kind_off, value_off = outcome(call(decorated))
    assert _session_of(value_off) is None
    assert (kind_on, _strip(value_on)) == (kind_off, _strip(value_off))
    if plain is not None:
        kind_plain, value_plain = outcome(call(plain))
        assert (kind_off, _strip(value_off)) == (kind_plain, _strip(value_plain))
    assert Session.objects.count() == 1
