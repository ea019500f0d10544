"""The session list's search: the same sessions as Django's stock admin search (joins and
``SELECT DISTINCT``), found through ``IN`` subqueries (no ``DISTINCT`` over session rows)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ag2_logging.models import Session, SessionTag

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
FIXED_ID = uuid.UUID("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b")


@pytest.fixture
def sessions() -> list[Session]:
    alice = User.objects.create_user("alice.martin")
    bob = User.objects.create_user("Bob_Stone")
    rows = [
        # chat id, enterprise, workflow, user, tags
        ("chat-00001", "acme", "triage", alice, ["vip", "Support"]),
        ("chat-00012", "acme", "weekly_digest", bob, ["vip"]),
        ("chat-00100", "globex", "triage", None, ["beta", "vip-trial"]),
        ("ACME-import-7", "initech", "billing", bob, []),
        ("chat-vip", "globex", "onboarding", None, ["support"]),
        ("chat-00002", "", "", alice, ["triage"]),
    ]
    made = []
    for n, (chat, enterprise, workflow, user, tags) in enumerate(rows):
        s = Session.objects.create(
            id=FIXED_ID if n == 0 else uuid.uuid4(),
            chat_id=chat,
            enterprise_id=enterprise,
            workflow_name=workflow,
            user=user,
            tags=tags,
            started_at=T0 + dt.timedelta(minutes=n),
        )
        SessionTag.objects.bulk_create([SessionTag(session=s, tag=t) for t in tags])
        made.append(s)
    return made


TERMS = [
    "vip",  # a whole tag (and a chat id containing it)
    "VIP",  # tags match whatever the case
    "support",  # a tag in two cases, and nothing else
    "vip-tr",  # part of a tag: no tag match
    "alice",  # part of a user name
    "bob_stone",  # a whole user name, other case
    "acme",  # an enterprise, and a chat id
    "chat-0001",  # part of chat ids
    "triage",  # a workflow and a tag
    "digest",  # part of a workflow
    str(FIXED_ID),  # a whole session id
    str(FIXED_ID).upper(),
    str(FIXED_ID)[:8],  # part of an id: no match (ids match whole)
    # Words that may or may not be a session id: the id condition is left out only for words
    # no UUID column can equal (each database compares its own text form of the id).
    FIXED_ID.hex,  # no hyphens: the stored form on SQLite and MariaDB
    FIXED_ID.hex.upper(),
    "6f1c2a9e3b4d-4e5f8a7b9c0d1e2f3a4b",  # hyphens elsewhere
    "{" + str(FIXED_ID) + "}",
    "urn:uuid:" + str(FIXED_ID),
    str(FIXED_ID)[:-1],  # one digit short
    str(FIXED_ID)[:-1] + "g",  # not hex
    str(FIXED_ID).replace("a", "á"),  # not ASCII: left to the database
    "acme vip",  # two words: both must match
    '"chat-00001"',  # quoted
    "alice triage",
    "nothing-like-this",
    "a",  # matches most sessions through several fields at once
]


def _stock(request: object, term: str) -> set[uuid.UUID]:
    """Django's own admin search on the same search fields, duplicates removed."""
    site_admin = admin.site._registry[Session]
    stock = ModelAdmin(Session, admin.site)
    stock.get_search_fields = site_admin.get_search_fields  # type: ignore[method-assign]
    queryset, duplicates = stock.get_search_results(request, Session.objects.all(), term)  # type: ignore[arg-type]
    assert duplicates  # the tags: a join that repeats sessions
    return set(queryset.distinct().values_list("pk", flat=True))


@pytest.mark.parametrize("term", TERMS)
def test_search_finds_what_the_stock_search_finds(sessions: list[Session], term: str) -> None:
    request = RequestFactory().get("/")
    site_admin = admin.site._registry[Session]
    queryset, duplicates = site_admin.get_search_results(request, Session.objects.all(), term)
    found = list(queryset.values_list("pk", flat=True))
    assert duplicates is False
    assert len(found) == len(set(found))  # never twice
    assert set(found) == _stock(request, term)


def test_expected_matches(sessions: list[Session]) -> None:
    """A few of the matches spelled out (the comparison above would pass on a search that finds
    nothing at all if the stock one did not either)."""
    request = RequestFactory().get("/")
    site_admin = admin.site._registry[Session]

    def chats(term: str) -> set[str]:
        queryset, _ = site_admin.get_search_results(request, Session.objects.all(), term)
        return set(queryset.values_list("chat_id", flat=True))

    assert chats("vip") == {"chat-00001", "chat-00012", "chat-vip"}
    assert chats("support") == {"chat-00001", "chat-vip"}
    assert chats("alice") == {"chat-00001", "chat-00002"}
    assert chats("BOB_STONE") == {"chat-00012", "ACME-import-7"}
    assert chats(str(FIXED_ID).upper()) == {"chat-00001"}
    assert chats("acme vip") == {"chat-00001", "chat-00012"}


def test_list_search_has_no_distinct(sessions: list[Session]) -> None:
    user = User.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(user)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("admin:ag2_logging_session_changelist"), {"q": "vip"})
    assert response.status_code == 200
    assert {s.chat_id for s in response.context["cl"].result_list} == {"chat-00001", "chat-00012", "chat-vip"}
    # The searched queries (the count and the page), not the filters' choices.
    searched = [q["sql"] for q in captured.captured_queries if "%VIP%" in q["sql"].upper()]
    assert len(searched) >= 2
    assert not any("DISTINCT" in sql.upper() for sql in searched)
