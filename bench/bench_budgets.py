"""The budgets' pre-call check per LLM call, beside AG2's own ``FileLogger`` in the same run.

Figures (issue 17): the check with a reservation and its settlement on the database ledger
(amortized: leased allowances, spend moved every 0.5 s) at most 10 µs a call; on Redis (one Lua
check and one pipeline per call, loopback) at most 1 ms; with no active budget the check is a
few attribute reads (``enforce.idle``). The reference is AG2 classic's ``FileLogger`` writing
one chat completion (what a process already pays per call with AG2's own logging).
"""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from typing import Any

from bench._common import call_args, interleaved, make_agent, make_request, row, run_dir, setup_django, us

REDIS_URL = os.environ.get("AG2_BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")


def _file_logger_case() -> Any:
    from autogen.logger.file_logger import FileLogger

    scratch = run_dir() / "budgets"
    scratch.mkdir(exist_ok=True)
    cwd = os.getcwd()
    os.chdir(scratch)
    try:
        logger = FileLogger({"filename": "runtime.log"})
    finally:
        os.chdir(cwd)
    logger.start()
    kwargs = call_args(make_agent())
    kwargs["source"] = kwargs.pop("agent")  # runtime_logging's name for it

    def calls(n: int) -> None:
        for _ in range(n):
            logger.log_chat_completion(**kwargs)

    return calls


def _ledger_case(ledger: Any, lease: bool) -> Any:
    from ag2_logging.budgets.accounts import Account

    meta = {"budget_id": None, "period_start": None, "period_end": None}
    account = Account(ledger, f"bench:{type(ledger).__name__}", [], meta, lease=lease)
    cost, limit = Decimal("0.0000015"), Decimal("1000000")

    def calls(n: int) -> None:
        for _ in range(n):
            if not account.reserve(cost, limit):
                raise RuntimeError("the bench budget ran out")
            account.settle(cost, cost)

    return calls


def _full_case() -> Any:
    """``enforce.check`` + ``settle`` as the SDK hook runs them: a global Budget row, the
    request of a classic AssistantAgent (system message and one turn) estimated and priced."""
    from ag2_logging.budgets import enforce
    from ag2_logging.models import Budget

    Budget.objects.filter(name="bench").delete()
    Budget.objects.create(name="bench", scope="global", period="day", limit=Decimal("1000000"))
    enforce.registry.refresh(force=True)
    body = {"model": "gpt-4o-mini", "messages": make_request()["messages"], "max_tokens": 500}
    usage = {"prompt_tokens": 300, "completion_tokens": 50, "total_tokens": 350}

    def calls(n: int) -> None:
        for _ in range(n):
            enforce.settle(enforce.check(None, "openai", "gpt-4o-mini", body), usage)

    return calls


def run(quick: bool = False) -> list[dict[str, Any]]:
    setup_django()
    from ag2_logging.budgets import enforce
    from ag2_logging.budgets.ledger import DatabaseLedger, RedisLedger

    enforce.reset()
    enforce.registry.refresh(force=True)  # no Budget rows: the cached "no budgets" answer
    cases = {
        "file_logger": _file_logger_case(),
        "idle": lambda n: [enforce.idle(None) for _ in range(n)] and None,
        "database": _ledger_case(DatabaseLedger(), lease=True),
    }
    try:
        import redis

        redis.Redis.from_url(REDIS_URL).ping()
        cases["redis"] = _ledger_case(RedisLedger(REDIS_URL), lease=False)
    except Exception:  # no Redis here: its row says so
        pass
    medians = interleaved(cases, rounds=5 if quick else 15, max_block={"redis": 2000})
    full = interleaved({"full": _full_case(), "file_logger": cases["file_logger"]}, rounds=5 if quick else 15)
    from ag2_logging.models import Budget

    Budget.objects.filter(name="bench").delete()
    ref = medians["file_logger"]
    rows = [
        row(
            "budget check, no active budget",
            us(medians["idle"]),
            us(ref) + " FileLogger",
            medians["idle"] / ref,
            "~0",
            medians["idle"] < 1e-6,
        ),
        row(
            "budget check + reservation + settle, database ledger (amortized)",
            us(medians["database"]),
            us(ref) + " FileLogger",
            medians["database"] / ref,
            "<= 10 µs",
            medians["database"] <= 10e-6,
        ),
    ]
    rows.append(
        row(
            "whole pre-call check (estimate, price, reserve) + settle, database ledger",
            us(full["full"]),
            us(full["file_logger"]) + " FileLogger",
            full["full"] / full["file_logger"],
            "<= 10 µs (issue 17)",
            full["full"] <= 10e-6,
        )
    )
    if "redis" in medians:
        rows.append(
            row(
                "budget check + reservation + settle, Redis ledger",
                us(medians["redis"]),
                us(ref) + " FileLogger",
                medians["redis"] / ref,
                "<= 1 ms",
                medians["redis"] <= 1e-3,
            )
        )
    else:
        rows.append(row("budget check, Redis ledger", "no Redis at " + REDIS_URL, "", None, "<= 1 ms", None))
    return rows


if __name__ == "__main__":
    json.dump(run(quick="--quick" in sys.argv), sys.stdout, indent=2, default=str)
    print()
