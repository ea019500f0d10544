"""A small, exactly known set of sessions and calls for the report tests (rows written directly,
then rolled up the way production does)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ag2_logging.models import AgentEvent, DailyRollup, LLMCall, Session, ToolCall
from ag2_logging.pipeline.rollups import rebuild_rollups

D = Decimal


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def at(days_ago: int, hour: int = 10, minute: int = 0, second: float = 0) -> dt.datetime:
    day = today() - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC) + dt.timedelta(seconds=second)


def session(chat_id: str, enterprise: str, workflow: str, started: dt.datetime, **extra: Any) -> Session:
    status = extra.pop("status", Session.Status.COMPLETED)
    ended = started + dt.timedelta(seconds=30) if status != Session.Status.RUNNING else None
    return Session.objects.create(
        chat_id=chat_id,
        enterprise_id=enterprise,
        workflow_name=workflow,
        started_at=started,
        ended_at=ended,
        status=status,
        **extra,
    )


def call(
    s: Session | None,
    seq: int,
    *,
    model: str,
    start: dt.datetime,
    prompt: int = 0,
    completion: int = 0,
    cached: int = 0,
    reasoning: int = 0,
    cost: Decimal | None,
    latency_ms: float,
    provider: str = "openai",
    agent: str = "assistant",
    status: str = "success",
    retries: int = 0,
    error: str = "",
    is_cached: bool = False,
) -> LLMCall:
    return LLMCall.objects.create(
        id=uuid.uuid4(),
        session=s,
        seq=seq,
        agent_name=agent,
        provider=provider,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        total_tokens=prompt + completion,
        cost=cost,
        price_status="unknown" if cost is None else "priced",
        latency_ms=latency_ms,
        status=status,
        error=error,
        retries=retries,
        is_cached=is_cached,
        started_at=start,
        ended_at=start + dt.timedelta(milliseconds=latency_ms),
    )


def refresh_totals(s: Session) -> None:
    from ag2_logging.pipeline.ingest import refresh_session_totals

    refresh_session_totals(s)
    s.save()


@dataclass
class Data:
    s1: Session
    s2: Session
    s3: Session
    old: Session
    running: Session


def make_report_data() -> Data:
    """Within the last 7 days:

    =====  =======  ========  ======================  =====  ==========================
    chat   enterpr  workflow  model (agent)           calls  cost
    =====  =======  ========  ======================  =====  ==========================
    s1     acme     triage    gpt-4o-mini (assistant)  3      0.0012 + 0.0021 + 0 (error)
    s2     acme     digest    gpt-4o (analyst)         2      0.05 + 0.07
    s3     globex   triage    mystery (assistant)      2      unknown, unknown
                              gpt-4o-mini (assistant)  1      0.0005
    =====  =======  ========  ======================  =====  ==========================

    plus ``old`` (acme/triage, 40 days ago, 1.00) and ``running`` (acme/triage, today, not in
    rollups), and one unattributed call.
    """
    s1 = session("chat-s1", "acme", "triage", at(2))
    call(
        s1,
        1,
        model="gpt-4o-mini",
        start=at(2, 10, 0, 1),
        prompt=1000,
        completion=200,
        cached=100,
        cost=D("0.0012"),
        latency_ms=800,
    )
    call(
        s1,
        3,
        model="gpt-4o-mini",
        start=at(2, 10, 0, 5),
        prompt=2000,
        completion=300,
        reasoning=50,
        cost=D("0.0021"),
        latency_ms=1200,
    )
    call(
        s1,
        5,
        model="gpt-4o-mini",
        start=at(2, 10, 0, 9),
        cost=D(0),
        latency_ms=300,
        status="error",
        error="Error code: 500",
        retries=2,
    )
    ToolCall.objects.create(
        id=uuid.uuid4(),
        session=s1,
        seq=4,
        agent_name="user",
        name="add",
        arguments={"a": 2, "b": 3},
        result_summary="5",
        started_at=at(2, 10, 0, 3),
        ended_at=at(2, 10, 0, 3.5),
        duration_ms=500,
    )
    AgentEvent.objects.create(
        id=uuid.uuid4(),
        session=s1,
        seq=0,
        agent_name="assistant",
        name="new_agent",
        created_at=at(2, 10, 0, 0.5),
    )
    AgentEvent.objects.create(
        id=uuid.uuid4(),
        session=s1,
        seq=2,
        agent_name="user",
        name="received_message",
        created_at=at(2, 10, 0, 2),
    )
    s2 = session("chat-s2", "acme", "digest", at(1, 9))
    call(
        s2,
        1,
        model="gpt-4o",
        agent="analyst",
        start=at(1, 9, 0, 1),
        prompt=3000,
        completion=500,
        cached=1000,
        cost=D("0.05"),
        latency_ms=2500,
    )
    call(
        s2,
        2,
        model="gpt-4o",
        agent="analyst",
        start=at(1, 9, 0, 5),
        prompt=4000,
        completion=700,
        cost=D("0.07"),
        latency_ms=3100,
        retries=1,
    )
    s3 = session("chat-s3", "globex", "triage", at(1, 14))
    call(
        s3,
        1,
        model="mystery",
        provider="custom",
        start=at(1, 14, 0, 1),
        prompt=500,
        completion=100,
        cost=None,
        latency_ms=400,
    )
    call(
        s3,
        2,
        model="mystery",
        provider="custom",
        start=at(1, 14, 0, 2),
        prompt=500,
        completion=100,
        cost=None,
        latency_ms=600,
    )
    call(
        s3,
        3,
        model="gpt-4o-mini",
        start=at(1, 14, 0, 3),
        prompt=300,
        completion=50,
        cost=D("0.0005"),
        latency_ms=700,
        is_cached=False,
    )
    old = session("chat-old", "acme", "triage", at(40))
    call(
        old,
        1,
        model="gpt-4o-mini",
        start=at(40, 10, 0, 1),
        prompt=100000,
        completion=1000,
        cost=D("1.00"),
        latency_ms=900,
    )
    running = session("chat-running", "acme", "triage", at(0, 0, 5), status=Session.Status.RUNNING)
    call(
        running,
        1,
        model="gpt-4o",
        start=at(0, 0, 5, 1),
        prompt=10,
        completion=10,
        cost=D("0.5"),
        latency_ms=100,
    )
    call(
        None,
        0,
        model="gpt-4o-mini",
        start=at(1, 8),
        prompt=10,
        completion=10,
        cost=D("0.0001"),
        latency_ms=100,
    )
    for s in (s1, s2, s3, old, running):
        refresh_totals(s)
    rebuild_rollups()
    return Data(s1=s1, s2=s2, s3=s3, old=old, running=running)


def week_params(**extra: str) -> dict[str, str]:
    return {"start": (today() - dt.timedelta(days=6)).isoformat(), "end": today().isoformat(), **extra}


def make_rich_data(days: int = 30, sessions_per_day: int = 6, seed: int = 7) -> None:
    """A month of varied sessions (enterprises, workflows, models, agents, some unpriced and some
    failed calls), for the browser tests and their screenshots."""
    import random

    rng = random.Random(seed)
    enterprises = ["acme", "globex", "initech", "umbrella", "hooli"]
    workflows = {
        "support_triage": ("triage", "resolver"),
        "weekly_digest": ("writer", "editor"),
        "code_review": ("reviewer",),
    }
    models = {
        "gpt-4o": ("openai", D("0.0000025"), D("0.00001")),
        "gpt-4o-mini": ("openai", D("0.00000015"), D("0.0000006")),
        "claude-sonnet-4": ("anthropic", D("0.000003"), D("0.000015")),
        "o3-mini": ("openai", D("0.0000011"), D("0.0000044")),
        "llama-local": ("local", D(0), D(0)),
        "house-model": ("custom", None, None),
    }
    agent_models = {
        "triage": "gpt-4o-mini",
        "resolver": "gpt-4o",
        "writer": "claude-sonnet-4",
        "editor": "gpt-4o-mini",
        "reviewer": "o3-mini",
    }
    sessions: list[Session] = []
    calls: list[LLMCall] = []
    tools: list[ToolCall] = []
    events: list[AgentEvent] = []
    for day in range(days):
        for n in range(sessions_per_day + rng.randint(-2, 3)):
            enterprise = rng.choice(enterprises[: 2 + day % 4])
            workflow = rng.choice(list(workflows))
            start = at(day, 8 + n % 10, rng.randint(0, 59))
            s = Session(
                chat_id=f"{enterprise}-{workflow}-{day}-{n}",
                enterprise_id=enterprise,
                workflow_name=workflow,
                started_at=start,
                ended_at=start + dt.timedelta(seconds=40),
                status=Session.Status.FAILED if rng.random() < 0.05 else Session.Status.COMPLETED,
            )
            sessions.append(s)
            moment = start
            seq = 0
            for turn in range(rng.randint(2, 6)):
                agent = rng.choice(workflows[workflow])
                model = agent_models[agent]
                if enterprise == "hooli" and agent == "resolver":
                    model = "house-model"
                if enterprise == "initech" and turn == 0:
                    model = "llama-local"
                provider, in_price, out_price = models[model]
                prompt = rng.randint(400, 6000)
                completion = rng.randint(50, 900)
                cached = rng.choice((0, 0, prompt // 3))
                reasoning = completion // 2 if model == "o3-mini" else 0
                failed = rng.random() < 0.04
                latency = rng.lognormvariate(7.0 if "mini" in model else 7.6, 0.55)
                cost = (
                    None
                    if in_price is None
                    else (in_price * prompt + out_price * completion).quantize(D("0.0000000001"))
                )
                events.append(
                    AgentEvent(
                        id=uuid.uuid4(),
                        session=s,
                        seq=seq,
                        agent_name=agent,
                        name="received_message",
                        created_at=moment,
                    )
                )
                seq += 1
                calls.append(
                    LLMCall(
                        id=uuid.uuid4(),
                        session=s,
                        seq=seq,
                        agent_name=agent,
                        provider=provider,
                        model=model,
                        prompt_tokens=0 if failed else prompt,
                        completion_tokens=0 if failed else completion,
                        cached_tokens=0 if failed else cached,
                        reasoning_tokens=0 if failed else reasoning,
                        total_tokens=0 if failed else prompt + completion,
                        cost=D(0) if failed else cost,
                        price_status="unknown" if cost is None and not failed else "priced",
                        latency_ms=latency,
                        status="error" if failed else "success",
                        error="Error code: 429 - rate limited" if failed else "",
                        retries=rng.choice((0, 0, 0, 1, 2)),
                        started_at=moment,
                        ended_at=moment + dt.timedelta(milliseconds=latency),
                    )
                )
                seq += 1
                moment += dt.timedelta(milliseconds=latency + 50)
                if agent in ("resolver", "reviewer"):
                    tools.append(
                        ToolCall(
                            id=uuid.uuid4(),
                            session=s,
                            seq=seq,
                            agent_name=agent,
                            name="lookup_ticket" if agent == "resolver" else "run_tests",
                            arguments={"id": turn},
                            result_summary="ok",
                            started_at=moment,
                            ended_at=moment + dt.timedelta(milliseconds=300),
                            duration_ms=300,
                        )
                    )
                    seq += 1
                    moment += dt.timedelta(milliseconds=350)
            s.ended_at = moment + dt.timedelta(milliseconds=200)
    Session.objects.bulk_create(sessions)
    LLMCall.objects.bulk_create(calls)
    ToolCall.objects.bulk_create(tools)
    AgentEvent.objects.bulk_create(events)
    for s in sessions:
        refresh_totals(s)
    rebuild_rollups()


def rollup(day: dt.date, workflow: str, cost: str | None, *, enterprise: str = "acme", **extra: Any) -> None:
    """One rollup row: ``cost`` None is a call without a price."""
    calls = extra.pop("calls", 1)
    DailyRollup.objects.create(
        day=day,
        enterprise_id=enterprise,
        workflow_name=workflow,
        model=extra.pop("model", "gpt-4o"),
        provider="openai",
        agent_name="assistant",
        call_count=calls,
        unpriced_calls=calls if cost is None else 0,
        cost=Decimal(cost or 0),
        total_tokens=extra.pop("tokens", 1000),
        **extra,
    )
