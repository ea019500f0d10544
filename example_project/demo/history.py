"""The demo's history: what three enterprises ran over the past days, so every report, 30-day chart,
comparison and trend has something true to show.

:func:`schedule` lays the sessions out (deterministic for a given ``today``):

* **a weekly rhythm**: three to four sessions each weekday, one on Saturdays and Sundays;
* **a model switch midway**: acme's ``support_triage`` runs ``gpt-4o`` until ``SWITCH_DAYS_AGO``
  days ago, then ``gpt-4o-mini`` (its cost per session falls, its sessions go on);
* **an error burst**: on the weekday nearest ``BURST_DAYS_AGO`` days ago, globex's
  ``support_triage`` fails ``BURST_FAILURES`` times more (the model answers 400);
* **an unpriced model**: acme's ``research_digest`` runs ``acme-internal-llm``, in no price list,
  twice a week (calls recorded with an unknown cost, never $0);
* **growth**: token counts rise over the weeks, and vary from day to day.

:func:`run_back_dated` runs one of them as it would have run that day: the real AG2 agents, the
real recorder, journal and pipeline, with the process's clock set to the session's time by
time-machine (``time_machine.travel``, ticking): every timestamp the app takes (the session's,
each call's, the journal's folder, budget periods) is that day's, and nothing is written to the
tables except by the app itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Days of history a seed covers, today included (``seed_demo --days``).
DEFAULT_DAYS = 60
#: Chat ids of back-dated sessions start with this (``--reset`` deletes them).
HISTORY_PREFIX = "demo-history-"
SWITCH_DAYS_AGO = 30
BURST_DAYS_AGO = 12
BURST_FAILURES = 4

#: (enterprise, workflow) -> the kind of team (as in seed_demo's WORKFLOWS), task text and SKU.
TASKS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("acme", "support_triage"): (
        "group chat",
        "A customer reports a damaged parcel. Triage the ticket.",
        "SKU-1001",
    ),
    ("acme", "invoice_review"): (
        "two agents",
        "Check an invoice line against the catalogue price.",
        "SKU-2002",
    ),
    ("acme", "research_digest"): ("two agents", "Summarise this week's supplier notes.", "SKU-3003"),
    ("globex", "support_triage"): (
        "group chat",
        "A customer cannot find a manual. Triage the ticket.",
        "SKU-2002",
    ),
    ("globex", "invoice_review"): (
        "two agents",
        "Check an invoice line against the catalogue price.",
        "GX-77",
    ),
    ("globex", "research_digest"): ("two agents", "Digest the market notes on competitors.", "SKU-1001"),
    ("initech", "support_triage"): ("group chat", "A customer asks for a refund. Triage the ticket.", "IN-5"),
    ("initech", "invoice_review"): (
        "two agents",
        "Check an invoice line against the catalogue price.",
        "IN-9",
    ),
}
#: Besides acme's and globex's support_triage every weekday: one more run, by weekday (Mon = 0).
ROTATION: dict[int, tuple[str, str]] = {
    0: ("acme", "invoice_review"),
    1: ("globex", "research_digest"),
    2: ("acme", "research_digest"),
    3: ("globex", "invoice_review"),
    4: ("initech", "support_triage"),
}


@dataclass(frozen=True)
class HistorySession:
    """One back-dated session: when it starts (UTC), who ran what, on which model, the fake
    server's directives (``usage``: token counts; ``fail``: an HTTP status every call gets)."""

    at: dt.datetime
    enterprise: str
    workflow: str
    model: str
    usage: str
    fail: int | None = None
    number: int = 1

    @property
    def chat_id(self) -> str:
        """Fixed for a day, enterprise, workflow and number: what makes seeding idempotent."""
        return f"{HISTORY_PREFIX}{self.at.date().isoformat()}-{self.enterprise}-{self.workflow}-{self.number}"

    @property
    def kind(self) -> str:
        return TASKS[(self.enterprise, self.workflow)][0]


def _model(enterprise: str, workflow: str, days_ago: int) -> str:
    if (enterprise, workflow) == ("acme", "support_triage"):
        return "gpt-4o" if days_ago >= SWITCH_DAYS_AGO else "gpt-4o-mini"
    if (enterprise, workflow) == ("acme", "research_digest"):
        return "acme-internal-llm"  # in no price list
    if (enterprise, workflow) in {("acme", "invoice_review"), ("globex", "support_triage")}:
        return "gpt-4o"
    return "gpt-4o-mini"


def _usage(day: dt.date, enterprise: str, workflow: str, days_ago: int, days: int) -> str:
    """Token counts for every call of a session: a day-to-day wobble (from a hash, so the same
    day always gets the same) on a rise of about half over the period."""
    wobble = hashlib.sha256(f"{day}{enterprise}{workflow}".encode()).digest()[0] / 255
    growth = 1 + 0.5 * (days - days_ago) / days
    prompt = int((400 + 500 * wobble) * growth)
    completion = int((60 + 90 * wobble) * growth)
    cached = prompt // 4 if workflow == "support_triage" else 0
    return f"prompt={prompt},completion={completion},cached={cached},reasoning=0"


def _burst_day(today: dt.date) -> dt.date:
    day = today - dt.timedelta(days=BURST_DAYS_AGO)
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day


def schedule(today: dt.date, days: int = DEFAULT_DAYS) -> list[HistorySession]:
    """The back-dated sessions of the ``days - 1`` days before ``today`` (today's are seed_demo's
    own six), oldest first."""
    burst = _burst_day(today)
    sessions: list[HistorySession] = []
    for days_ago in range(days - 1, 0, -1):
        day = today - dt.timedelta(days=days_ago)
        if day.weekday() < 5:
            runs = [("acme", "support_triage"), ("globex", "support_triage"), ROTATION[day.weekday()]]
            if day.weekday() == 0:
                runs.append(("initech", "invoice_review"))
        else:
            runs = [("acme", "support_triage")]
        for index, (enterprise, workflow) in enumerate(runs):
            at = dt.datetime.combine(day, dt.time(8 + 2 * index, 7 * index + 5), tzinfo=dt.UTC)
            model = _model(enterprise, workflow, days_ago)
            usage = _usage(day, enterprise, workflow, days_ago, days)
            sessions.append(HistorySession(at, enterprise, workflow, model, usage))
        if day == burst:
            for number in range(1, BURST_FAILURES + 1):
                at = dt.datetime.combine(day, dt.time(15, 10 * number), tzinfo=dt.UTC)
                usage = _usage(day, "globex", "support_triage", days_ago, days)
                sessions.append(
                    HistorySession(at, "globex", "support_triage", "gpt-4o", usage, 400, number + 1)
                )
    return sessions


def run_back_dated(session: HistorySession, run: Callable[[], Any]) -> Any:
    """``run()`` (which opens the ag2_logging session and runs the team) with the clock at
    ``session.at``, ticking; then wait for ag2_logging to write and ingest it while the clock is
    still that day's (``ag2_logging.flush()``)."""
    import time_machine

    import ag2_logging

    with time_machine.travel(session.at, tick=True):
        try:
            return run()
        finally:
            ag2_logging.flush()
