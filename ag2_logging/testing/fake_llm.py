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
``POST /v1/chat/completions`` (plain JSON, or server-sent events with ``"stream": true``),
``GET /v1/models`` and ``GET /health``. Any ``Authorization`` header is accepted; headers are never validated or
stored. A 401 (``[[fail:401]]``) echoes the credential it was sent (the bearer token, or the
``api-key`` / ``x-api-key`` header) in its error message, as providers do:
``Incorrect API key provided: <credential>. ...``.

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
``[[usage_raw:{"prompt_tokens": 16000, "prompt_cache_hit_tokens": 12000, ...}]]``
    Anywhere in the messages (the most recent message holding a ``usage`` or ``usage_raw``
    directive wins): the reply's ``usage`` object is exactly this JSON object, so a provider's
    own usage shape (DeepSeek, Anthropic-compatible, Gemini-compatible...) can be served.
    ``[[usage_raw:null]]`` leaves ``usage`` out of the reply. :meth:`FakeLLMServer.total_usage`
    counts only its OpenAI fields (``prompt_tokens``, ``completion_tokens``,
    ``prompt_tokens_details.cached_tokens``).
``[[function:NAME {"json": "args"}]]``
    Like ``tool``, for the legacy functions API: when the request offers ``functions`` with
    ``NAME``, the reply's message carries ``function_call`` (name, arguments), content null,
    ``finish_reason`` ``function_call``.
``[[fail:429x2]]`` / ``[[fail:500]]`` / ``[[fail:timeoutx1]]``
    In the last ``user`` message: the first N requests (default 1) with identical ``messages``
    and ``model`` fail, then the same request succeeds (so SDK retries see the failures and then a
    success). A status code answers with that status and an OpenAI-style error body; 429 and 5xx
    also send ``retry-after-ms`` (see ``retry_after_ms``). ``timeout`` sleeps
    ``error_sleep_seconds`` and then answers normally; if the client hung up meanwhile, the
    request is recorded with status 499 ("client closed request") and no usage.

``[[stream_drop:N]]`` / ``[[stream_drop:N:reset]]``
    Anywhere in the messages, for a streamed request: the stream stops after its first ``N``
    ``data:`` chunks (the role chunk counts), with no usage chunk and no ``data: [DONE]``.
    ``stream_drop:N`` ends the HTTP body cleanly (the SDK sees a stream that simply ends);
    ``stream_drop:N:reset`` closes the connection mid-body (the terminating chunk of the
    chunked encoding never comes: the client's HTTP library raises a protocol error).

Streaming
---------
With ``"stream": true`` the reply is sent as server-sent events in OpenAI's format, with
``Transfer-Encoding: chunked``: a first chunk with ``delta.role``, the content in pieces (or one
tool call: its id and name, then its arguments), a chunk with ``finish_reason``, then, only when
``stream_options.include_usage`` is true, a last chunk with ``choices: []`` and the ``usage``
object (every earlier chunk then carries ``"usage": null``), then ``data: [DONE]``. The
usage directives apply (``[[usage_raw:null]]`` sends no usage chunk even when asked: a server
that ignores ``include_usage``). :attr:`ServedRequest.usage` is the usage the stream reported:
None when no usage chunk was sent.

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
_FUNCTION_RE: Final = re.compile(r"\[\[function:([A-Za-z0-9_-]+)")
_USAGE_RAW_RE: Final = re.compile(r"\[\[usage_raw:")
_STREAM_DROP_RE: Final = re.compile(r"\[\[stream_drop:(\d+)(:reset)?\]\]")
#: Characters of reply content per streamed chunk.
STREAM_PIECE_CHARS: Final = 6
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
    #: True for a ``"stream": true`` request.
    streamed: bool = False
    #: For a streamed reply cut by ``[[stream_drop:N]]``: N (the chunks sent), else None.
    dropped_after: int | None = None


@dataclass
class _Outcome:
    status: int
    body: dict[str, Any]
    usage: Usage | None = None
    tool_call: str | None = None
    response_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: A streamed reply: the ``data:`` payloads to send (``[DONE]`` included when it is sent).
    chunks: list[str] | None = None
    #: ``[[stream_drop:N]]``: N, and whether the connection is reset rather than ended cleanly.
    dropped_after: int | None = None
    reset: bool = False


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


def _parse_tool_directive(text: str, regex: re.Pattern[str] = _TOOL_RE) -> tuple[str, str] | None:
    """Find the last ``[[tool:NAME {json}]]`` (or ``[[function:...]]`` with ``regex=_FUNCTION_RE``)
    in ``text``: (name, arguments JSON text)."""
    found: tuple[str, str] | None = None
    decoder = json.JSONDecoder()
    for match in regex.finditer(text):
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


def _parse_usage_raw(text: str) -> tuple[bool, dict[str, Any] | None]:
    """The last ``[[usage_raw:{json}]]`` in ``text``: (found, the usage object or None for
    ``null``, which leaves ``usage`` out of the reply)."""
    found: tuple[bool, dict[str, Any] | None] = (False, None)
    decoder = json.JSONDecoder()
    for match in _USAGE_RAW_RE.finditer(text):
        try:
            value, end = decoder.raw_decode(text, match.end())
        except json.JSONDecodeError as exc:
            raise _DirectiveError(f"bad usage_raw directive: invalid JSON: {exc}") from None
        if not (value is None or isinstance(value, dict)) or not text.startswith("]]", end):
            raise _DirectiveError(
                "bad usage_raw directive: expected [[usage_raw:{...}]] or [[usage_raw:null]]"
            )
        found = (True, value)
    return found


def _usage_of_raw(raw: dict[str, Any] | None) -> Usage:
    """What a raw usage report adds to :meth:`FakeLLMServer.total_usage` (OpenAI's fields only)."""
    if not raw:
        return Usage.zero()

    def number(value: Any) -> int:
        return value if isinstance(value, int) and value >= 0 else 0

    prompt, completion = number(raw.get("prompt_tokens")), number(raw.get("completion_tokens"))
    details = raw.get("prompt_tokens_details")
    cached = number(details.get("cached_tokens")) if isinstance(details, dict) else 0
    details = raw.get("completion_tokens_details")
    reasoning = number(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
    try:
        return Usage(prompt, completion, min(cached, prompt), min(reasoning, completion))
    except ValueError:
        return Usage.zero()


def _offered_functions(body: dict[str, Any]) -> set[str]:
    """Names offered through the legacy ``functions`` parameter."""
    functions = body.get("functions")
    if not isinstance(functions, list):
        return set()
    return {f["name"] for f in functions if isinstance(f, dict) and isinstance(f.get("name"), str)}


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
        outcome = self.fake._handle_chat(raw, self._client_gone, self._credential())
        if outcome.status == CLIENT_CLOSED_REQUEST:
            self.close_connection = True
        elif outcome.chunks is not None:
            self._send_stream(outcome)
        else:
            self._send_json(outcome.status, outcome.body, outcome.headers)

    def _send_stream(self, outcome: _Outcome) -> None:
        """Server-sent events, chunked; a dropped stream ends early (cleanly, or reset)."""
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            if outcome.dropped_after is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            for payload in outcome.chunks or []:
                data = f"data: {payload}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            if not outcome.reset:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        if outcome.dropped_after is not None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                cast(socket.socket, self.connection).shutdown(socket.SHUT_RDWR)

    def _credential(self) -> str:
        """The credential the client sent (bearer token or ``api-key``), echoed only in a 401."""
        authorization = self.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return self.headers.get("api-key") or self.headers.get("x-api-key") or authorization

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

    def _handle_chat(self, raw: bytes, client_gone: Callable[[], bool], credential: str = "") -> _Outcome:
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
                outcome = self._answer(n, body, model, messages, client_gone, credential)
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
                streamed=isinstance(body, dict) and bool(body.get("stream")),
                dropped_after=outcome.dropped_after,
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
        self,
        n: int,
        body: Any,
        model: str,
        messages: list[Any],
        client_gone: Callable[[], bool],
        credential: str = "",
    ) -> _Outcome:
        _check_request(body, model, messages)
        with self._lock:
            self._models_seen.add(model)
        failure = self._scripted_failure(model, messages)
        if isinstance(failure, int):
            return self._failure(n, failure, credential)
        if failure == "timeout":
            time.sleep(self.error_sleep_seconds)
            if client_gone():
                return _Outcome(CLIENT_CLOSED_REQUEST, {})
        texts = [message_text(m) for m in messages]
        usage, usage_body = self._usage_for(texts)
        message, finish_reason, tool_name = _reply(n, body, messages, texts)
        response_id = f"chatcmpl-fake-{n}"
        reply: dict[str, Any] = {
            "id": response_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
            "system_fingerprint": "fp_fake",
        }
        if body.get("stream"):
            return _streamed(reply, body, texts, usage, usage_body, tool_name)
        if usage_body is not None:
            reply["usage"] = usage_body
        return _Outcome(
            200,
            reply,
            usage=usage,
            tool_call=tool_name,
            response_id=response_id,
        )

    def _usage_for(self, texts: list[str]) -> tuple[Usage, dict[str, Any] | None]:
        """The reply's usage (for :meth:`total_usage`) and the ``usage`` object it sends (None:
        left out), from the most recent message holding a usage or usage_raw directive."""
        for text in reversed(texts):
            found, raw = _parse_usage_raw(text)
            if found:
                return _usage_of_raw(raw), raw
            usage_matches = _USAGE_RE.findall(text)
            if usage_matches:
                usage = _parse_usage(usage_matches[-1], self.default_usage)
                return usage, usage.to_openai()
        return self.default_usage, self.default_usage.to_openai()

    def _failure(self, n: int, status: int, credential: str = "") -> _Outcome:
        """A scripted HTTP error (``[[fail:429]]`` and the like). A 401 echoes the credential it
        was sent, as providers do (``Incorrect API key provided: ...``)."""
        headers: dict[str, str] = {}
        if self.retry_after_ms is not None and (status == 429 or status >= 500):
            headers["retry-after-ms"] = str(self.retry_after_ms)
        try:
            status_text = HTTPStatus(status).phrase
        except ValueError:
            status_text = "error"
        message = f"scripted fake error {status} ({status_text}) for request {n}"
        if status == 401:
            message = f"Incorrect API key provided: {credential}. {message}"
        return _Outcome(status, _error_body(status, message), headers=headers)


def _check_request(body: Any, model: str, messages: list[Any]) -> None:
    """What the server refuses with a 400, as OpenAI's API does."""
    if not isinstance(body, dict):
        raise _DirectiveError("request body must be a JSON object")
    if not model:
        raise _DirectiveError("'model' is required and must be a string")
    if not messages or not all(isinstance(m, dict) for m in messages):
        raise _DirectiveError("'messages' must be a non-empty list of objects")


def _stream_deltas(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``delta`` objects that stream ``message`` (role first, then content or tool call)."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    for call in message.get("tool_calls") or []:
        function = call["function"]
        head = {"id": call["id"], "type": "function", "function": {"name": function["name"], "arguments": ""}}
        deltas.append({"tool_calls": [{"index": 0, **head}]})
        deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": function["arguments"]}}]})
    if message.get("function_call"):
        deltas.append({"function_call": message["function_call"]})
    content = message.get("content") or ""
    for start in range(0, len(content), STREAM_PIECE_CHARS):
        deltas.append({"content": content[start : start + STREAM_PIECE_CHARS]})
    return deltas


def _streamed(
    reply: dict[str, Any],
    body: dict[str, Any],
    texts: list[str],
    usage: Usage,
    usage_body: dict[str, Any] | None,
    tool_name: str | None,
) -> _Outcome:
    """``reply`` as the ``data:`` payloads of an OpenAI chat-completions stream (see
    "Streaming" in the module docstring), cut short by a ``[[stream_drop:N]]`` directive."""
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    choice = reply["choices"][0]
    head = {key: reply[key] for key in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    deltas = _stream_deltas(choice["message"])
    chunks: list[dict[str, Any]] = [
        {**head, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}], **extra}
        for d in deltas
    ]
    chunks.append(
        {
            **head,
            "choices": [
                {"index": 0, "delta": {}, "logprobs": None, "finish_reason": choice["finish_reason"]}
            ],
            **extra,
        }
    )
    reported = include_usage and usage_body is not None
    if reported:
        chunks.append({**head, "choices": [], "usage": usage_body})
    payloads = [json.dumps(chunk) for chunk in chunks] + ["[DONE]"]
    drop = next((m for text in reversed(texts) for m in reversed(list(_STREAM_DROP_RE.finditer(text)))), None)
    dropped_after: int | None = None
    if drop is not None and int(drop.group(1)) < len(payloads) - 1:
        dropped_after = int(drop.group(1))
        payloads = payloads[:dropped_after]
        reported = False
    return _Outcome(
        200,
        {},
        usage=usage if reported else None,
        tool_call=tool_name,
        response_id=reply["id"],
        chunks=payloads,
        dropped_after=dropped_after,
        reset=drop is not None and dropped_after is not None and drop.group(2) is not None,
    )


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
        function = _parse_tool_directive(texts[-1], _FUNCTION_RE)
        if function is not None and function[0] in _offered_functions(body):
            tool_name, arguments = function
            message["function_call"] = {"name": tool_name, "arguments": arguments}
            finish_reason = "function_call"
        elif directive is not None and directive[0] in _offered_tools(body):
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
