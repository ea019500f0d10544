"""Hot path: the cost of recording one LLM call, from AG2 classic's ``log_chat_completion``.

The same agent, request (~2 KB of messages) and response (a ~1 KB ``ChatCompletion`` with usage
details) go through ``autogen.runtime_logging.log_chat_completion`` with, in turn, the app's
routing logger inside an open session (redact, price, journal line, live counters), AG2's own
``FileLogger`` and ``SqliteLogger``, and no logger at all (AG2 with runtime logging off).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from bench._common import call_args, interleaved, make_agent, row, run_dir, setup_django, us


def run(quick: bool = False) -> list[dict[str, Any]]:
    setup_django()
    import orjson
    from autogen import runtime_logging
    from autogen.logger.file_logger import FileLogger
    from autogen.logger.sqlite_logger import SqliteLogger

    from ag2_logging import ag2_logging_session
    from ag2_logging.integrations import classic

    ours = classic.install()
    agent = make_agent()
    kwargs = call_args(agent)

    scratch = run_dir() / "hot_path"
    scratch.mkdir(exist_ok=True)
    cwd = os.getcwd()
    os.chdir(scratch)  # FileLogger writes to ./autogen_logs/
    try:
        file_logger = FileLogger({"filename": "runtime.log"})
    finally:
        os.chdir(cwd)
    file_logger.start()
    sqlite_logger = SqliteLogger({"dbname": str(scratch / "ag2_sqlite_logger.db")})
    sqlite_logger.start()

    log_chat_completion = runtime_logging.log_chat_completion
    logging_enabled = runtime_logging.logging_enabled

    def case(logger: Any) -> Any:
        def calls(n: int) -> None:
            runtime_logging.autogen_logger = logger
            runtime_logging.is_logging = logger is not None
            for _ in range(n):
                # What OpenAIWrapper.create does after each completion.
                if logging_enabled():
                    log_chat_completion(**kwargs)

        return calls

    try:
        with ag2_logging_session("bench-hot-path", "bench", "bench") as session:
            assert session is not None
            medians = interleaved(
                {
                    "ours": case(ours),
                    "file": case(file_logger),
                    "sqlite": case(sqlite_logger),
                    "none": case(None),
                },
                rounds=8 if quick else 30,
                warmup_rounds=2 if quick else 3,
                block_seconds=0.02 if quick else 0.05,
            )
            runtime_logging.autogen_logger = ours
            runtime_logging.is_logging = True
            with open(session.journal_path, "rb") as fh:
                fh.seek(max(0, session.journal_path.stat().st_size - 8192))
                last = orjson.loads(fh.read().splitlines()[-1])
            # The figure is only worth something if the work was really done.
            assert last["type"] == "llm_call" and last["price_status"] == "priced", last
            assert last["cost"] not in (None, "0") and last["request"] and last["response"], last
    finally:
        runtime_logging.autogen_logger = ours
        runtime_logging.is_logging = True
        sqlite_logger.stop()
        for handler in list(file_logger.logger.handlers):
            file_logger.logger.removeHandler(handler)
            handler.close()
        logging.getLogger("autogen.logger.file_logger").handlers.clear()

    ours_s, file_s, sqlite_s, none_s = (medians[k] for k in ("ours", "file", "sqlite", "none"))
    rows = [
        row(
            "Hot path per LLM call vs AG2 FileLogger",
            us(ours_s),
            us(file_s),
            ours_s / file_s,
            "<= 0.4x (issue 19)",
            ours_s <= 0.4 * file_s,
        ),
        row(
            "Hot path per LLM call vs AG2 SqliteLogger",
            us(ours_s),
            us(sqlite_s),
            ours_s / sqlite_s,
            "<= 0.05x (20x faster)",
            ours_s * 20 <= sqlite_s,
        ),
        row("AG2 with runtime logging off (floor)", us(none_s), "", None, "", None),
    ]
    if not os.path.exists(os.path.join(os.path.dirname(classic.__file__), "ag2.py")):
        rows.append(
            row("Hot path via ag2 1.x integration", "n/a", "", None, "integration not built yet", None)
        )
    return rows
