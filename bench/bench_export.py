"""OpenTelemetry export and the hot path: the cost of recording one LLM call with
``AG2_LOGGING["OTEL"]`` off, on (``OTEL_ENDPOINT`` a live OTLP/HTTP receiver on loopback) and on
with ``OTEL_ENDPOINT`` a dead address (a closed loopback port).

Export runs in the pipeline after summarize, never on the hot path, so the three figures should
agree within 5 µs. The calls go through AG2 classic's ``log_chat_completion`` inside an open
session, as in ``bench_hot_path``; each case switches the settings once per timed block (the same
switch in every case). Then one short session per destination runs its chain inline, to show the
live receiver really got the spans and what a dead collector costs the pipeline (not the caller).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench._common import call_args, interleaved, make_agent, row, setup_django, us

TARGET_S = 5e-6
#: The dead collector's timeout in the pipeline figure (seconds).
DEAD_TIMEOUT = 1.0


class _Receiver(BaseHTTPRequestHandler):
    """Accepts every OTLP/HTTP export (an empty protobuf response is a full success)."""

    posts: list[str] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).posts.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def live_receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def dead_address() -> str:
    """A loopback port nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(quick: bool = False) -> list[dict[str, Any]]:
    import importlib.util

    if importlib.util.find_spec("opentelemetry.sdk") is None:
        return [row("OpenTelemetry export", "n/a", "", None, 'needs the "otel" extra', None)]
    # The "dead" case exports to a port nothing listens on, on purpose: the SDK logs each
    # refused batch ("Transient error ... Failed to export"), which is no fault here.
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    setup_django()
    import orjson
    from autogen import runtime_logging
    from django.conf import settings
    from django.test import override_settings

    from ag2_logging import ag2_logging_session, flush
    from ag2_logging.conf import conf
    from ag2_logging.export import otel
    from ag2_logging.integrations import classic

    ours = classic.install()
    agent = make_agent()
    kwargs = call_args(agent)
    log_chat_completion = runtime_logging.log_chat_completion
    base = dict(settings.AG2_LOGGING)
    dead = dead_address()

    def configured(**extra: Any) -> Any:
        return override_settings(AG2_LOGGING={**base, **extra})

    with live_receiver() as live:
        variants = {
            "off": configured(OTEL=False),
            "on": configured(OTEL=True, OTEL_ENDPOINT=live),
            "dead": configured(OTEL=True, OTEL_ENDPOINT=dead, OTEL_TIMEOUT=DEAD_TIMEOUT),
        }

        def case(name: str) -> Callable[[int], None]:
            switch = variants[name]
            expected = name != "off"

            def calls(n: int) -> None:
                switch.enable()
                try:
                    assert conf.resolved.otel is expected
                    for _ in range(n):
                        log_chat_completion(**kwargs)
                finally:
                    switch.disable()

            return calls

        runtime_logging.autogen_logger = ours
        runtime_logging.is_logging = True
        with ag2_logging_session("bench-export", "bench", "bench") as session:
            assert session is not None
            medians = interleaved(
                {name: case(name) for name in variants},
                rounds=8 if quick else 30,
                warmup_rounds=2 if quick else 3,
                block_seconds=0.02 if quick else 0.05,
            )
            with open(session.journal_path, "rb") as fh:
                fh.seek(max(0, session.journal_path.stat().st_size - 8192))
                last = orjson.loads(fh.read().splitlines()[-1])
            assert last["type"] == "llm_call" and last["price_status"] == "priced", last

        pipeline = {name: _one_session(variants[name], name, kwargs, flush) for name in ("on", "dead")}
        assert _Receiver.posts, "the live receiver got no export: the 'on' figure measured nothing"
        otel.reset_for_tests()

    off, on, dead_s = medians["off"], medians["on"], medians["dead"]

    def close(figure: str, value: float) -> dict[str, Any]:
        return row(
            figure,
            us(value),
            f"{us(off)} with OTEL off",
            value / off,
            "within 5 µs of off",
            abs(value - off) <= TARGET_S,
        )

    return [
        close("Hot path per LLM call, OTEL on (live collector)", on),
        close("Hot path per LLM call, OTEL on, collector address dead", dead_s),
        row(
            "Pipeline: chain of a one-call session, OTEL on (live collector)",
            f"{pipeline['on'][0] * 1000:,.1f} ms",
            "",
            None,
            "exported",
            pipeline["on"][1] == "exported",
        ),
        row(
            "Pipeline: chain of a one-call session, collector address dead",
            f"{pipeline['dead'][0] * 1000:,.1f} ms",
            f"OTEL_TIMEOUT {DEAD_TIMEOUT:g} s",
            None,
            "left in the backlog, off the caller's path",
            pipeline["dead"][1] == "backlog",
        ),
    ]


def _one_session(
    switch: Any, name: str, kwargs: dict[str, Any], flush: Callable[[], Any]
) -> tuple[float, str]:
    """Record a one-call session under ``switch``, then run its chain inline (ingest,
    summarize, export): the chain's seconds, and whether the session was exported."""
    from autogen import runtime_logging

    from ag2_logging import ag2_logging_session
    from ag2_logging.models import Session
    from ag2_logging.pipeline.chain import process_session

    switch.enable()
    try:
        with ag2_logging_session(f"bench-export-{name}", "bench", "bench") as session:
            assert session is not None
            runtime_logging.log_chat_completion(**kwargs)
        flush()
        start = time.perf_counter()
        process_session(session.session_id)
        elapsed = time.perf_counter() - start
    finally:
        switch.disable()
    row_ = Session.objects.get(pk=session.session_id)
    assert row_.summarized_at is not None, row_.pipeline_error
    return elapsed, "exported" if row_.exported_at is not None else "backlog"
