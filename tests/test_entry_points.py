"""@ag2_logged on every target, the middleware in sync (WSGI) and async (ASGI) stacks, nesting."""

from __future__ import annotations

import asyncio
import functools
import inspect
import uuid
from typing import Any

import autogen
import pytest
from django.test import AsyncClient, Client, RequestFactory

from ag2_logging import ag2_logged, ag2_logging_session, current_session_id, flush
from ag2_logging.models import LLMCall, Session
from ag2_logging.testing import FakeLLMServer
from tests import tasks
from tests.conftest import llm_config
from tests.support import database_thread_held

pytestmark = pytest.mark.django_db(transaction=True)


# -- the decorator on plain functions -------------------------------------------------------------


def test_bare_decorator_on_a_sync_function() -> None:
    @ag2_logged
    def work(x: int, *, enterprise_id: str = "") -> uuid.UUID | None:
        """Doc."""
        return current_session_id()

    session_id = work(1, enterprise_id="acme")
    session = Session.objects.get()
    assert session.id == session_id
    assert session.enterprise_id == "acme"
    assert session.workflow_name.endswith("work")
    assert session.status == "completed"
    assert len(session.chat_id) == 32  # generated
    assert work.__name__ == "work" and work.__doc__ == "Doc."
    assert inspect.signature(work) == inspect.signature(work.__wrapped__)  # type: ignore[attr-defined]


def test_async_function_stays_a_coroutine_function() -> None:
    @ag2_logged(workflow_name="wf", enterprise_id="e1", chat_id="c1")
    async def work() -> uuid.UUID | None:
        await asyncio.sleep(0)
        return current_session_id()

    assert inspect.iscoroutinefunction(work)
    session_id = asyncio.run(work())
    session = Session.objects.get()
    assert (session.id, session.workflow_name, session.enterprise_id, session.chat_id) == (
        session_id,
        "wf",
        "e1",
        "c1",
    )


def test_ids_from_callables_and_kwargs() -> None:
    @ag2_logged(
        workflow_name=lambda order, **kw: f"order-{order}", enterprise_id=lambda order, **kw: "from-callable"
    )
    def work(order: int, chat_id: str) -> None:
        return None

    work(7, chat_id="chat-kw")
    session = Session.objects.get()
    assert (session.workflow_name, session.enterprise_id, session.chat_id) == (
        "order-7",
        "from-callable",
        "chat-kw",
    )


def test_exception_marks_the_session_failed_and_propagates() -> None:
    @ag2_logged
    def work() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        work()
    assert Session.objects.get().status == "failed"


def test_decorator_keeps_no_state_between_calls() -> None:
    @ag2_logged(workflow_name="wf")
    def work(chat_id: str) -> uuid.UUID | None:
        return current_session_id()

    first, second = work(chat_id="a"), work(chat_id="b")
    assert first != second
    assert sorted(Session.objects.values_list("chat_id", flat=True)) == ["a", "b"]


def test_headers_are_an_id_source() -> None:
    @ag2_logged
    def view(request: Any) -> uuid.UUID | None:
        return current_session_id()

    request = RequestFactory().get("/", headers={"X-Enterprise-ID": "hdr-ent", "X-Chat-ID": "hdr-chat"})
    view(request)
    session = Session.objects.get()
    assert (session.enterprise_id, session.chat_id) == ("hdr-ent", "hdr-chat")


def test_header_names_are_configurable(settings: Any) -> None:
    from ag2_logging.conf import conf

    settings.AG2_LOGGING = {
        **settings.AG2_LOGGING,
        "ENTERPRISE_HEADER": "X-Tenant",
        "CHAT_HEADER": "X-Conversation",
    }
    conf.reload()

    @ag2_logged
    def view(request: Any) -> None:
        return None

    view(RequestFactory().get("/", headers={"X-Tenant": "t1", "X-Conversation": "conv"}))
    session = Session.objects.get()
    assert (session.enterprise_id, session.chat_id) == ("t1", "conv")


# -- views through Django's test clients ----------------------------------------------------------


@pytest.mark.parametrize(("url", "workflow"), [("/sync/", "sync_view"), ("/class/", "class_view")])
def test_sync_and_class_based_views(url: str, workflow: str) -> None:
    response = Client().get(url, headers={"X-Enterprise-ID": "acme", "X-Chat-ID": "chat-v"})
    body = response.json()
    session = Session.objects.get()
    assert body["session_id"] == str(session.id)
    assert (session.workflow_name, session.enterprise_id, session.chat_id, session.status) == (
        workflow,
        "acme",
        "chat-v",
        "completed",
    )


def test_async_view_under_asgi() -> None:
    async def call() -> Any:
        return await AsyncClient().get("/async/", headers={"X-Enterprise-ID": "acme"})

    response = asyncio.run(call())
    flush()
    session = Session.objects.get()
    assert response.json()["session_id"] == str(session.id)
    assert (session.workflow_name, session.enterprise_id, session.status) == (
        "async_view",
        "acme",
        "completed",
    )


# -- Celery tasks (eager here; the stress test runs a real worker) --------------------------------


def test_celery_task_function() -> None:
    result = tasks.plain_task.delay("acme", chat_id="celery-chat").get()
    session = Session.objects.get()
    assert result["session_id"] == str(session.id)
    assert (session.enterprise_id, session.chat_id) == ("acme", "celery-chat")
    assert session.workflow_name.endswith("plain_task")


def test_bound_celery_task() -> None:
    result = tasks.bound_task.delay("globex").get()
    assert result["task_name"] == "tests.bound_task"
    session = Session.objects.get()
    assert (session.workflow_name, session.enterprise_id) == ("bound", "globex")


def test_task_joins_the_enqueuing_session_from_headers() -> None:
    header = {
        "session_id": str(uuid.uuid4()),
        "chat_id": "parent-chat",
        "workflow_name": "p",
        "enterprise_id": "acme",
    }
    Session.objects.create(id=header["session_id"], chat_id="parent-chat", started_at="2026-01-01T00:00:00Z")
    result = tasks.joining_task.apply_async(headers={"ag2_session": header}).get()
    assert result["parent_id"] == header["session_id"]
    child = Session.objects.get(id=result["session_id"])
    assert (child.chat_id, child.enterprise_id, child.workflow_name) == ("parent-chat", "acme", "p")
    assert str(child.parent_id) == header["session_id"]


def test_publishing_inside_a_session_adds_the_header() -> None:
    from ag2_logging.decorators import add_session_header

    headers: dict[str, Any] = {}
    add_session_header(headers=headers)
    assert headers == {}
    with ag2_logging_session("c-pub", "wf", "acme") as recorder:
        add_session_header(headers=headers)
    assert recorder is not None
    assert headers["ag2_session"] == {
        "session_id": str(recorder.session_id),
        "chat_id": "c-pub",
        "workflow_name": "wf",
        "enterprise_id": "acme",
    }


# -- the middleware -------------------------------------------------------------------------------


def test_middleware_sync_opted_in_view() -> None:
    body = Client().get("/mw/sync/", headers={"X-Enterprise-ID": "acme", "X-Chat-ID": "c-mw"}).json()
    session = Session.objects.get()
    assert body["session_id"] == str(session.id)
    assert (session.workflow_name, session.enterprise_id, session.chat_id, session.status) == (
        "mw_sync",
        "acme",
        "c-mw",
        "completed",
    )


def test_middleware_leaves_other_views_alone() -> None:
    assert Client().get("/plain/").json() == {"session_id": None}
    assert Session.objects.count() == 0


def test_middleware_paths_setting() -> None:
    body = Client().get("/api/plain/").json()
    session = Session.objects.get()
    assert body["session_id"] == str(session.id)


def test_middleware_5xx_response_fails_the_session() -> None:
    assert Client().get("/mw/sync/?status=503").status_code == 503
    session = Session.objects.get()
    assert (session.status, session.error) == ("failed", "HTTP 503")


def test_middleware_exception_fails_the_session() -> None:
    response = Client(raise_request_exception=False).get("/mw/sync/?boom=1")
    assert response.status_code == 500
    session = Session.objects.get()
    assert session.status == "failed"
    assert session.error == "RuntimeError: view exploded"


def test_middleware_async_stack() -> None:
    async def call(url: str) -> Any:
        return await AsyncClient(raise_request_exception=False).get(
            url, headers={"X-Enterprise-ID": "async-ent"}
        )

    ok = asyncio.run(call("/mw/async/"))
    boom = asyncio.run(call("/mw/async/?boom=1"))
    flush()
    assert boom.status_code == 500
    by_status = {s.status: s for s in Session.objects.all()}
    assert set(by_status) == {"completed", "failed"}
    assert ok.json()["session_id"] == str(by_status["completed"].id)
    assert by_status["completed"].workflow_name == "mw-async"  # the URL name
    assert by_status["failed"].error == "RuntimeError: async view exploded"


def test_middleware_session_and_decorated_view_nest() -> None:
    body = Client().get("/mw/nested/").json()
    outer = Session.objects.get(workflow_name="mw_nested")
    inner = Session.objects.get(workflow_name="inner")
    assert body["session_id"] == str(inner.id)
    assert inner.parent_id == outer.id


# -- work AG2 runs in other threads ----------------------------------------------------------------


def _agents(server: FakeLLMServer) -> tuple[Any, Any]:
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server))
    user = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    return assistant, user


def test_to_thread_and_run_in_executor_are_attributed(llm: FakeLLMServer) -> None:
    """``to_thread`` copies the context; ``run_in_executor`` does not, and the agents bound to the
    session (they were built inside it) attribute those calls."""

    async def session(n: int) -> uuid.UUID:
        async with ag2_logging_session(f"exec-{n}", "wf", "acme") as recorder:
            assert recorder is not None
            assistant, user = _agents(llm)
            loop = asyncio.get_running_loop()
            await asyncio.to_thread(
                user.initiate_chat,
                assistant,
                message=f"[[marker:th{n}]] [[terminate]]",
                max_turns=1,
                silent=True,
            )
            await loop.run_in_executor(
                None,
                functools.partial(
                    user.initiate_chat,
                    assistant,
                    message=f"[[marker:ex{n}]] [[terminate]]",
                    max_turns=1,
                    silent=True,
                ),
            )
            return recorder.session_id

    async def main() -> list[uuid.UUID]:
        return list(await asyncio.gather(*(session(n) for n in range(3))))

    ids = asyncio.run(main())
    flush()
    assert LLMCall.objects.unattributed().count() == 0
    for n, session_id in enumerate(ids):
        contents = [
            c.response["choices"][0]["message"]["content"]
            for c in LLMCall.objects.filter(session_id=session_id)
        ]
        assert len(contents) == 2
        assert any(f"[[marker:th{n}]]" in c for c in contents)
        assert any(f"[[marker:ex{n}]]" in c for c in contents)


def test_a_request_cancelled_while_its_row_is_written_still_ends_its_session() -> None:
    """An ASGI request cancelled (the client went away) while the middleware waits for the
    session's first row: the rows are still written on the database thread and the session
    ends cancelled; the cancelled wait withdraws nothing from the database thread."""
    import threading

    from ag2_logging.middleware import Ag2LoggingMiddleware
    from ag2_logging.pipeline import db as db_habits

    async def view(request: Any) -> Any:
        await asyncio.sleep(3600)

    middleware = Ag2LoggingMiddleware(view)
    request = RequestFactory().get("/mw/async/", headers={"X-Enterprise-ID": "acme"})

    async def main(release: threading.Event) -> None:
        task = asyncio.create_task(middleware(request))
        for _ in range(3):
            await asyncio.sleep(0)  # the task now waits for its first row
        task.cancel()
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    with database_thread_held() as release:
        asyncio.run(main(release))
    flush()
    assert db_habits._callers == 0
    session = Session.objects.get()
    assert (session.status, session.enterprise_id) == ("cancelled", "acme")
