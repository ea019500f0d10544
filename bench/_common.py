"""Shared pieces of the benchmarks: Django set-up, the request/response every hot-path figure uses,
interleaved timing with medians, and child processes for figures that need a fresh interpreter.

Every figure is measured side by side with its reference in one run: timings alternate between
the candidates in rounds (so drift on a shared machine hits all of them alike), each round runs a
block of calls sized to about ``block_seconds``, and the figure is the median of the per-call
block means after warm-up rounds.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FAKE_BASE_URL = "http://127.0.0.1:9/v1"  # never contacted: agents are built, no request is sent
FAKE_API_KEY = "sk-bench-Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdF"

_django_ready = False


def run_dir() -> Path:
    path = Path(os.environ.setdefault("AG2_BENCH_RUN_DIR", str(Path("/tmp") / f"ag2-bench-{os.getpid()}")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def setup_django(*, migrate: bool = True) -> None:
    """Configure Django with ``bench.settings`` (once per process) and migrate its database."""
    global _django_ready
    if _django_ready:
        return
    run_dir()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
    _django_ready = True


# -- the objects AG2 hands its logger --------------------------------------------------------------

SYSTEM_MESSAGE = (
    "You are a helpful AI assistant. Solve tasks using your coding and language skills. In the "
    "following cases, suggest python code (in a python coding block) or shell script (in a sh coding "
    "block) for the user to execute. 1. When you need to collect info, use the code to output the info "
    "you need, for example, browse or search the web, download/read a file, print the content of a "
    "webpage or a file, get the current date/time, check the operating system. After sufficient info is "
    "printed and the task is ready to be solved based on your language skill, you can solve the task by "
    "yourself. 2. When you need to perform some task with code, use the code to perform the task and "
    "output the result. Finish the task smartly. Solve the task step by step if you need to. If a plan "
    "is not provided, explain your plan first. Be clear which step uses code, and which step uses your "
    "language skill. When using code, you must indicate the script type in the code block. Reply "
    '"TERMINATE" in the end when everything is done.'
)


def make_request() -> dict[str, Any]:
    """A ~2 KB chat request as AG2 classic passes it (``OpenAIWrapper.create``'s params)."""
    return {
        "messages": [
            {"content": SYSTEM_MESSAGE, "role": "system"},
            {
                "content": "Our March invoice for the support workspace looks higher than February's. "
                "Which line items changed, and by how much? Keep it short.",
                "role": "user",
                "name": "user",
            },
            {
                "content": "The seat count went from 14 to 19 (+5 seats at $24) and the overage for "
                "stored transcripts doubled. Do you want a breakdown per team?",
                "role": "assistant",
                "name": "assistant",
            },
            {"content": "Yes, per team, and say which team added seats.", "role": "user", "name": "user"},
        ],
        "model": "gpt-4o-mini",
        "stream": False,
    }


def make_response() -> Any:
    """A ~1 KB ``openai.types.chat.ChatCompletion`` with usage details, as AG2 classic returns it."""
    from openai.types.chat import ChatCompletion

    content = (
        "Per team: Billing added 3 seats (9 -> 12, +$72), Onboarding added 2 seats (5 -> 7, +$48). "
        "Transcript storage overage rose from 41 GB to 83 GB (+$21.00), almost all of it in Billing, "
        "whose calls got longer after the new refund policy. Nothing else changed. TERMINATE"
    )
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-bench-7d3c0f1e9a",
            "object": "chat.completion",
            "created": 1_767_225_600,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                }
            ],
            "usage": {
                "prompt_tokens": 512,
                "completion_tokens": 96,
                "total_tokens": 608,
                "prompt_tokens_details": {"cached_tokens": 256, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 32, "audio_tokens": 0},
            },
            "cost": 0.0001344,
        }
    )


def make_agent(name: str = "assistant") -> Any:
    """A real classic AG2 assistant whose ``OpenAIWrapper`` points at a closed loopback port."""
    import autogen

    llm_config = {
        "config_list": [{"model": "gpt-4o-mini", "api_key": FAKE_API_KEY, "base_url": FAKE_BASE_URL}],
        "cache_seed": None,
    }
    return autogen.AssistantAgent(name, llm_config=llm_config)


def call_args(agent: Any) -> dict[str, Any]:
    """Keyword arguments of ``autogen.runtime_logging.log_chat_completion`` for one call."""
    import uuid

    from autogen.logger.logger_utils import get_current_ts

    response = make_response()
    return {
        "invocation_id": str(uuid.uuid4()),  # AG2 passes a str (SqliteLogger cannot bind a UUID)
        "client_id": id(agent.client._clients[0]),
        "wrapper_id": id(agent.client),
        "agent": agent,
        "request": make_request(),
        "response": response,
        "is_cached": 0,
        "cost": response.cost,
        "start_time": get_current_ts(),
    }


# -- timing ------------------------------------------------------------------------------------------

Case = Callable[[int], None]  # runs n calls


def _calibrate(case: Case, block_seconds: float) -> int:
    n = 1
    while True:
        start = time.perf_counter()
        case(n)
        elapsed = time.perf_counter() - start
        if elapsed >= block_seconds / 4 or n >= 1 << 22:
            return max(1, int(n * block_seconds / max(elapsed, 1e-9)))
        n *= 4


def interleaved(
    cases: dict[str, Case],
    *,
    rounds: int,
    warmup_rounds: int = 2,
    block_seconds: float = 0.05,
    max_block: dict[str, int] | None = None,
) -> dict[str, float]:
    """Median seconds per call of each case, timed in alternating rounds of blocks."""
    # Collect once and freeze what exists: a full collection walks every object of AG2, openai and
    # pydantic (~80 ms here) and leaves the CPU caches cold, which no real call would pay each time.
    gc.collect()
    gc.freeze()
    for case in cases.values():
        case(1)
    sizes = {name: _calibrate(case, block_seconds) for name, case in cases.items()}
    for name, cap in (max_block or {}).items():
        sizes[name] = min(sizes[name], cap)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(warmup_rounds + rounds):
        # Rotate the order so that no case always runs right after the same other one.
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            n = sizes[name]
            start = time.perf_counter()
            cases[name](n)
            elapsed = time.perf_counter() - start
            if r >= warmup_rounds:
                samples[name].append(elapsed / n)
    return {name: statistics.median(values) for name, values in samples.items()}


# -- child processes ---------------------------------------------------------------------------------


def run_child(module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    """Run ``python -m module args`` in a fresh interpreter; its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- formatting --------------------------------------------------------------------------------------


def us(seconds: float) -> str:
    micro = seconds * 1e6
    return f"{micro:,.2f} µs" if abs(micro) < 10 else f"{micro:,.1f} µs"


def row(
    figure: str, ours: Any, reference: Any, ratio: float | None, target: str, ok: bool | None
) -> dict[str, Any]:
    return {
        "figure": figure,
        "ours": ours,
        "reference": reference,
        "ratio": ratio,
        "target": target,
        "ok": ok,
    }
