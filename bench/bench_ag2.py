"""Hot path through the ``ag2`` 1.x integration (its own virtualenv, ``.venv-ag2``).

AG2 1.x has no runtime logger: the app records through a middleware on each agent. The figure is
the cost the middleware adds to one agent turn that makes one LLM call (the turn's events, the
``llm_call`` line with its redacted bodies, pricing, live counters), measured side by side with
the same turn on the same kind of agent without the middleware. The LLM is AG2's own scripted
``ag2.testing.TestConfig`` (in process, no network); the prompt is the hot path's ~2 KB of text and
the reply ~1 KB. Runs in a child process with ``.venv-ag2/bin/python``; without that virtualenv
(or without ``ag2_logging/integrations/ag2.py``) the row says so.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bench._common import REPO, SYSTEM_MESSAGE, interleaved, row, setup_django, us

AG2_PYTHON = REPO / ".venv-ag2" / "bin" / "python"
REPLY = (
    "Per team: Billing added 3 seats (9 -> 12, +$72), Onboarding added 2 seats (5 -> 7, +$48). "
    "Transcript storage overage rose from 41 GB to 83 GB (+$21.00), almost all of it in Billing, "
    "whose calls got longer after the new refund policy. Nothing else changed. "
) * 3


def child(quick: bool) -> dict[str, float]:
    setup_django()
    from ag2 import Agent
    from ag2.testing import TestConfig

    from ag2_logging import ag2_logging_session
    from ag2_logging.integrations.ag2 import logging_middleware

    prompt = SYSTEM_MESSAGE + "\n\nOur March invoice looks higher than February's. Which line items changed?"
    config = TestConfig(REPLY)
    plain = Agent("assistant", config=config)
    logged = Agent("assistant", config=config, middleware=[logging_middleware()])
    loop = asyncio.new_event_loop()

    def case(agent: Any) -> Any:
        async def turns(n: int) -> None:
            for _ in range(n):
                await agent.ask(prompt)

        return lambda n: loop.run_until_complete(turns(n))

    with ag2_logging_session("bench-ag2", "bench", "acme") as session:
        assert session is not None
        medians = interleaved(
            {"plain": case(plain), "logged": case(logged)},
            rounds=8 if quick else 30,
            block_seconds=0.02 if quick else 0.05,
        )
        assert session.totals.call_count > 0
    loop.close()
    return medians


def run(quick: bool = False) -> list[dict[str, Any]]:
    figure = "Hot path via the ag2 1.x middleware, per turn with one LLM call"
    if not (REPO / "ag2_logging" / "integrations" / "ag2.py").exists():
        return [row(figure, "n/a", "", None, "integration not present", None)]
    if not AG2_PYTHON.exists():
        return [row(figure, "n/a", "", None, "no .venv-ag2 (make test builds it)", None)]
    got = run_child_with(AG2_PYTHON, quick)
    extra = got["logged"] - got["plain"]
    return [
        row(
            figure,
            f"+{us(extra)}",
            f"{us(got['plain'])} turn without it",
            got["logged"] / got["plain"],
            "(compare: FileLogger row)",
            None,
        )
    ]


def run_child_with(python: Path, quick: bool) -> dict[str, float]:
    import os
    import subprocess

    proc = subprocess.run(
        [str(python), "-m", "bench.bench_ag2", "--child", "quick" if quick else "full"],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.bench_ag2 failed:\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    print(json.dumps(child(sys.argv[2] == "quick")))
