"""The live dashboard: its JSON endpoint (polling, WSGI) and its WebSocket (Django Channels),
fed by the live counters a real classic AG2 chat against the fake LLM server writes while it
runs, kept in the database or in Redis (``BUDGET_REDIS_URL``): the tests that read them run on
both (``store``). The chat is paced by a gate the test opens one reply at a time, so each figure
is checked between two calls (no timing assertions; waits have generous timeouts)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import autogen
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test import Client

from ag2_logging import ag2_logging_session, flush
from ag2_logging.budgets import enforce
from ag2_logging.capture import heartbeat
from ag2_logging.conf import conf
from ag2_logging.live import counters
from ag2_logging.live.snapshot import snapshot
from ag2_logging.models import Budget, BudgetLedger, Session
from ag2_logging.testing.fake_llm import FakeLLMServer
from tests.conftest import TEST_API_KEY, expected_cost, llm_config
from tests.support import BROKER_URL, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
USAGE = "[[usage:prompt=10,completion=1000,cached=0,reasoning=0]]"
#: What one reply of the chats here costs (genai-prices' own figure).
CALL = expected_cost("gpt-4o-mini", 10, 1000, 0, 0)
DATA_URL = "/admin/ag2_logging/dailyrollup/live/data.json"
PAGE_URL = "/admin/ag2_logging/dailyrollup/live/"
#: The Redis the Redis store uses here (the budgets' tests use the same).
REDIS_URL = BROKER_URL if BROKER_URL.startswith("redis://") else "redis://127.0.0.1:6379/14"


class PacedChat:
    """A classic chat (user proxy -> assistant on the fake server) in a background thread: the
    assistant answers ``turns`` times; after each answer the user waits for :meth:`step`."""

    def __init__(self, server: FakeLLMServer, turns: int, **scope: str) -> None:
        self.server, self.turns, self.scope = server, turns, scope
        self.gate = threading.Semaphore(0)
        self.error: BaseException | None = None
        self.session_id: uuid.UUID | None = None
        self.thread = threading.Thread(target=self._run, name="paced-chat", daemon=True)

    def _run(self) -> None:
        try:
            assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(self.server))
            user = autogen.ConversableAgent(
                "user", llm_config=False, human_input_mode="NEVER", code_execution_config=False
            )

            def next_message(recipient: Any, messages: Any, sender: Any, config: Any) -> tuple[bool, str]:
                if not self.gate.acquire(timeout=120):
                    raise TimeoutError("the test never let the chat go on")
                return True, f"go on {USAGE}"

            user.register_reply([autogen.Agent, None], next_message, position=0)
            with ag2_logging_session(**self.scope) as session:
                self.session_id = session.session_id if session is not None else None
                # A secret in the prompt: the dashboard shows no body, so never this key.
                message = f"start {USAGE} with key {TEST_API_KEY}"
                user.initiate_chat(assistant, message=message, max_turns=self.turns)
        except BaseException as exc:  # reported by finish()
            self.error = exc
        finally:
            connections.close_all()  # this thread's own (the budgets read theirs here)

    def start(self) -> PacedChat:
        self.thread.start()
        return self

    def step(self) -> None:
        self.gate.release()

    def finish(self) -> None:
        for _ in range(self.turns):
            self.gate.release()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the chat did not end"
        if self.error is not None:
            raise self.error


@pytest.fixture(autouse=True)
def no_earlier_counts() -> None:
    """Counts an earlier test's sessions still owe (the heartbeat hands them over within
    LIVE_SECONDS: maybe only now, into this test's database) are dropped."""
    heartbeat.live_deltas()


@pytest.fixture
def fast_live(settings: Any) -> Iterator[None]:
    """Live counters handed over every 0.1 s."""
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LIVE_SECONDS": 0.1}
    conf.reload()
    enforce.reset()
    yield
    enforce.reset()


def _redis_keys() -> list[bytes]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    return sorted(client.scan_iter("ag2_logging:live:*")) + sorted(client.scan_iter("ag2_logging:budget:*"))


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """The live counters (and the budgets' ledger) in the database, or in Redis."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in _redis_keys():
        client.delete(key)
    if request.param == "redis":
        settings.AG2_LOGGING = {**settings.AG2_LOGGING, "BUDGET_REDIS_URL": REDIS_URL}
        conf.reload()
        enforce.reset()
    yield request.param
    enforce.reset()


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", password="x"))
    return client


def running_row(data: dict[str, Any], chat_id: str) -> dict[str, Any] | None:
    return next((row for row in data["running"] if row["chat_id"] == chat_id), None)


def test_the_json_endpoint_follows_a_running_chat_until_it_ends(
    llm: FakeLLMServer, fast_live: None, staff: Client, store: str
) -> None:
    Budget.objects.create(name="acme daily", scope="enterprise", enterprise_id="acme", period="day", limit=1)
    before = staff.get(DATA_URL).json()
    assert before["running"] == [] and before["today"]["calls"] == 0
    assert before["counters"] == store
    chat = PacedChat(llm, turns=3, chat_id="live-1", workflow_name="triage", enterprise_id="acme").start()
    seen: list[dict[str, Any]] = []
    rows_then: list[int] = []

    def shows(calls: int) -> bool:
        response = staff.get(DATA_URL)
        assert response.status_code == 200 and response["Content-Type"] == "application/json"
        data = response.json()
        row = running_row(data, "live-1")
        if row is not None and row["call_count"] == calls:
            seen.append(data)
            rows_then.append(Session.objects.get(chat_id="live-1").call_count)
            return True
        return False

    try:
        wait_for(lambda: shows(1), timeout=60, what="the first call on the dashboard")
        chat.step()
        wait_for(lambda: shows(2), timeout=60, what="the second call on the dashboard")
    finally:
        chat.finish()
    first, second = (running_row(data, "live-1") for data in seen)
    assert first is not None and second is not None
    assert (first["enterprise_id"], first["workflow_name"]) == ("acme", "triage")
    assert Decimal(first["total_cost"]) == CALL
    assert Decimal(second["total_cost"]) == 2 * CALL > Decimal(first["total_cost"])
    assert second["total_tokens"] == 2 * 1010 and second["error_count"] == 0
    assert second["url"].endswith(f"/session/{chat.session_id}/change/")
    # Database: the running row holds the totals; Redis: the figures came from Redis only (the
    # row gets its totals when the session ends) and no live counter row was written.
    assert rows_then == ([1, 2] if store == "database" else [0, 0])

    # The running session's first call is listed before the session ends (nothing ingested yet).
    (line,) = seen[0]["latest_calls"]
    assert line["session_id"] == str(chat.session_id) and line["ingested"] is False and line["url"] == ""
    assert (line["agent_name"], line["model"], line["status"]) == ("assistant", "gpt-4o-mini", "success")
    assert (line["enterprise_id"], line["workflow_name"]) == ("acme", "triage")
    assert line["total_tokens"] == 1010 and Decimal(line["cost"]) == CALL
    assert line["latency_ms"] is not None and line["latency_ms"] >= 0
    assert set(line) == {
        "id", "started_at", "ended_at", "session_id", "enterprise_id", "workflow_name", "agent_name",
        "model", "total_tokens", "cost", "cost_text", "latency_ms", "status", "ingested", "url",
    }  # fmt: skip
    assert [c["session_id"] for c in seen[1]["latest_calls"]] == [str(chat.session_id)] * 2
    assert seen[1]["latest_calls"][1]["id"] == line["id"]  # newest first
    for data in seen:
        assert TEST_API_KEY not in json.dumps(data) and "go on" not in json.dumps(data)

    wait_for(lambda: running_row(staff.get(DATA_URL).json(), "live-1") is None, timeout=60, what="the end")
    wait_for(lambda: staff.get(DATA_URL).json()["today"]["calls"] == 3, timeout=60, what="the last call")
    data = staff.get(DATA_URL).json()
    assert len(llm.successful()) == 3
    assert Decimal(data["today"]["cost"]) == Decimal(data["month"]["cost"]) == 3 * CALL
    assert sum(m["calls"] for m in data["per_minute"]) == 3
    assert sum(m["errors"] for m in data["per_minute"]) == 0
    assert len(data["per_minute"]) == 60
    (budget,) = data["budgets"]
    assert budget["label"] == "acme daily" and Decimal(budget["today"]) == 3 * CALL
    assert Decimal(budget["spent"]) == 3 * CALL  # the budgets' own ledger agrees
    assert budget["percent"] == round(float(3 * CALL * 100), 1)
    # The session's row holds its final totals; ingest made its calls rows, listed as the latest
    # with their pages' links.
    session = Session.objects.get(chat_id="live-1")
    assert session.status == "completed" and session.total_cost == 3 * CALL
    wait_for(
        lambda: [c["ingested"] for c in staff.get(DATA_URL).json()["latest_calls"]] == [True] * 3,
        timeout=60,
        what="ingest",
    )
    latest = staff.get(DATA_URL).json()["latest_calls"]
    assert {c["session_id"] for c in latest} == {str(session.pk)}
    assert sum(Decimal(c["cost"]) for c in latest) == 3 * CALL
    assert latest[-1]["id"] == line["id"] and latest[-1]["url"].endswith(f"/llmcall/{line['id']}/change/")
    live_rows = BudgetLedger.objects.filter(key__startswith="live:")
    if store == "redis":
        assert not live_rows.exists()
        keys = {k.decode() for k in _redis_keys()}
        assert "ag2_logging:live:calls" in keys and f"ag2_logging:live:session:{session.pk}" in keys
    else:
        assert live_rows.filter(key__startswith="live:call:").count() == 3
        assert not any(k.startswith(b"ag2_logging:live:") for k in _redis_keys())


def test_failed_calls_count_as_errors_per_minute(
    llm: FakeLLMServer, fast_live: None, staff: Client, store: str
) -> None:
    import openai

    llm.script_errors([400])
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(llm))
    user = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    with ag2_logging_session(chat_id="live-err", workflow_name="w"), pytest.raises(openai.BadRequestError):
        user.initiate_chat(assistant, message="hello", max_turns=1)
    wait_for(
        lambda: sum(m["errors"] for m in staff.get(DATA_URL).json()["per_minute"]) == 1,
        timeout=60,
        what="the failed call per minute",
    )
    data = staff.get(DATA_URL).json()
    assert sum(m["calls"] for m in data["per_minute"]) == 1
    assert data["today"]["calls"] == 1 and Decimal(data["today"]["cost"]) == 0
    (line,) = data["latest_calls"]  # its line says it failed, without the error's text
    assert line["status"] == "error" and Decimal(line["cost"]) == 0 and line["total_tokens"] == 0
    assert "Error code" not in json.dumps(data) and "error" not in line


def test_the_dashboard_takes_the_reports_permission() -> None:
    user = User.objects.create_user("clerk", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(DATA_URL).status_code == 403
    assert client.get(PAGE_URL).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_dailyrollup"))
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get(DATA_URL).status_code == 200
    page = client.get(PAGE_URL)
    assert page.status_code == 200
    assert b"Updates by polling every" in page.content  # the test client is WSGI
    anonymous = Client().get(DATA_URL)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_the_page_is_linked_from_the_app_index_and_the_reports(staff: Client) -> None:
    assert PAGE_URL.encode() in staff.get("/admin/ag2_logging/").content
    assert PAGE_URL.encode() in staff.get("/admin/ag2_logging/dailyrollup/reports/").content


def _item(enterprise: str = "", calls: int = 1, cost: str = "0", lines: Any = ()) -> dict[str, Any]:
    """One session's hand-over, as ``heartbeat.live_deltas()`` gives it (an ended session)."""
    return {
        "session_id": uuid.uuid4(),
        "enterprise_id": enterprise,
        "workflow_name": "w",
        "running": False,
        "totals": {},
        "delta": {"call_count": calls, "error_count": calls // 2, "total_cost": Decimal(cost)},
        "calls": list(lines),
    }


def _line(n: int, **values: Any) -> dict[str, Any]:
    """A call's line as ``heartbeat.call_summary`` gives it; ``n`` orders them by time."""
    from datetime import UTC, datetime, timedelta

    ended = datetime.now(UTC) - timedelta(minutes=50) + timedelta(seconds=n)
    return {
        "id": str(uuid.uuid4()), "agent_name": "a", "provider": "openai", "model": "m",
        "prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1, "cost": f"0.{n:04d}",
        "price_status": "priced", "latency_ms": 10.0 * n, "status": "success",
        "started_at": (ended - timedelta(seconds=1)).isoformat(), "ended_at": ended.isoformat(),
        "session_id": str(uuid.uuid4()), "enterprise_id": "e", "workflow_name": "w", **values,
    }  # fmt: skip


def test_reading_costs_one_query_per_kind_whatever_the_calls(
    llm: FakeLLMServer, fast_live: None, store: str, django_assert_max_num_queries: Any
) -> None:
    # Many per-minute, per-scope and call rows: the read is a fixed number of queries (no
    # per-row query); from Redis, only the running sessions, the budgets and LLMCall rows.
    for n in range(5):
        counters.write([_item(f"e{n}", 2, "0.5", [_line(n)])])
    with django_assert_max_num_queries(8 if store == "database" else 3):
        data = snapshot()
    assert data["today"]["calls"] == 10 and Decimal(data["today"]["cost"]) == Decimal("2.5")
    assert sum(m["errors"] for m in data["per_minute"]) == 5
    assert [c["total_tokens"] for c in data["latest_calls"]] == [5, 4, 3, 2, 1]
    assert data["counters"] == store


def test_the_newest_calls_are_kept_and_read_back_whole(fast_live: None, store: str) -> None:
    from ag2_logging.live.counters import LATEST_KEPT

    long_name = "agent-" + "é" * 300  # a row's key keeps at most 600 characters
    lines = [_line(n, agent_name=long_name if n == 14 else "a") for n in range(15)]
    counters.write([_item(lines=lines[:7])])
    counters.write([_item(lines=lines[7:])])
    got = snapshot()["latest_calls"]
    assert [c["id"] for c in got] == [line["id"] for line in reversed(lines)][:LATEST_KEPT]
    newest = got[0]
    assert newest["agent_name"].startswith("agent-éé") and len(newest["agent_name"]) <= 60
    assert (newest["total_tokens"], newest["cost"], newest["latency_ms"]) == (15, "0.0014", 140.0)
    assert newest["started_at"] == lines[14]["started_at"] and newest["ingested"] is False
    if store == "database":
        assert BudgetLedger.objects.filter(key__startswith="live:call:").count() == LATEST_KEPT


@pytest.mark.parametrize("store", ["redis"], indirect=True)
def test_redis_counters_expire_when_the_database_rows_are_pruned(fast_live: None, store: str) -> None:
    from datetime import UTC, datetime

    import redis

    at = datetime.now(UTC)
    counters.write([{**_item(calls=2, cost="0.25"), "running": True, "totals": {"call_count": 2}}], at=at)
    client = redis.Redis.from_url(REDIS_URL)
    minute = at.replace(second=0, microsecond=0)
    p = "ag2_logging:live:"
    assert client.expiretime(p + "min:" + counters.minute_key(at)) == int(minute.timestamp()) + 121 * 60
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    assert client.expiretime(f"{p}day:{day:%Y-%m-%d}") == int(day.timestamp()) + 2 * 86_400
    month = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    after = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    assert client.expiretime(f"{p}month:{at:%Y-%m}") == int(after.timestamp())
    assert client.hgetall(f"{p}day:{day:%Y-%m-%d}") == {
        b'n:["", "w"]': b"2",
        b's:["", "w"]': b"2500000000",
    }
    assert not BudgetLedger.objects.filter(key__startswith="live:").exists()


def test_an_unreachable_redis_is_said_not_raised(settings: Any, staff: Client) -> None:
    from ag2_logging.capture.db_thread import submit_db

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "BUDGET_REDIS_URL": "redis://127.0.0.1:1/0"}
    conf.reload()
    enforce.reset()
    try:
        counters.hand_over([_item(calls=1)], submit_db)  # logged, not raised
        data = staff.get(DATA_URL).json()
    finally:
        enforce.reset()
    assert data["counters"] == "redis" and data["counters_error"] == "ConnectionError"
    assert data["today"]["calls"] == 0 and len(data["per_minute"]) == 60


def test_old_minutes_are_pruned(fast_live: None) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 3, 9, 14, 5, tzinfo=UTC)
    old = now - timedelta(minutes=counters.MINUTES_KEPT + 1)
    delta = {"call_count": 1, "error_count": 0, "total_cost": Decimal(0)}
    item = {
        "session_id": uuid.uuid4(),
        "enterprise_id": "",
        "workflow_name": "",
        "running": False,
        "totals": {},
    }
    counters.write([{**item, "delta": delta}], at=old)
    counters.write([{**item, "delta": delta}], at=now)
    keys = set(BudgetLedger.objects.filter(key__startswith="live:").values_list("key", flat=True))
    # The old minute is gone; today's and this month's rows stay.
    assert keys == {
        "live:min:2026-03-09T14:05",
        'live:day:2026-03-09:["", ""]',
        'live:month:2026-03:["", ""]',
    }


# -- the WebSocket -------------------------------------------------------------------------------


def _communicator(client: Client) -> Any:
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from ag2_logging.live.routing import websocket_urlpatterns

    cookie = f"sessionid={client.cookies['sessionid'].value}" if "sessionid" in client.cookies else ""
    app = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    return WebsocketCommunicator(app, "/ws/ag2_logging/live/", headers=[(b"cookie", cookie.encode())])


@pytest.fixture
def redis_layer(settings: Any) -> Iterator[None]:
    """The Redis channel layer (as several processes use it) on this run's Redis database."""
    from channels.layers import channel_layers

    url = BROKER_URL if BROKER_URL.startswith("redis://") else "redis://127.0.0.1:6379/14"
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}
    }
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def test_the_websocket_pushes_a_running_chat_through_the_redis_layer(
    llm: FakeLLMServer, settings: Any, staff: Client, redis_layer: None, store: str
) -> None:
    # Slow ticks (30 s): within the test, only the layer's "changed" message can bring news.
    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "LIVE_SECONDS": 30}
    conf.reload()
    chat: PacedChat | None = None

    async def scenario() -> list[dict[str, Any]]:
        nonlocal chat
        communicator = _communicator(staff)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        first = await communicator.receive_json_from(timeout=10)
        assert first["type"] == "snapshot" and first["transport"] == "websocket"
        assert first["data"]["running"] == []
        chat = PacedChat(llm, turns=3, chat_id="ws-1", workflow_name="triage", enterprise_id="acme").start()
        pushed = []
        for calls in (1, 2):
            await _wait_served(llm, calls)
            hand_over()  # what the heartbeat thread does every LIVE_SECONDS
            while True:
                message = await communicator.receive_json_from(timeout=10)
                row = running_row(message["data"], "ws-1")
                if row is not None and row["call_count"] == calls:
                    pushed.append(row)
                    break
            if calls == 1:
                chat.step()
        await communicator.disconnect()
        return pushed

    try:
        pushed = async_to_sync(scenario)()
    finally:
        if chat is not None:
            chat.finish()
    assert [Decimal(row["total_cost"]) for row in pushed] == [CALL, 2 * CALL]
    assert [row["call_count"] for row in pushed] == [1, 2]


async def _wait_served(llm: FakeLLMServer, calls: int) -> None:
    import asyncio

    for _ in range(600):
        recorded = [r for r in list(heartbeat.live.values()) if r is not None and r.chat_id == "ws-1"]
        if len(llm.successful()) >= calls and recorded and recorded[0].totals.call_count >= calls:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {calls} was not recorded")


def hand_over() -> None:
    from ag2_logging.capture.db_thread import submit_db

    submit_db(counters.write, heartbeat.live_deltas()).result(timeout=30)


def test_the_websocket_refuses_a_user_without_the_reports_permission() -> None:
    user = User.objects.create_user("clerk", password="x", is_staff=True)
    client = Client()
    client.force_login(user)

    async def connect(c: Client) -> tuple[bool, Any]:
        communicator = _communicator(c)
        result: tuple[bool, Any] = await communicator.connect(timeout=10)
        await communicator.disconnect()
        return result

    assert async_to_sync(connect)(client) == (False, 4403)
    assert async_to_sync(connect)(Client()) == (False, 4403)  # anonymous
    user.user_permissions.add(Permission.objects.get(codename="view_dailyrollup"))
    assert async_to_sync(connect)(client)[0] is True


def test_running_rows_get_their_totals_and_ended_rows_keep_theirs() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    rows = [Session.objects.create(chat_id=f"c{i}", started_at=now) for i in range(3)]
    ended = Session.objects.create(chat_id="ended", started_at=now, status="completed", call_count=7)
    figures = dict.fromkeys(heartbeat.LIVE_FIGURES, 0)

    def item(session: Session, calls: int) -> dict[str, Any]:
        totals = {
            **figures,
            "call_count": calls,
            "total_tokens": 10 * calls,
            "total_cost": Decimal(calls) / 100,
        }
        delta = {"call_count": 1, "error_count": 0, "total_cost": Decimal("0.01")}
        return {
            "session_id": session.pk,
            "enterprise_id": "",
            "workflow_name": "",
            "running": True,
            "totals": totals,
            "delta": delta,
        }

    counters.write([item(s, n + 1) for n, s in enumerate(rows)] + [item(ended, 2)])
    got = {s.chat_id: (s.call_count, s.total_tokens, s.total_cost) for s in Session.objects.all()}
    assert got == {
        "c0": (1, 10, Decimal("0.01")),
        "c1": (2, 20, Decimal("0.02")),
        "c2": (3, 30, Decimal("0.03")),
        "ended": (7, 0, Decimal(0)),
    }


SHORT_SCRIPT = """
import django; django.setup()
from ag2_logging import ag2_logging_session
with ag2_logging_session("short-script", "wf", "scripted") as recorder:
    recorder.record_llm_call(agent_name="a", provider="openai", model="gpt-4o-mini",
                             prompt_tokens=10, completion_tokens=1000)
print(recorder.session_id)
"""


def test_a_script_ending_before_the_next_hand_over_still_counts(
    tmp_path: Any, store: str, staff: Client
) -> None:
    """A script (or a management command) whose session ends well inside ``LIVE_SECONDS`` and
    exits at once: its calls are handed over at the session's end, through the database thread
    whose queue runs out at exit, so today's figures include them in either store."""
    from tests.support import child_env, run_child

    extra = {"AG2_LOGGING_PIPELINE": "inline", "AG2_TEST_LIVE_SECONDS": "30"}
    if store == "redis":
        extra["AG2_LOGGING_BUDGET_REDIS_URL"] = REDIS_URL
    proc = run_child(SHORT_SCRIPT, child_env(tmp_path, **extra))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    data = staff.get(DATA_URL).json()
    assert data["counters"] == store
    assert data["today"]["calls"] == 1
    assert Decimal(data["today"]["cost"]) == CALL
    assert [row["session_id"] for row in data["latest_calls"]] == [proc.stdout.split()[-1]]


def test_the_counters_handed_over_at_session_end_do_not_hold_up_the_caller(
    llm: FakeLLMServer, fast_live: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session's end hands its last live counts over through the database thread: after the
    Session row the caller waits for, never before it (a second write transaction, behind the
    same SQLite lock, that doubled the time to leave a session)."""
    seen: list[str] = []
    release = threading.Event()
    real = counters.write_quietly

    def held_write(deltas: list[dict[str, Any]]) -> None:
        seen.append(Session.objects.get(chat_id="live-end").status)  # the row, as it is by then
        release.wait(30)
        real(deltas)

    monkeypatch.setattr(counters, "write_quietly", held_write)
    failures = counters.failures["writes"]
    try:
        with ag2_logging_session("live-end", "wf", "acme"):
            assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(llm))
            user = autogen.ConversableAgent("user", llm_config=False, human_input_mode="NEVER")
            user.initiate_chat(assistant, message="hello [[terminate]]", max_turns=1, silent=True)
        # Left: the row says so while the counters' write is still held on the database thread.
        assert Session.objects.get(chat_id="live-end").status == "completed"
        wait_for(lambda: bool(seen), timeout=30, what="the counters' hand-over")
        assert seen == ["completed"]
    finally:
        release.set()
    flush()
    assert counters.failures["writes"] == failures
