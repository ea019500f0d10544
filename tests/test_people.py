"""Who and what for: ``Session.user``, ``tags`` and ``metadata`` through every entry point, the
journal header, ingest, the user and tag rollups, the reports and their CSV, and the admin."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import autogen
import orjson
import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Count, Sum
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client
from django.urls import path, reverse

from ag2_logging import ag2_logged, ag2_logging_session, flush, get_ag2_runtime_logger
from ag2_logging.capture import people
from ag2_logging.capture.context import current_session
from ag2_logging.middleware import logged_view
from ag2_logging.models import (
    LLMCall,
    ModelPrice,
    Session,
    SessionTag,
    TagDayRollup,
    UserDayRollup,
)
from ag2_logging.pipeline.ingest import ingest_journal
from ag2_logging.pipeline.reprice import reprice
from ag2_logging.pipeline.rollups import rebuild_rollups
from ag2_logging.reports import ReportFilter, breakdown, breakdown_table
from ag2_logging.testing import FakeLLMServer
from tests.conftest import llm_config
from tests.test_admin_laptop import MEASURE
from tests.test_browser import browser, log_in  # noqa: F401  (the browser fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]

SECRET = "sk-proj-" + "Zq8vX2mN4pL7rT1wK9yB3cD6fH0jG5sA"


# -- views (this module is the URLconf of its tests) ---------------------------------------------------


def _chat(request: HttpRequest, marker: str) -> None:
    """One real classic AG2 chat against the fake server whose URL the request carries."""
    config = {"config_list": [{"model": "gpt-4o-mini", "api_key": "sk-test", "base_url": request.GET["llm"]}]}
    assistant = autogen.AssistantAgent("assistant", llm_config={**config, "cache_seed": None})
    proxy = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    proxy.initiate_chat(assistant, message=f"[[marker:{marker}]] [[terminate]]", max_turns=1, silent=True)


def _state() -> JsonResponse:
    recorder = current_session.get()
    return JsonResponse({"session_id": str(recorder.session_id) if recorder else None})


@logged_view(workflow_name="mw_people", tags=["support", "web"], metadata={"plan": "pro"})
def mw_view(request: HttpRequest) -> JsonResponse:
    _chat(request, "mw")
    return _state()


@logged_view(
    workflow_name="amw_people",
    tags=lambda request: [request.GET.get("tag", "async")],
    metadata=lambda request: {"path": request.path},
)
async def amw_view(request: HttpRequest) -> JsonResponse:
    await asyncio.to_thread(_chat, request, "amw")
    return _state()


@ag2_logged(workflow_name="deco_people", tags=["deco"], metadata={"api_key": SECRET, "team": "blue"})
def deco_view(request: HttpRequest) -> JsonResponse:
    _chat(request, "deco")
    return _state()


@ag2_logged(workflow_name="adeco_people", tags=lambda request: ["adeco", request.GET.get("tag", "x")])
async def adeco_view(request: HttpRequest) -> JsonResponse:
    await asyncio.to_thread(_chat, request, "adeco")
    return _state()


urlpatterns = [
    path("admin/", admin.site.urls),
    path("people/mw/", mw_view),
    path("people/amw/", amw_view),
    path("people/deco/", deco_view),
    path("people/adeco/", adeco_view),
]


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="x")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="x")


def _client(user: User | None = None, *, asynchronous: bool = False) -> Any:
    client = AsyncClient() if asynchronous else Client()
    if user is not None:
        client.force_login(user)
    return client


def _agents(server: FakeLLMServer) -> tuple[Any, Any]:
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(server))
    proxy = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    return assistant, proxy


def _run_chat(server: FakeLLMServer, marker: str, turns: int = 1) -> None:
    assistant, proxy = _agents(server)
    proxy.initiate_chat(assistant, message=f"[[marker:{marker}]]", max_turns=turns, silent=True)


# -- the request's user: the middleware and @ag2_logged on a view ---------------------------------------


@pytest.mark.parametrize("url", ["/people/mw/", "/people/deco/"])
def test_a_logged_in_request_records_its_user_an_anonymous_one_null(
    llm: FakeLLMServer, alice: User, url: str
) -> None:
    signed_in = _client(alice).get(url, {"llm": llm.base_url}).json()
    anonymous = _client().get(url, {"llm": llm.base_url}).json()
    flush()
    mine = Session.objects.get(pk=signed_in["session_id"])
    theirs = Session.objects.get(pk=anonymous["session_id"])
    assert mine.user == alice
    assert theirs.user is None
    assert mine.call_count == theirs.call_count == 1
    assert mine.ingested_at is not None and mine.summarized_at is not None
    assert alice.ag2_logging_sessions.get() == mine  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["/people/amw/", "/people/adeco/"])
def test_async_views_record_the_user_without_the_sync_orm(llm: FakeLLMServer, bob: User, url: str) -> None:
    client = _client(bob, asynchronous=True)  # logged in here: force_login is sync

    async def go() -> dict[str, Any]:
        response = await client.get(url, {"llm": llm.base_url, "tag": "night"})
        return dict(response.json())

    body = asyncio.run(go())
    flush()
    session = Session.objects.get(pk=body["session_id"])
    assert session.user == bob
    assert session.call_count == 1
    expected = {"/people/amw/": ["night"], "/people/adeco/": ["adeco", "night"]}[url]
    assert session.tags == expected
    assert sorted(SessionTag.objects.filter(session=session).values_list("tag", flat=True)) == sorted(
        expected
    )
    if url == "/people/amw/":
        assert session.metadata == {"path": "/people/amw/"}


def test_a_deleted_user_leaves_the_session_with_no_user(llm: FakeLLMServer, alice: User) -> None:
    body = _client(alice).get("/people/mw/", {"llm": llm.base_url}).json()
    flush()
    alice.delete()
    session = Session.objects.get(pk=body["session_id"])
    assert session.user is None
    # Ingesting its journal again finds no such user: not linked, counted.
    ingest_journal(session.journal_path)
    session.refresh_from_db()
    assert session.user is None
    assert session.ingest_issues.get("user_missing") == 1


# -- tags and metadata through every entry point --------------------------------------------------------


def _with_session(server: FakeLLMServer, **extra: Any) -> None:
    with ag2_logging_session("c-with", "wf", "acme", **extra):
        _run_chat(server, "with")


def _async_with_session(server: FakeLLMServer, **extra: Any) -> None:
    async def go() -> None:
        async with ag2_logging_session("c-async", "wf", "acme", **extra):
            await asyncio.to_thread(_run_chat, server, "async")

    asyncio.run(go())


def _runtime_logger(server: FakeLLMServer, **extra: Any) -> None:
    logger = get_ag2_runtime_logger()
    assert logger.start_session("c-rt", "wf", "acme", **extra) is True
    try:
        _run_chat(server, "rt")
    finally:
        logger.stop_session()


def _decorated(server: FakeLLMServer, **extra: Any) -> None:
    @ag2_logged(workflow_name="wf", enterprise_id="acme", **extra)
    def work() -> None:
        _run_chat(server, "deco")

    work()


ENTRY_POINTS: dict[str, Callable[..., None]] = {
    "ag2_logging_session": _with_session,
    "async ag2_logging_session": _async_with_session,
    "start_session": _runtime_logger,
    "ag2_logged": _decorated,
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_tags_metadata_and_user_through_each_entry_point(llm: FakeLLMServer, alice: User, entry: str) -> None:
    extra: dict[str, Any] = {
        "tags": [" billing ", "beta", "billing"],
        "metadata": {"ticket": 42, "vip": True},
    }
    if entry != "ag2_logged":
        extra["user"] = alice
    ENTRY_POINTS[entry](llm, **extra)
    flush()
    session = Session.objects.get()
    assert session.tags == ["billing", "beta"]  # stripped, duplicates dropped, order kept
    assert session.metadata == {"ticket": 42, "vip": True}
    assert session.user == (alice if entry != "ag2_logged" else None)
    assert sorted(t.tag for t in session.tag_rows.all()) == ["beta", "billing"]  # type: ignore[attr-defined]
    header = orjson.loads(Path(session.journal_path).read_bytes().splitlines()[0])["session"]
    assert header["tags"] == ["billing", "beta"]
    assert header["metadata"] == {"ticket": 42, "vip": True}
    assert header["user_id"] == (str(alice.pk) if entry != "ag2_logged" else None)


def test_a_nested_session_keeps_the_enclosing_users(llm: FakeLLMServer, alice: User) -> None:
    with ag2_logging_session("outer", "wf", user=alice) as outer:
        with ag2_logging_session("inner", "wf", tags=["inner"]) as inner:
            _run_chat(llm, "nested")
    flush()
    assert outer is not None and inner is not None
    child = Session.objects.get(pk=inner.session_id)
    assert child.user == alice and child.parent_id == outer.session_id and child.tags == ["inner"]
    assert Session.objects.get(pk=outer.session_id).tags == []


def test_a_running_sessions_row_shows_its_user_tags_and_metadata(alice: User) -> None:
    with ag2_logging_session("c-run", "wf", user=alice, tags=["live"], metadata={"a": 1}) as recorder:
        assert recorder is not None
        row = Session.objects.get(pk=recorder.session_id)  # written at the start, before ingest
        assert (row.status, row.user, row.tags, row.metadata) == ("running", alice, ["live"], {"a": 1})
    with ag2_logging_session("c-ghost", "wf", user=10_000) as recorder:  # no such user
        assert recorder is not None
        assert Session.objects.get(pk=recorder.session_id).user_id is None


def test_a_joined_celery_task_records_the_enqueuing_sessions_user(alice: User) -> None:
    from ag2_logging.decorators import add_session_header
    from tests import tasks

    headers: dict[str, Any] = {}
    with ag2_logging_session("c-enqueue", "wf", "acme", user=alice) as parent:
        add_session_header(headers=headers)  # what before_task_publish adds on a broker
        eager = tasks.joining_task.delay().get()  # eager: joins the session current here
    assert parent is not None and headers["ag2_session"]["user_id"] == str(alice.pk)
    on_worker = tasks.joining_task.apply_async(headers=headers).get()
    flush()
    for result in (eager, on_worker):
        child = Session.objects.get(pk=result["session_id"])
        assert (child.user, child.parent_id) == (alice, parent.session_id)


BAD_ARGUMENTS = [
    ({"tags": "billing"}, TypeError, "list of strings, not str"),
    ({"tags": ["ok", 3]}, TypeError, "each tag must be a string, not int"),
    ({"tags": ["  "]}, ValueError, "must not be empty"),
    ({"tags": ["x" * (people.MAX_TAG_LENGTH + 1)]}, ValueError, "at most 64 characters"),
    ({"tags": ["a\nb"]}, ValueError, "control characters"),
    ({"tags": [f"t{i}" for i in range(people.MAX_TAGS + 1)]}, ValueError, "at most 20 tags"),
    ({"metadata": ["not", "a", "dict"]}, TypeError, "must be a dict"),
    ({"metadata": {"when": object()}}, TypeError, "JSON values"),
    ({"metadata": {"blob": "x" * people.MAX_METADATA_BYTES}}, ValueError, "at most 4096 bytes"),
    ({"user": 1.5}, TypeError, "user object or its primary key"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_ARGUMENTS)
def test_every_entry_point_refuses_bad_tags_and_metadata_with_the_reason(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ag2_logging_session("c", **kwargs)
    with pytest.raises(error, match=message):
        get_ag2_runtime_logger().start_session("c", **kwargs)
    if "user" not in kwargs:
        with pytest.raises(error, match=message):
            ag2_logged(**kwargs)(lambda: None)
        with pytest.raises(error, match=message):
            logged_view(**kwargs)
    assert Session.objects.count() == 0  # nothing was recorded


def test_callable_tags_are_checked_at_each_call() -> None:
    @ag2_logged(tags=lambda n: ["ok"] if n else "oops")
    def work(n: int) -> int:
        return n

    assert work(1) == 1
    with pytest.raises(TypeError, match="list of strings"):
        work(0)
    flush()
    assert list(Session.objects.values_list("tags", flat=True)) == [["ok"]]


# -- metadata is redacted before the journal and the row ------------------------------------------------


def test_a_secret_in_metadata_is_redacted_in_the_journal_the_runtime_log_and_the_row(
    llm: FakeLLMServer, alice: User, logs_dir: Path
) -> None:
    planted = {"api_key": SECRET, "note": f"customer pasted {SECRET} in the form", "team": "blue"}
    _client(alice).get("/people/deco/", {"llm": llm.base_url})
    with ag2_logging_session("c-secret", "wf", metadata=planted):
        _run_chat(llm, "secret")
    flush()
    assert Session.objects.count() == 2
    for session in Session.objects.all():
        assert SECRET not in Path(session.journal_path).read_text()
        assert SECRET not in json.dumps(session.metadata)
        assert session.metadata["team"] == "blue"
        assert session.metadata["api_key"].startswith("[REDACTED")
        assert session.redactions  # counted
    assert "[REDACTED" in Session.objects.get(chat_id="c-secret").metadata["note"]
    for log in logs_dir.rglob("*.log"):
        assert SECRET not in log.read_text()


# -- older journals ----------------------------------------------------------------------------------


def test_a_journal_without_the_new_header_fields_still_ingests(llm: FakeLLMServer, alice: User) -> None:
    with ag2_logging_session("c-old", "wf", "acme", user=alice, tags=["new"], metadata={"a": 1}) as rec:
        _run_chat(llm, "old")
    flush()
    assert rec is not None
    journal = Path(Session.objects.get().journal_path)
    lines = journal.read_bytes().splitlines()
    first = orjson.loads(lines[0])
    for key in ("user_id", "tags", "metadata"):
        del first["session"][key]
    journal.write_bytes(b"\n".join([orjson.dumps(first), *lines[1:]]) + b"\n")
    Session.objects.all().delete()
    result = ingest_journal(journal)
    assert result.llm_calls == 1 and not result.bad_lines
    session = Session.objects.get()
    assert (session.user, session.tags, session.metadata, session.call_count) == (None, [], {}, 1)
    assert not session.ingest_issues.get("bad_value")


def test_ingest_of_a_journal_from_another_host_sets_user_tags_and_metadata(
    llm: FakeLLMServer, alice: User
) -> None:
    """The row comes from the journal's header alone (as on a host that never saw the session)."""
    with ag2_logging_session("c-far", "wf", "acme", user=alice, tags=["far"], metadata={"k": "v"}):
        _run_chat(llm, "far")
    flush()
    journal = Session.objects.get().journal_path
    Session.objects.all().delete()
    ingest_journal(journal)
    session = Session.objects.get()
    assert (session.user, session.tags, session.metadata) == (alice, ["far"], {"k": "v"})
    assert list(session.tag_rows.values_list("tag", flat=True)) == ["far"]  # type: ignore[attr-defined]


# -- rollups and reports -----------------------------------------------------------------------------


def _sessions(llm: FakeLLMServer, alice: User, bob: User) -> None:
    """Five sessions of real chats: two users and none, overlapping tags and none."""
    plan = [
        ("acme", alice, ["billing", "beta"], 2),
        ("acme", alice, ["billing"], 1),
        ("globex", bob, ["beta", "billing"], 1),
        ("globex", None, [], 2),
        ("acme", bob, ["beta"], 1),
    ]
    for i, (enterprise, user, tags, turns) in enumerate(plan):
        with ag2_logging_session(f"c-{i}", f"wf-{i % 2}", enterprise, user=user, tags=tags):
            _run_chat(llm, f"r{i}", turns)
    flush()
    assert Session.objects.filter(summarized_at__isnull=False).count() == len(plan)


def _direct(calls: Any) -> dict[str, Any]:
    totals = calls.aggregate(n=Count("id"), tokens=Sum("total_tokens"), cost=Sum("cost"))
    return {"calls": totals["n"], "tokens": totals["tokens"] or 0, "cost": totals["cost"] or Decimal(0)}


def _figures(f: Any) -> dict[str, Any]:
    return {"calls": f.calls, "tokens": f.total_tokens, "cost": f.priced_cost}


def _table(model: Any) -> list[tuple[Any, ...]]:
    fields = [f.name for f in model._meta.fields if f.name != "id"]
    return sorted(model.objects.values_list(*fields))


def test_reports_break_down_and_filter_by_user_and_tag_as_the_rows_do(
    llm: FakeLLMServer, alice: User, bob: User
) -> None:
    _sessions(llm, alice, bob)
    flt = ReportFilter.default()
    calls = LLMCall.objects.all()
    by_user = breakdown("user", flt)
    rows = {row.key["user_id"]: row for row in by_user.rows}
    assert set(rows) == {str(alice.pk), str(bob.pk), ""}
    assert rows[str(alice.pk)].label == "alice" and rows[""].label == "(no user)"
    for key, user in ((str(alice.pk), alice), (str(bob.pk), bob)):
        assert _figures(rows[key].figures) == _direct(calls.filter(session__user=user))
        assert rows[key].figures.sessions == Session.objects.filter(user=user).count()
    assert _figures(rows[""].figures) == _direct(calls.filter(session__user__isnull=True))
    assert _figures(by_user.total) == _direct(calls)

    by_tag = breakdown("tag", flt)
    tags = {row.key["tag"]: row for row in by_tag.rows}
    assert set(tags) == {"billing", "beta"}
    for tag in tags:
        assert _figures(tags[tag].figures) == _direct(calls.filter(session__tag_rows__tag=tag))
        assert tags[tag].figures.sessions == Session.objects.filter(tag_rows__tag=tag).count()
    assert _figures(by_tag.total) == _direct(calls)  # the period's total: every call once
    # Sessions with two tags count under both: here the rows sum past the period's total.
    assert tags["billing"].figures.calls + tags["beta"].figures.calls > by_tag.total.calls
    assert sum(row.cost_share or 0 for row in by_tag.rows) > 1.0

    # Filters: every report of a user or a tag reads the same calls as a direct query.
    only_alice = ReportFilter(start=flt.start, end=flt.end, user=str(alice.pk))
    by_model = breakdown("model", only_alice)
    assert _figures(by_model.total) == _direct(calls.filter(session__user=alice))
    beta_acme = ReportFilter(start=flt.start, end=flt.end, tag="beta", enterprise="acme")
    assert _figures(breakdown("enterprise", beta_acme).total) == _direct(
        calls.filter(session__tag_rows__tag="beta", session__enterprise_id="acme")
    )
    bob_beta = ReportFilter(start=flt.start, end=flt.end, tag="beta", user=str(bob.pk))
    (row,) = breakdown("workflow", bob_beta).rows
    assert _figures(row.figures) == _direct(calls.filter(session__tag_rows__tag="beta", session__user=bob))
    assert row.figures.sessions == 2

    # The command line: the same filter, the same figures.
    out = io.StringIO()
    call_command("ag2_logging_report", "user", "--tag", "billing", "--format", "csv", stdout=out)
    printed = {r["user_id"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    billing_alice = calls.filter(session__tag_rows__tag="billing", session__user=alice)
    assert int(printed[str(alice.pk)]["calls"]) == billing_alice.count()
    assert printed[str(alice.pk)]["user"] == "alice"

    # The CSV: the same figures, the user's id and name.
    header, lines = breakdown_table(by_user)
    records = [dict(zip(header, line, strict=True)) for line in lines]
    assert header[:2] == ["user_id", "user"]
    alice_row = next(r for r in records if r["user_id"] == str(alice.pk))
    assert alice_row["user"] == "alice"
    assert alice_row["calls"] == calls.filter(session__user=alice).count()


def test_the_admin_pages_and_csv_by_user_and_tag(llm: FakeLLMServer, alice: User, bob: User) -> None:
    _sessions(llm, alice, bob)
    admin_user = User.objects.create_superuser("root", password="x")
    client = _client(admin_user)
    url = reverse("admin:ag2_logging_report_breakdown", args=["tag"])
    page = client.get(url)
    assert page.status_code == 200
    assert b"can sum past 100%" in page.content
    response = client.get(url, {"format": "csv", "user": str(alice.pk)})
    records = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    by_tag = {r["tag"]: r for r in records}
    alice_calls = LLMCall.objects.filter(session__user=alice)
    assert int(by_tag["billing"]["calls"]) == alice_calls.filter(session__tag_rows__tag="billing").count()
    assert int(by_tag["beta"]["calls"]) == alice_calls.filter(session__tag_rows__tag="beta").count()
    page = client.get(reverse("admin:ag2_logging_report_breakdown", args=["user"]))
    assert b"alice" in page.content and b"bob" in page.content

    sessions = reverse("admin:ag2_logging_session_changelist")
    listed = client.get(sessions, {"tag": "billing"}).context["cl"].result_list
    assert {s.chat_id for s in listed} == {"c-0", "c-1", "c-2"}
    listed = client.get(sessions, {"user": str(bob.pk)}).context["cl"].result_list
    assert {s.chat_id for s in listed} == {"c-2", "c-4"}
    response = client.get(sessions, {"q": "alice"})
    assert {s.chat_id for s in response.context["cl"].result_list} == {"c-0", "c-1"}
    assert b"acme \xc2\xb7 alice" in response.content  # the user beneath the workflow
    listed = client.get(sessions, {"q": "beta"}).context["cl"].result_list
    assert {s.chat_id for s in listed} == {"c-0", "c-2", "c-4"}
    detail = client.get(
        reverse("admin:ag2_logging_session_change", args=[Session.objects.get(chat_id="c-0").pk])
    )
    assert b"billing, beta" in detail.content


def test_user_and_tag_rollups_equal_a_rebuild_also_after_a_reprice(
    llm: FakeLLMServer, alice: User, bob: User
) -> None:
    _sessions(llm, alice, bob)
    incremental = (_table(UserDayRollup), _table(TagDayRollup))
    assert sum(r.call_count for r in UserDayRollup.objects.all()) == LLMCall.objects.count()
    assert len(incremental[1]) >= 2
    rebuild_rollups()
    assert (_table(UserDayRollup), _table(TagDayRollup)) == incremental

    # A price override and a reprice move the user and tag rollups as they move the daily ones.
    ModelPrice.objects.create(model="gpt-4o-mini", input_per_mtok=Decimal(100), output_per_mtok=Decimal(400))
    assert reprice().changed == LLMCall.objects.count()
    repriced = (_table(UserDayRollup), _table(TagDayRollup))
    assert repriced != incremental
    billing_cost = sum(r.cost for r in TagDayRollup.objects.filter(tag="billing"))
    direct = LLMCall.objects.filter(session__tag_rows__tag="billing").aggregate(c=Sum("cost"))["c"]
    assert billing_cost == direct
    rebuild_rollups()
    assert (_table(UserDayRollup), _table(TagDayRollup)) == repriced


# -- the migration ------------------------------------------------------------------------------------


def test_migration_0009_goes_back_and_forth() -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", "ag2_logging", "0008", verbosity=0)
    tables = connection.introspection.table_names()
    assert "ag2_logging_tagdayrollup" not in tables and "ag2_logging_sessiontag" not in tables
    call_command("migrate", "ag2_logging", verbosity=0)
    tables = connection.introspection.table_names()
    assert {"ag2_logging_tagdayrollup", "ag2_logging_userdayrollup", "ag2_logging_sessiontag"} <= set(tables)
    columns = {
        c.name
        for c in connection.introspection.get_table_description(connection.cursor(), "ag2_logging_session")
    }
    assert {"user_id", "tags", "metadata", "rollup_shares"} <= columns


# -- the pages in a browser -----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_user_and_tag_pages_fit_a_1366_window(
    browser: Any,  # noqa: F811
    live_server: Any,
    llm: FakeLLMServer,
    alice: User,
    bob: User,
    scheme: str,
) -> None:
    _sessions(llm, alice, bob)
    shots = Path("/tmp/people-shots")
    shots.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, color_scheme=scheme)
    try:
        page = context.new_page()
        log_in(page, live_server.url)
        for slug, first in (("user", "user"), ("tag", "tag")):
            page.goto(f"{live_server.url}/admin/ag2_logging/dailyrollup/reports/by/{slug}/")
            m = page.evaluate(MEASURE)
            page.screenshot(path=str(shots / f"by-{slug}-{scheme}.png"), full_page=True)
            assert m["box"]["scroll"] <= m["box"]["client"] + 1, f"{slug}: the table scrolls sideways: {m}"
            found = {h["text"]: h for h in m["headers"]}
            for column in (first, "sessions", "calls", "cost"):
                assert column in found, f"{slug}: no column {column!r} in {sorted(found)}"
                assert found[column]["left"] >= 0 and found[column]["right"] <= m["width"]
            rows = page.locator("#ag2-breakdown tbody tr").all_inner_texts()
            names = {"user": ["alice", "bob", "(no user)"], "tag": ["billing", "beta"]}[slug]
            for name in names:
                assert any(row.startswith(name) for row in rows), f"{slug}: no row {name!r} in {rows}"
        assert page.locator("#ag2-tag-note").is_visible()
        # The filter form: choose bob, the report follows.
        page.goto(f"{live_server.url}/admin/ag2_logging/dailyrollup/reports/by/tag/")
        page.select_option("select[name=user]", label="bob")
        page.click(".ag2-filters input[type=submit]")
        rows = page.locator("#ag2-breakdown tbody tr").all_inner_texts()
        bob_beta = Session.objects.filter(user=bob, tag_rows__tag="beta").count()
        assert any(row.startswith("beta") and f"\t{bob_beta}\t" in row for row in rows), rows
        page.screenshot(path=str(shots / f"by-tag-bob-{scheme}.png"), full_page=True)
    finally:
        context.close()
