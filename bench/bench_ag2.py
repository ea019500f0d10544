"""Hot path through the ``ag2`` 1.x integration (its own virtualenv, ``.venv-ag2``).

AG2 1.x has no runtime logger: the app records through a middleware on each agent. The figure is
the time ``logging_middleware()`` adds to one agent turn that makes one LLM call (the turn's
events, the ``llm_call`` line with its redacted bodies, pricing, live counters), against the same
turn on the same kind of agent without it, beside what AG2's own ``TelemetryMiddleware`` adds to
that turn (spans to the OpenTelemetry SDK's ``InMemorySpanExporter`` through a
``SimpleSpanProcessor``). Target: at most 50 µs added per turn, at the median and at p90.

The LLM is AG2's own scripted ``ag2.testing.TestConfig`` (in process, no network); the prompt is
the hot path's ~2 KB of text and the reply ~1 KB. The three agents take turns one after the other
in rotating order, each turn timed alone, so drift on a shared machine hits all three alike; the
figures are the median and the 90th percentile of each agent's turn times, the added time the
difference from the plain agent's. Runs in a child process with ``.venv-ag2/bin/python``; without
that virtualenv (or without ``ag2_logging/integrations/ag2.py``, or without the OpenTelemetry SDK
there) the row says so.

Profile it (``.venv-ag2/bin/python -m bench.bench_ag2 --profile logged``, with pyinstrument
installed in ``.venv-ag2``) to see where a turn's time goes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import REPO, SYSTEM_MESSAGE, row, setup_django, us

AG2_PYTHON = REPO / ".venv-ag2" / "bin" / "python"
REPLY = (
    "Per team: Billing added 3 seats (9 -> 12, +$72), Onboarding added 2 seats (5 -> 7, +$48). "
    "Transcript storage overage rose from 41 GB to 83 GB (+$21.00), almost all of it in Billing, "
    "whose calls got longer after the new refund policy. Nothing else changed. "
) * 3
PROMPT = SYSTEM_MESSAGE + "\n\nOur March invoice looks higher than February's. Which line items changed?"
#: At most this many µs added per turn by logging_middleware(), median and p90.
TARGET_US = 50.0
CASES = ("plain", "logged", "telemetry")
#: Also timed: a middleware with the same four hooks that only calls on (ag2's own cost of a
#: middleware, which no middleware can avoid: ours minus this one is the app's own work).
NOOP = "noop"


def _agents() -> dict[str, Any]:
    """The three agents, alike but for their middleware (the telemetry one only with the OTel SDK)."""
    from ag2 import Agent
    from ag2.testing import TestConfig

    from ag2_logging.integrations.ag2 import logging_middleware

    config = TestConfig(REPLY)
    agents = {
        "plain": Agent("assistant", config=config),
        "logged": Agent("assistant", config=config, middleware=[logging_middleware()]),
        NOOP: Agent("assistant", config=config, middleware=[_noop_middleware()]),
    }
    try:
        from ag2.middleware import TelemetryMiddleware
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        return agents
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = TelemetryMiddleware(tracer_provider=provider, agent_name="assistant")
    agents["telemetry"] = Agent("assistant", config=config, middleware=[telemetry])
    agents["telemetry"]._bench_exporter = exporter  # cleared between rounds: memory stays flat
    return agents


def _noop_middleware() -> Any:
    """A middleware overriding the hooks ours overrides, each only calling on."""
    from ag2.middleware import BaseMiddleware, Middleware

    class Noop(BaseMiddleware):
        async def on_turn(self, call_next: Any, event: Any, context: Any) -> Any:
            return await call_next(event, context)

        async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> Any:
            return await call_next(events, context)

        async def on_tool_execution(self, call_next: Any, event: Any, context: Any) -> Any:
            return await call_next(event, context)

        async def on_human_input(self, call_next: Any, event: Any, context: Any) -> Any:
            return await call_next(event, context)

    return Middleware(Noop)


async def _rounds(agents: dict[str, Any], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per turn of each agent, one turn each per round, in rotating order: wall-clock
    time under the agent's name, the process's CPU time (all threads) under ``name + "/cpu"``."""
    names = list(agents)
    samples: dict[str, list[float]] = {key: [] for name in names for key in (name, f"{name}/cpu")}
    for r in range(warmup + rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            agent = agents[name]
            cpu, start = time.process_time(), time.perf_counter()
            await agent.ask(PROMPT)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            if r >= warmup:
                samples[name].append(elapsed)
                samples[f"{name}/cpu"].append(cpu)
        exporter = getattr(agents.get("telemetry"), "_bench_exporter", None)
        if exporter is not None:
            exporter.clear()
    return samples


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def child(quick: bool) -> dict[str, dict[str, float]]:
    setup_django()
    from ag2_logging import ag2_logging_session

    agents = _agents()
    loop = asyncio.new_event_loop()
    with ag2_logging_session("bench-ag2", "bench", "acme") as session:
        assert session is not None
        loop.run_until_complete(_rounds(agents, 0, 20))  # warm every path once
        gc.collect()
        gc.freeze()  # as interleaved() does: no full collection of AG2's objects mid-run
        samples = loop.run_until_complete(_rounds(agents, 60 if quick else 1500, 10))
        assert session.totals.call_count > 0
    loop.close()
    return {
        name: {"median": statistics.median(values), "p90": p90(values), "n": len(values)}
        for name, values in samples.items()
    }


def profile(case: str, turns: int = 300) -> None:
    """Print a pyinstrument profile of ``turns`` turns of one agent (all frames shown)."""
    from pyinstrument import Profiler

    setup_django()
    from ag2_logging import ag2_logging_session

    agent = _agents()[case]
    loop = asyncio.new_event_loop()
    with ag2_logging_session("bench-ag2-profile", "bench", "acme"):
        loop.run_until_complete(_rounds({case: agent}, 0, 50))
        profiler = Profiler(interval=0.0002)
        profiler.start()
        loop.run_until_complete(_rounds({case: agent}, turns, 0))
        profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=True))


def _signed(seconds: float) -> str:
    return f"{'+' if seconds >= 0 else '-'}{us(abs(seconds))}"


def run(quick: bool = False) -> list[dict[str, Any]]:
    figure = "ag2 1.x middleware: time added per turn with one LLM call"
    if not (REPO / "ag2_logging" / "integrations" / "ag2.py").exists():
        return [row(figure, "n/a", "", None, "integration not present", None)]
    if not AG2_PYTHON.exists():
        return [row(figure, "n/a", "", None, "no .venv-ag2 (make test builds it)", None)]
    got = run_child_with(AG2_PYTHON, quick)
    rows = []
    # Wall-clock time is what a user waits; the process's CPU time is the steadier figure on a
    # shared machine (a turn hands work to AG2's thread pool: scheduling delays land in wall time).
    for clock, suffix in (("wall", ""), ("CPU", "/cpu")):
        plain, logged, telemetry = (got.get(name + suffix) for name in CASES)
        assert plain is not None and logged is not None
        for stat in ("median", "p90"):
            extra = logged[stat] - plain[stat]
            reference = f"{us(plain[stat])} turn without it"
            ratio: float | None = logged[stat] / plain[stat]
            if telemetry is not None:
                telemetry_extra = telemetry[stat] - plain[stat]
                reference += f"; TelemetryMiddleware {_signed(telemetry_extra)}"
                ratio = extra / telemetry_extra if telemetry_extra > 0 else None
            rows.append(
                row(
                    f"{figure} ({clock} {stat}, {int(plain['n'])} turns each; ratio: ours / Telemetry's)",
                    _signed(extra),
                    reference,
                    ratio,
                    f"<= {TARGET_US:.0f} µs",
                    extra <= TARGET_US * 1e-6,
                )
            )
        noop = got.get(NOOP + suffix)
        if noop is not None:
            for stat in ("median", "p90"):
                machinery, own = noop[stat] - plain[stat], logged[stat] - noop[stat]
                rows.append(
                    row(
                        f"ag2 1.x: a do-nothing middleware with the same hooks ({clock} {stat}): ag2's own cost",
                        _signed(machinery),
                        f"{us(plain[stat])} turn without it",
                        noop[stat] / plain[stat],
                        "",
                        None,
                    )
                )
                rows.append(
                    row(
                        f"ag2 1.x middleware: the app's own work per turn, ours minus do-nothing ({clock} {stat})",
                        _signed(own),
                        f"do-nothing middleware {_signed(machinery)}",
                        None,
                        f"<= {TARGET_US:.0f} µs",
                        own <= TARGET_US * 1e-6,
                    )
                )
    plain, logged = got["plain"], got["logged"]
    rows.append(
        row(
            "ag2 1.x turn with logging_middleware() vs without (wall median)",
            us(logged["median"]),
            us(plain["median"]),
            logged["median"] / plain["median"],
            "",
            None,
        )
    )
    return rows


def run_child_with(python: Path, quick: bool) -> dict[str, dict[str, float]]:
    import os
    import subprocess

    proc = subprocess.run(
        [str(python), "-m", "bench.bench_ag2", "--child", "quick" if quick else "full"],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.bench_ag2 failed:\n{proc.stderr[-3000:]}")
    result: dict[str, dict[str, float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    print(json.dumps(child(sys.argv[2] == "quick")))
elif __name__ == "__main__" and sys.argv[1:2] == ["--profile"]:
    profile(sys.argv[2] if len(sys.argv) > 2 else "logged")
