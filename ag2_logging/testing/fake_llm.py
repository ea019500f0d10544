"""A deterministic, OpenAI-compatible fake chat-completions server on loopback.

The project's tests, benchmarks and demo run *real* AG2 agents (and any other OpenAI-SDK
client) against this server instead of mocking the client. Every reply carries fixed token
usage, so cost accounting can be asserted exactly, whatever system prompts a framework sends.

Usage::

    with FakeLLMServer() as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="anything")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert srv.total_usage() == Usage()

or from a shell: ``python -m ag2_logging.testing.fake_llm --port 8800`` (loopback hosts only).

Endpoints
---------
``POST /v1/chat/completions`` (non-streaming; ``"stream": true`` gets a 400), ``GET /v1/models``
and ``GET /health``. Any ``Authorization`` header is accepted; headers are never validated or
stored.

Directives
----------
Directives are plain text inside message contents (string contents, or the ``text`` parts of a
list content). The reply number ``n`` counts every chat-completions request since start (or the
last :meth:`FakeLLMServer.reset`), starting at 1, failed ones included; it also appears in the
response id ``chatcmpl-fake-<n>`` and tool call id ``call_fake_<n>``.

``[[usage:prompt=200,completion=50,cached=0,reasoning=0]]``
    Anywhere in the messages (the most recent message holding one wins); any subset of the keys
    overrides the server's ``default_usage`` for this request. Conventions follow OpenAI:
    ``prompt`` includes ``cached`` and ``completion`` includes ``reasoning`` (a directive that
    breaks this gets a 400). Usage never depends on message length.
``[[marker:XYZ]]`` (``XYZ`` = ``[A-Za-z0-9_-]+``)
    The reply content contains ``[[marker:XYZ]]``, taken from the most recent message holding a
    marker (the last marker of that message).
``[[terminate]]``
    In any message: the reply content ends with `` TERMINATE``.
``[[tool:NAME {"json": "args"}]]``
    In the last message, when the request offers a function tool named ``NAME`` and the last
    message is not a ``tool`` message: the reply is one tool call (``finish_reason`` is
    ``tool_calls``, content is null, arguments are the JSON text, ``{}`` if omitted). An unknown
    ``NAME`` is ignored; malformed JSON gets a 400. When a ``tool`` message is last, the reply is
    ``tool result: <its content, truncated to 200 chars>``.
``[[fail:429x2]]`` / ``[[fail:500]]`` / ``[[fail:timeoutx1]]``
    In the last ``user`` message: the first N requests (default 1) with identical ``messages``
    and ``model`` fail, then the same request succeeds (so SDK retries see the failures and then a
    success). A status code answers with that status and an OpenAI-style error body; 429 and 5xx
    also send ``retry-after-ms`` (see ``retry_after_ms``). ``timeout`` sleeps
    ``error_sleep_seconds`` and then answers normally; if the client hung up meanwhile, the
    request is recorded with status 499 ("client closed request") and no usage.

The plain reply content is ``fake reply <n>``, then `` [[marker:XYZ]]`` if a marker applies, then
`` TERMINATE`` if ``[[terminate]]`` appears.

:meth:`FakeLLMServer.script_errors` queues failures (status codes or ``"timeout"``) that the next
chat-completions requests, whatever their content, consume in order before any directive.

Every chat-completions request is recorded as a :class:`ServedRequest` in
:attr:`FakeLLMServer.served`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import re
import select
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Literal, cast

__all__ = ["FakeLLMServer", "ServedRequest", "Usage", "main"]

#: HTTP status recorded when a delayed ("timeout") reply finds that the client has hung up.
CLIENT_CLOSED_REQUEST: Final = 499
#: Longest tool-message content echoed back in a ``tool result:`` reply.
TOOL_RESULT_MAX_CHARS: Final = 200
#: Models listed by ``GET /v1/models`` in addition to every model requested so far.
DEFAULT_MODELS: Final = ("fake-model", "gpt-4o", "gpt-4o-mini")

_MARKER_RE: Final = re.compile(r"\[\[marker:([A-Za-z0-9_-]+)\]\]")
_TERMINATE_RE: Final = re.compile(r"\[\[terminate\]\]")
_USAGE_RE: Final = re.compile(r"\[\[usage:([^\]]*)\]\]")
_FAIL_RE: Final = re.compile(r"\[\[fail:(\d{3}|timeout)(?:x(\d+))?\]\]")
_TOOL_RE: Final = re.compile(r"\[\[tool:([A-Za-z0-9_-]+)")
_USAGE_KEYS: Final = {
    "prompt": "prompt_tokens",
    "completion": "completion_tokens",
    "cached": "cached_tokens",
    "reasoning": "reasoning_tokens",
}

# status -> (error type, error code) for OpenAI-style error bodies.
_ERROR_KINDS: Final[dict[int, tuple[str, str]]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "not_found"),
    408: ("timeout_error", "request_timeout"),
    409: ("conflict_error", "conflict"),
    411: ("invalid_request_error", "length_required"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", "server_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}

ScriptedError = int | Literal["timeout"]


class _DirectiveError(ValueError):
    """A malformed directive in the request; answered with a 400."""


@dataclass(frozen=True)
class Usage:
    """Token usage of one reply, with OpenAI's conventions.

    ``prompt_tokens`` includes ``cached_tokens`` and ``completion_tokens`` includes
    ``reasoning_tokens``; ``total_tokens`` is ``prompt_tokens + completion_tokens``.
    """

    prompt_tokens: int = 120
    completion_tokens: int = 30
    cached_tokens: int = 40
    reasoning_tokens: int = 10

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Usage.{name} must be a non-negative int, got {value!r}")
        if self.cached_tokens > self.prompt_tokens:
            raise ValueError(
                f"cached_tokens ({self.cached_tokens}) cannot exceed prompt_tokens ({self.prompt_tokens})"
            )
        if self.reasoning_tokens > self.completion_tokens:
            raise ValueError(
                f"reasoning_tokens ({self.reasoning_tokens}) cannot exceed "
                f"completion_tokens ({self.completion_tokens})"
            )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def zero(cls) -> Usage:
        return cls(0, 0, 0, 0)

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    def to_openai(self) -> dict[str, Any]:
        """The ``usage`` object of an OpenAI ChatCompletion."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


@dataclass(frozen=True)
class ServedRequest:
    """One chat-completions request as the server saw and answered it."""

    #: The request number ``n`` (1-based; same ``n`` as in ``response_id``).
    index: int
    #: Requested model ("" if the body could not be parsed).
    model: str
    #: The ``messages`` list as received (``[]`` if the body could not be parsed).
    messages: list[Any] = field(repr=False)
    #: HTTP status returned (499: a delayed reply whose client had hung up).
    status: int
    #: Usage reported, or None when the request did not succeed.
    usage: Usage | None
    #: Name of the tool called in the reply, if any.
    tool_call: str | None
    #: Marker of the request (echoed in the reply content unless the reply is a tool call);
    #: recorded for failed requests too, to tell concurrent clients apart.
    marker: str | None
    #: ``chatcmpl-fake-<n>`` for successful replies, else None.
    response_id: str | None


@dataclass
class _Outcome:
    status: int
    body: dict[str, Any]
    usage: Usage | None = None
    tool_call: str | None = None
    response_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and IPv4/IPv6 loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def message_text(message: Any) -> str:
    """The text of a chat message: its string content, or its text parts joined by newlines."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


def _find_marker(messages: Sequence[Any]) -> str | None:
    """The last ``[[marker:XYZ]]`` of the most recent message holding one."""
    for message in reversed(messages):
        found = _MARKER_RE.findall(message_text(message))
        if found:
            return str(found[-1])
    return None


def _error_body(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    kind = _ERROR_KINDS.get(status)
    if kind is None:
        kind = ("server_error", "server_error") if status >= 500 else ("invalid_request_error", str(status))
    return {
        "error": {
            "message": message,
            "type": error_type or kind[0],
            "param": None,
            "code": kind[1],
        }
    }


def _parse_usage(spec: str, base: Usage) -> Usage:
    changes: dict[str, int] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        name = _USAGE_KEYS.get(key.strip())
        if not sep or name is None:
            raise _DirectiveError(
                f"bad usage directive item {item!r}: expected KEY=INT with KEY in {', '.join(_USAGE_KEYS)}"
            )
        try:
            changes[name] = int(raw.strip())
        except ValueError:
            raise _DirectiveError(f"bad usage directive value {item!r}: not an integer") from None
    try:
        return replace(base, **changes)
    except ValueError as exc:
        raise _DirectiveError(f"bad usage directive [[usage:{spec}]]: {exc}") from None


def _parse_tool_directive(text: str) -> tuple[str, str] | None:
    """Find the last ``[[tool:NAME {json}]]`` in ``text``: (name, arguments JSON text)."""
    found: tuple[str, str] | None = None
    decoder = json.JSONDecoder()
    for match in _TOOL_RE.finditer(text):
        name = match.group(1)
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
        arguments = "{}"
        if text.startswith("{", pos):
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise _DirectiveError(
                    f"bad tool directive for {name!r}: invalid JSON arguments: {exc}"
                ) from None
            if not isinstance(value, dict):
                raise _DirectiveError(f"bad tool directive for {name!r}: arguments must be a JSON object")
            arguments = text[pos:end]
            pos = end
            while pos < len(text) and text[pos].isspace():
                pos += 1
        if not text.startswith("]]", pos):
            raise _DirectiveError(f"bad tool directive for {name!r}: expected ']]' after the arguments")
        found = (name, arguments)
    return found


def _offered_tools(body: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.add(function["name"])
    return names


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], fake: FakeLLMServer) -> None:
        self.fake = fake
        self._open_sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._sockets_lock:
            self._open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._sockets_lock:
            self._open_sockets.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """Unblock handler threads parked on idle keep-alive connections."""
        with self._sockets_lock:
            sockets = list(self._open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # the client went away; nothing to report
        super().handle_error(request, client_address)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeLLM/1.0"
    sys_version = ""
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 60

    @property
    def fake(self) -> FakeLLMServer:
        return cast(_HTTPServer, self.server).fake

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: no request log on stderr."""

    # -- plumbing ---------------------------------------------------------------------------

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def _send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _send_error(self, status: int, message: str) -> None:
        self._send_json(status, _error_body(status, message))

    def _client_gone(self) -> bool:
        """True when the client has closed the connection (EOF is readable)."""
        try:
            sock = cast(socket.socket, self.connection)
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # -- routes -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self._path()
        if path == "/health":
            self._send_json(200, {"status": "ok"})
        elif path in ("/v1/models", "/models"):
            self._send_json(200, self.fake._models_body())
        else:
            self._send_error(404, f"unknown path {self.path!r}")

    def do_POST(self) -> None:
        path = self._path()
        raw = self._read_body()
        if raw is None:
            return
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_error(404, f"unknown path {self.path!r}")
            return
        outcome = self.fake._handle_chat(raw, self._client_gone)
        if outcome.status != CLIENT_CLOSED_REQUEST:
            self._send_json(outcome.status, outcome.body, outcome.headers)
        else:
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send_error(411, "chunked request bodies are not supported; send Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.close_connection = True
            self._send_error(400, "invalid Content-Length")
            return None
        if length < 0 or length > 64 * 1024 * 1024:
            self.close_connection = True
            self._send_error(413, "request body too large")
            return None
        return self.rfile.read(length) if length else b""


class FakeLLMServer:
    """OpenAI-compatible fake chat-completions server, served from a background thread.

    Use it as a context manager or call :meth:`start` / :meth:`stop`. Only loopback hosts are
    accepted. See the module docstring for the directives that shape replies.

    ``retry_after_ms`` (keyword, default 20) is sent as a ``retry-after-ms`` header with scripted
    429 and 5xx errors, so SDK retries are quick; None leaves the SDK's own backoff.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        default_usage: Usage | None = None,
        error_sleep_seconds: float = 5.0,
        retry_after_ms: int | None = 20,
    ) -> None:
        if not is_loopback_host(host):
            raise ValueError(
                f"FakeLLMServer only binds loopback hosts (127.0.0.0/8, ::1, localhost), got {host!r}"
            )
        if error_sleep_seconds < 0:
            raise ValueError("error_sleep_seconds must be >= 0")
        self.host = host.strip("[]")
        self._requested_port = port
        self.default_usage = default_usage if default_usage is not None else Usage()
        self.error_sleep_seconds = error_sleep_seconds
        self.retry_after_ms = retry_after_ms

        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._counter = 0
        self._in_flight = 0
        self._served: list[ServedRequest] = []
        self._scripted: deque[ScriptedError] = deque()
        self._fail_counts: dict[str, int] = {}
        self._models_seen: set[str] = set()

        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("FakeLLMServer is already running")
        server_cls = _HTTPServer6 if ":" in self.host else _HTTPServer
        httpd = server_cls((self.host, self._requested_port), self)
        self._httpd = httpd
        self._port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeLLMServer:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent). In-flight handlers are not awaited."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_open_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        if self._httpd is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (the last one after :meth:`stop`)."""
        if self._port is None:
            raise RuntimeError("FakeLLMServer has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    # -- inspection and scripting -------------------------------------------------------------

    @property
    def served(self) -> list[ServedRequest]:
        """Snapshot of the recorded chat-completions requests, ordered by ``index``."""
        with self._lock:
            return sorted(self._served, key=lambda r: r.index)

    def successful(self) -> list[ServedRequest]:
        """Recorded requests answered with status 200."""
        return [r for r in self.served if r.status == 200]

    def total_usage(self) -> Usage:
        """Sum of the usage of the successful requests."""
        total = Usage.zero()
        for r in self.successful():
            if r.usage is not None:
                total = total + r.usage
        return total

    def reset(self) -> None:
        """Forget served requests, counters, queued scripted errors and ``[[fail:]]`` progress."""
        with self._lock:
            self._served.clear()
            self._counter = 0
            self._scripted.clear()
            self._fail_counts.clear()
            self._models_seen.clear()

    def script_errors(self, errors: Iterable[int | str]) -> None:
        """Queue failures for the next chat-completions requests (any), consumed in order.

        Each item is an HTTP status code (400-599) or ``"timeout"``.
        """
        items: list[ScriptedError] = []
        for item in errors:
            if item == "timeout":
                items.append("timeout")
            elif isinstance(item, int) and not isinstance(item, bool) and 400 <= item <= 599:
                items.append(item)
            else:
                raise ValueError(
                    f"scripted errors must be HTTP status codes 400-599 or 'timeout', got {item!r}"
                )
        with self._lock:
            self._scripted.extend(items)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no chat-completions request is being handled; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    # -- request handling (called from handler threads) ------------------------------------

    def _models_body(self) -> dict[str, Any]:
        with self._lock:
            models = sorted(set(DEFAULT_MODELS) | self._models_seen)
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake-llm"} for m in models],
        }

    def _handle_chat(self, raw: bytes, client_gone: Callable[[], bool]) -> _Outcome:
        with self._lock:
            self._counter += 1
            n = self._counter
            self._in_flight += 1
        model = ""
        messages: list[Any] = []
        try:
            try:
                body = json.loads(raw) if raw else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            if isinstance(body, dict):
                raw_model, raw_messages = body.get("model"), body.get("messages")
                model = raw_model if isinstance(raw_model, str) else ""
                messages = raw_messages if isinstance(raw_messages, list) else []
            try:
                outcome = self._answer(n, body, model, messages, client_gone)
            except _DirectiveError as exc:
                outcome = _Outcome(400, _error_body(400, str(exc)))
            except Exception as exc:  # a bug here must not hang the client
                outcome = _Outcome(500, _error_body(500, f"fake LLM server error: {exc!r}"))
            record = ServedRequest(
                index=n,
                model=model,
                messages=messages,
                status=outcome.status,
                usage=outcome.usage if outcome.status == 200 else None,
                tool_call=outcome.tool_call if outcome.status == 200 else None,
                marker=_find_marker(messages),
                response_id=outcome.response_id if outcome.status == 200 else None,
            )
            with self._lock:
                self._served.append(record)
            return outcome
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _scripted_failure(self, model: str, messages: list[Any]) -> ScriptedError | None:
        with self._lock:
            if self._scripted:
                return self._scripted.popleft()
        last_user = next(
            (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"),
            None,
        )
        matches = list(_FAIL_RE.finditer(message_text(last_user)))
        if not matches:
            return None
        kind, times = matches[-1].group(1), int(matches[-1].group(2) or 1)
        failure: ScriptedError = "timeout" if kind == "timeout" else int(kind)
        if failure != "timeout" and not 400 <= failure <= 599:
            raise _DirectiveError(f"bad fail directive {matches[-1].group(0)}: status must be 400-599")
        key = hashlib.sha256(
            (json.dumps(messages, sort_keys=True, ensure_ascii=False) + "\x00" + model).encode()
        ).hexdigest()
        with self._lock:
            done = self._fail_counts.get(key, 0)
            if done >= times:
                return None
            self._fail_counts[key] = done + 1
        return failure

    def _answer(
        self, n: int, body: Any, model: str, messages: list[Any], client_gone: Callable[[], bool]
    ) -> _Outcome:
        _check_request(body, model, messages)
        with self._lock:
            self._models_seen.add(model)
        failure = self._scripted_failure(model, messages)
        if isinstance(failure, int):
            return self._failure(n, failure)
        if failure == "timeout":
            time.sleep(self.error_sleep_seconds)
            if client_gone():
                return _Outcome(CLIENT_CLOSED_REQUEST, {})
        texts = [message_text(m) for m in messages]
        usage = self.default_usage
        for text in reversed(texts):
            usage_matches = _USAGE_RE.findall(text)
            if usage_matches:
                usage = _parse_usage(usage_matches[-1], self.default_usage)
                break
        message, finish_reason, tool_name = _reply(n, body, messages, texts)
        response_id = f"chatcmpl-fake-{n}"
        return _Outcome(
            200,
            {
                "id": response_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
                ],
                "usage": usage.to_openai(),
                "system_fingerprint": "fp_fake",
            },
            usage=usage,
            tool_call=tool_name,
            response_id=response_id,
        )

    def _failure(self, n: int, status: int) -> _Outcome:
        """A scripted HTTP error (``[[fail:429]]`` and the like)."""
        headers: dict[str, str] = {}
        if self.retry_after_ms is not None and (status == 429 or status >= 500):
            headers["retry-after-ms"] = str(self.retry_after_ms)
        try:
            status_text = HTTPStatus(status).phrase
        except ValueError:
            status_text = "error"
        return _Outcome(
            status,
            _error_body(status, f"scripted fake error {status} ({status_text}) for request {n}"),
            headers=headers,
        )


def _check_request(body: Any, model: str, messages: list[Any]) -> None:
    """What the server refuses with a 400, as OpenAI's API does."""
    if not isinstance(body, dict):
        raise _DirectiveError("request body must be a JSON object")
    if not model:
        raise _DirectiveError("'model' is required and must be a string")
    if not messages or not all(isinstance(m, dict) for m in messages):
        raise _DirectiveError("'messages' must be a non-empty list of objects")
    if body.get("stream"):
        raise _DirectiveError("streaming is not supported by the fake LLM server; use stream=false")


def _reply(
    n: int, body: Any, messages: list[Any], texts: list[str]
) -> tuple[dict[str, Any], str, str | None]:
    """The assistant message, its finish reason and the tool it calls (if any)."""
    marker = _find_marker(messages)
    terminate = any(_TERMINATE_RE.search(text) for text in texts)
    last = messages[-1]
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    finish_reason = "stop"
    tool_name: str | None = None
    if last.get("role") == "tool":
        content = f"tool result: {message_text(last)[:TOOL_RESULT_MAX_CHARS]}"
    else:
        directive = _parse_tool_directive(texts[-1])
        if directive is not None and directive[0] in _offered_tools(body):
            tool_name, arguments = directive
            message["tool_calls"] = [
                {
                    "id": f"call_fake_{n}",
                    "type": "function",
                    "function": {"name": tool_name, "arguments": arguments},
                }
            ]
            finish_reason = "tool_calls"
        content = f"fake reply {n}"
    if tool_name is None:
        if marker is not None:
            content += f" [[marker:{marker}]]"
        if terminate:
            content += " TERMINATE"
        message["content"] = content
    return message, finish_reason, tool_name


def _loopback_host(value: str) -> str:
    if not is_loopback_host(value):
        raise argparse.ArgumentTypeError(
            f"refusing host {value!r}: the fake LLM server only listens on loopback "
            "(127.0.0.0/8, ::1 or localhost)"
        )
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ag2_logging.testing.fake_llm --port 8800 [--host 127.0.0.1]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ag2_logging.testing.fake_llm",
        description="Serve a deterministic OpenAI-compatible fake chat-completions API on loopback.",
    )
    parser.add_argument("--host", type=_loopback_host, default="127.0.0.1", help="loopback host to bind")
    parser.add_argument("--port", type=int, default=8800, help="port (0 picks a free one; default 8800)")
    parser.add_argument(
        "--error-sleep-seconds",
        type=float,
        default=5.0,
        help="how long [[fail:timeout]] replies are delayed (default 5)",
    )
    args = parser.parse_args(argv)
    server = FakeLLMServer(args.host, args.port, error_sleep_seconds=args.error_sleep_seconds)
    server.start()
    print(f"Fake LLM server listening; base_url={server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the shutdown
        server.stop()
    print("Fake LLM server stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
