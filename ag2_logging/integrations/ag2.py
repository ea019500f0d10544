"""AG2 1.x (the ``ag2`` package): a middleware each ``ag2.Agent`` carries.

The only module that imports ``ag2``. AG2 1.x has no process-wide hook (no runtime logger, no
global middleware or plugin registry: checked in ag2 1.2.1), so recording is attached per agent,
or per call, with the factory this module exports (``install()`` adds two process-wide watches,
the OpenAI SDK's request boundary and AG2's tool executor, for what no middleware sees: below)::

    from ag2 import Agent
    from ag2.middleware import RetryMiddleware
    from ag2_logging.integrations.ag2 import logging_middleware

    agent = Agent("assistant", config=..., middleware=[RetryMiddleware(), logging_middleware()])

AG2 makes a new middleware instance for every turn (``ask``, ``run``, ``AgentReply.ask``), in the
caller's asyncio task, so the ``current_session`` ContextVar set by ``ag2_logging_session`` or
``@ag2_logged`` attributes every call without an argument; ``logging_middleware(session=...)``
names a session explicitly for code that runs outside that context.

What is recorded, and from where:

* ``on_llm_call``: one ``llm_call`` per request AG2's client made, with latency, response id and
  error. Listed after AG2's ``RetryMiddleware`` (so inside it), it sees every attempt: each is
  its own row (``attempt`` 1, 2, ...; a retry has ``retries=1``, so ``Session.retry_count`` is
  the number of retried requests, as with classic AG2's SDK retries). Retries inside the
  provider SDK (``max_retries`` of the model config) never reach a middleware.
* ``on_tool_execution``: one ``tool_call`` per execution (name, arguments, result, duration,
  error; a tool that raised comes back from AG2 as a ``ToolErrorEvent``). A tool run inside a
  session by an Agent without this middleware (a ``TaskConfig`` sub-task's bare Agent, parallel
  ``run_subtasks`` included; a helper agent awaited inside a tool) is recorded the same way from
  AG2's tool executor (``ag2.tools.executor._execute_call``, wrapped by ``install()``), under the
  name of the Agent that ran it, once: a call a middleware of ours recorded is not recorded again
  (counted in ``stats["unwatched_tool_calls"]``).
* ``on_turn``: one ``turn`` agent event, a ``new_agent`` event the first time a session sees an
  agent, and, while the turn runs, a subscription to the agent's stream for ``UsageEvent`` and
  the task lifecycle events (``task_started`` / ``task_completed`` / ``task_failed``).
* ``on_human_input``: a ``human_input`` agent event.

Usage AG2 reports that no ``on_llm_call`` of ours saw is recorded from its ``UsageEvent``: a
sub-task runs on a bare ``Agent`` without this middleware and reaches the parent's stream only as
one ``kind="subtask"`` rollup (its per-call events stay on the sub-task's private stream), so
each of the rollup's ``parts`` becomes one row for the sub-agent; compaction and aggregation calls
(``kind="compaction"`` / ``"aggregation"``) are recorded the same way. Every ``UsageEvent`` whose
tokens were recorded, and every ``Usage`` an ``on_llm_call`` recorded, is remembered (by
identity): a sub-agent that carries this middleware itself has its calls recorded once, by its
own middleware, and the rollup that later reaches the parent skips them. A turn watches its
stream from its first tool call on (a sub-task runs inside a tool), or from its start when the
agent lists middleware other than this one and AG2's quiet built-ins (``RetryMiddleware``,
``TelemetryMiddleware``...): compaction, aggregation or a custom middleware may report usage
there. A subscription costs AG2 about 0.5 ms per turn (it builds a pydantic model for every
callback it is given), hence not on every turn. Usage that a middleware passed to ``ask()`` or
by a plugin reports on the stream before the turn's first tool call is therefore not seen.
The session's totals therefore equal what AG2's own
``UsageReport`` sums over the stream (for providers whose usage AG2 already reports in our
convention; see below).

Token counts: AG2's ``Usage`` renames each provider's fields but keeps the provider's meaning
(ag2 1.2.1's mappers): OpenAI, Mistral, Z.ai, Ollama report ``prompt_tokens`` including
``cache_read_input_tokens`` and ``completion_tokens`` including ``thinking_tokens``; Anthropic
and Bedrock report ``prompt_tokens`` WITHOUT cache reads and writes; Gemini, Vertex AI and xAI
report ``completion_tokens`` WITHOUT thinking tokens. ``pricing.normalize_usage`` is told which
shape the client that produced the ``Usage`` uses, so every row follows the app's convention
(prompt includes cached, completion includes reasoning).

The model config in ``context.dependencies["__ag2_model_config__"]`` carries the ``api_key`` (its
``repr`` shows it): only its class, provider, model and base URL are read, nothing else of it
is ever written. Hooks never raise into AG2: a failure is logged and counted in
``ag2_logging.capture.counters.stats["hook_failures"]``; AG2's own exceptions pass through unchanged.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from ag2.annotations import Context
from ag2.events import (
    BaseEvent,
    ClientToolCallEvent,
    DataInput,
    HumanInputRequest,
    HumanMessage,
    ModelResponse,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    TextInput,
    ToolCallEvent,
    ToolErrorEvent,
    ToolResultEvent,
    Usage,
    UsageEvent,
)
from ag2.events.base import is_conversational
from ag2.middleware import (
    AgentTurn,
    BaseMiddleware,
    HistoryLimiter,
    HumanInputHook,
    LLMCall,
    LoggingMiddleware,
    MetricsMiddleware,
    Middleware,
    RetryMiddleware,
    TelemetryMiddleware,
    TokenLimiter,
    ToolExecution,
    ToolResultType,
)

from ag2_logging import pricing
from ag2_logging.budgets import enforce as budgets
from ag2_logging.budgets import hooks as budget_hooks
from ag2_logging.budgets.errors import BudgetExceeded
from ag2_logging.capture.context import current_session
from ag2_logging.capture.counters import stats
from ag2_logging.capture.recorder import BaseRecorder, SessionRecorder, utcnow
from ag2_logging.capture.scope import live_session
from ag2_logging.capture.unattributed import get_unattributed_recorder, warn_unattributed
from ag2_logging.conf import conf
from ag2_logging.events import LLMCallInput
from ag2_logging.integrations import pending
from ag2_logging.redaction import redact_text
from ag2_logging.redaction.credentials import remember_from_client, remember_from_config
from ag2_logging.serialize import new_id

_usage_from_report: Callable[[str, Any], pricing.NormalizedUsage | None] | None
try:  # the one provider usage-shape table (pricing.usage), shared with the classic generation
    from ag2_logging.pricing.usage import usage_from_report as _usage_from_report
except ImportError:  # pragma: no cover - a pricing package without it
    _usage_from_report = None

__all__ = [
    "GENERATION",
    "RecordingMiddleware",
    "SessionArg",
    "install",
    "is_installed",
    "logging_middleware",
    "uninstall",
]

logger = logging.getLogger("ag2_logging.integrations.ag2")

GENERATION: Final = "ag2"

#: Keys AG2 puts in ``context.dependencies`` (``ag2.utils``; spelled out so that a rename in AG2
#: costs a name, not an import error).
AGENT_KEY: Final = "__ag2_agent__"
MODEL_CONFIG_KEY: Final = "__ag2_model_config__"

#: What ``logging_middleware(session=...)`` accepts: a live session's recorder or its id.
SessionArg = SessionRecorder | uuid.UUID | str | None

# How each AG2 client fills ``Usage`` (ag2 1.2.1, ``ag2/config/*/mappers.py``), keyed by the
# provider name AG2 reports (``ModelConfig.provider`` or ``ModelResponse.provider``), as
# (prompt_tokens includes cache reads and writes, completion_tokens includes thinking).
# Unlisted providers report the OpenAI way.
_USAGE_SHAPES: Final[dict[str, tuple[bool, bool]]] = {
    "openai": (True, True),
    "openai-decisions": (True, True),
    "mistral": (True, True),
    "zai": (True, True),
    "ollama": (True, True),
    "dashscope": (True, True),
    "typesafe": (True, True),
    # input_tokens / inputTokens exclude cache_read_* and cache_creation_* / cacheWrite*.
    "anthropic": (False, True),
    "bedrock": (False, True),
    # candidates_token_count excludes thoughts_token_count; xAI's completion_tokens excludes
    # reasoning_tokens (genai-prices' x-ai extractor adds them to the output for the same reason).
    "google": (True, False),
    "gemini": (True, False),
    "vertexai": (True, False),
    "xai": (True, False),
}

# AG2 provider name -> the ``api_type`` ``pricing.detect_provider`` understands.
_API_TYPES: Final[dict[str, str]] = {
    "openai": "openai",
    "openai-decisions": "openai",
    "anthropic": "anthropic",
    "bedrock": "bedrock",
    "google": "google",
    "gemini": "google",
    "vertexai": "google_vertex",
    "mistral": "mistral",
    "ollama": "ollama",
}

# AG2 providers that detect_provider has no api_type for: the genai-prices provider id to price
# them with when neither the base URL nor the model name says more.
_PRICES_PROVIDERS: Final[dict[str, str]] = {"xai": "x-ai", "zai": "zai", "typesafe": "typesafe"}

_TASK_EVENTS: Final[dict[type[BaseEvent], str]] = {
    TaskStarted: "task_started",
    TaskCompleted: "task_completed",
    TaskFailed: "task_failed",
}

#: Longest error text kept on a row (AG2 exceptions can carry whole response bodies).
MAX_ERROR_CHARS: Final = 10_000


def logging_middleware(session: SessionArg = None) -> Middleware:
    """The middleware factory to list in ``Agent(..., middleware=[...])``, ``ask(middleware=...)``
    or ``agent.add_middleware(...)``.

    ``session``: None (the default) records into the session of the calling context
    (``ag2_logging_session`` / ``@ag2_logged``), else unattributed. A ``SessionRecorder`` (what
    ``with ag2_logging_session(...) as session`` gives) or a session id names the session
    explicitly, for agents run where that context is not (another thread, another event loop);
    an id resolves to a session recording in this process. A malformed id raises ValueError here,
    never later inside AG2.

    Put it after ``RetryMiddleware`` so each retried attempt is recorded.
    """
    if session is not None and not isinstance(session, SessionRecorder | uuid.UUID):
        session = uuid.UUID(str(session))
    install()
    return Middleware(RecordingMiddleware, session=session)


# -- sessions ------------------------------------------------------------------------------------

_warned_lock = threading.Lock()
_warned_sessions: set[uuid.UUID] = set()


def _resolve(target: SessionRecorder | uuid.UUID | None) -> SessionRecorder | None:
    """The live session to record into, or None (unattributed)."""
    current = current_session.get()
    if target is None:
        return current
    if isinstance(target, SessionRecorder):
        recorder: SessionRecorder | None = target
    elif current is not None and current.session_id == target:
        recorder = current
    else:
        recorder = live_session(target)
    if recorder is not None and recorder.status == "running":
        return recorder
    session_id = target.session_id if isinstance(target, SessionRecorder) else target
    if session_id is None:
        return None
    with _warned_lock:
        first = session_id not in _warned_sessions
        _warned_sessions.add(session_id)
    if first:
        logger.warning(
            "ag2_logging: the session %s given to logging_middleware() is not recording in this process "
            "(ended, or never started here); its AG2 calls are recorded as unattributed.",
            session_id,
        )
    return None


# -- usage events already recorded ----------------------------------------------------------------


class _Recorded:
    """UsageEvents (and usages) whose tokens are in some journal already, by identity.

    Events define ``__eq__`` (so they are unhashable) and can be equal without being the same
    call, hence ``id()`` keys with a weak reference that drops the entry when the event dies (a
    strong, bounded fallback for objects that refuse weak references). Dict operations are atomic
    under the GIL; the weakref callback takes no lock, so a collection triggered while another
    thread holds one cannot deadlock.
    """

    STRONG_LIMIT: Final = 10_000

    def __init__(self) -> None:
        self._weak: dict[int, weakref.ref[Any]] = {}
        self._strong: OrderedDict[int, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, obj: object) -> bool:
        key = id(obj)
        ref = self._weak.get(key)
        if ref is not None and ref() is obj:
            return True
        return self._strong.get(key) is obj

    def add(self, obj: object) -> None:
        key = id(obj)
        weak = self._weak

        def forget(ref: weakref.ref[Any], key: int = key) -> None:
            if weak.get(key) is ref:
                weak.pop(key, None)

        try:
            weak[key] = weakref.ref(obj, forget)
        except TypeError:
            with self._lock:
                self._strong[key] = obj
                self._strong.move_to_end(key)
                while len(self._strong) > self.STRONG_LIMIT:
                    self._strong.popitem(last=False)


_recorded = _Recorded()

# What a middleware of ours is recording in this task: the turn's context, an LLM call's events,
# a tool call. The same objects pass through every middleware of one chain, so a second instance
# of ours in that chain (the factory listed on the agent and again for one call, or in a plugin)
# passes the hook through instead of counting it twice. A sub-agent's turn, calls and tools are
# other objects, so the sub-agent's own middleware records them. Objects, not ids: a task spawned
# meanwhile copies the tuple, and holding the objects keeps their ids from being reused.
_active: ContextVar[tuple[object, ...]] = ContextVar("ag2_logging_ag2_active", default=())


def _claim(obj: object) -> Token[tuple[object, ...]] | None:
    """Mark ``obj`` as recorded by the caller; None if an outer middleware of ours already is
    (or, never expected, if the mark cannot be made: the hook then passes through)."""
    try:
        active = _active.get()
        for item in active:  # by identity (events define __eq__); no generator: once per hook
            if item is obj:
                return None
        return _active.set((*active, obj))
    except Exception:
        stats.incr("hook_failures")
        logger.exception("ag2_logging failed to start recording an AG2 hook")
        return None


def _release(token: Token[tuple[object, ...]]) -> None:
    try:
        _active.reset(token)
    except ValueError:  # reset from another context than the one that set it
        pass


# -- the OpenAI SDK's request boundary --------------------------------------------------------------
#
# AG2 1.x has no process-wide hook, but most of its model configs (OpenAIConfig and the
# OpenAI-compatible ones) call the OpenAI SDK, and every request the SDK sends goes through
# ``AsyncAPIClient.request`` (one logical call, the SDK's own retries included) and
# ``AsyncAPIClient._send_request`` (one HTTP attempt); the synchronous ``openai.OpenAI`` (a tool
# or helper calling the SDK itself) goes through ``SyncAPIClient``'s two methods of the same names.
# ``install()`` wraps all four, process-wide, so:
#
# * an ``on_llm_call`` of ours learns what really happened inside it: the base URL the client used
#   (``OPENAI_BASE_URL`` included), every HTTP attempt (the SDK's ``max_retries``, and the calls a
#   RetryMiddleware listed inside ours made) and the raw usage object (or that there was none);
# * a request made in a session that no middleware of ours is watching (an Agent built without
#   ``logging_middleware()``, a helper agent awaited inside a tool, a sub-task's bare Agent) is
#   recorded from the SDK alone, and warned about once per session.


@dataclass
class _Attempt:
    """One HTTP attempt of an SDK call."""

    started_at: datetime
    ended_at: datetime | None = None
    status: int | None = None
    error: str = ""


@dataclass
class _SDKCall:
    """One logical request of the OpenAI SDK (its retries are ``attempts``)."""

    base_url: str
    model: str
    stream: bool
    started_at: datetime
    attempts: list[_Attempt] = field(default_factory=list)
    response_id: str = ""
    #: The raw ``usage`` object of the reply (the final stream chunk's), None if none came.
    usage: Any = None
    error: BaseException | None = None
    ended_at: datetime | None = None


#: Set by ``on_llm_call`` around AG2's client call: the SDK calls made inside it land here.
_watch: ContextVar[list[_SDKCall] | None] = ContextVar("ag2_logging_ag2_watch", default=None)
#: The SDK call in progress in this task (for its HTTP attempts).
_in_sdk_call: ContextVar[_SDKCall | None] = ContextVar("ag2_logging_ag2_sdk_call", default=None)
#: The ``Context`` of the LLM call a middleware of ours is running (set by ``on_llm_call``): a
#: budget's refusal is published on its stream (``BudgetRefused``).
_llm_context: ContextVar[Context | None] = ContextVar("ag2_logging_ag2_llm_context", default=None)
#: The sub-task agent running in this task (set from its ``TaskStarted`` event), for the
#: requests its bare Agent makes without a middleware of ours.
_subtask_agent: ContextVar[str] = ContextVar("ag2_logging_ag2_subtask_agent", default="")
#: The LLM endpoints recorded (paths relative to the base URL).
_LLM_PATHS: Final = ("/chat/completions", "/responses", "/completions")

_install_lock = threading.Lock()
_originals: dict[str, Any] = {}


def _sdk_base() -> Any:
    # Imported by name: mypy need not read the SDK (and AG2 imported it already).
    return importlib.import_module("openai._base_client").AsyncAPIClient


def _sync_sdk_base() -> Any:
    """``openai.OpenAI``'s base: a tool or helper may call the SDK synchronously in a session."""
    return importlib.import_module("openai._base_client").SyncAPIClient


def install() -> bool:
    """Wrap the OpenAI SDK's request boundary and AG2's tool executor, process-wide
    (idempotent). False if the SDK is missing or has no such boundary (the middleware then
    records the LLM calls it sees, as before)."""
    with _install_lock:
        _install_tool_hook()
        if "request" in _originals:
            return True
        try:
            base = _sdk_base()
            request, send = base.request, base._send_request
        except (ImportError, AttributeError):
            logger.warning("ag2_logging: the OpenAI SDK has no request boundary to watch")
            return False
        _originals.update(request=request, send=send)
        base.request = _wrap_budget(_wrap_request(request))
        budgets.install()
        base._send_request = _wrap_send(send)
        try:
            sync = _sync_sdk_base()
            _originals.update(sync_request=sync.request, sync_send=sync._send_request)
        except (ImportError, AttributeError):
            logger.warning("ag2_logging: the OpenAI SDK has no synchronous request boundary to watch")
            return True
        sync.request = _wrap_sync_budget(_wrap_sync_request(_originals["sync_request"]))
        sync._send_request = _wrap_sync_send(_originals["sync_send"])
        return True


def uninstall() -> None:
    """Put the OpenAI SDK's methods back (for tests)."""
    with _install_lock:
        if not _originals:
            return
        if "execute_call" in _originals:
            _tool_executor_module()._execute_call = _originals.pop("execute_call")
        if "request" not in _originals:
            _originals.clear()
            return
        base = _sdk_base()
        base.request, base._send_request = _originals.pop("request"), _originals.pop("send")
        if "sync_request" in _originals:
            sync = _sync_sdk_base()
            sync.request, sync._send_request = _originals.pop("sync_request"), _originals.pop("sync_send")


def is_installed() -> bool:
    return bool(_originals)


def _new_sdk_call(client: Any, options: Any, stream: bool) -> _SDKCall | None:
    """An ``_SDKCall`` for a request to an LLM endpoint while logging is on, else None."""
    url = str(getattr(options, "url", "") or "")
    if not url.endswith(_LLM_PATHS) or not conf.resolved.enabled:
        return None
    remember_from_client(client)  # an echoed key is scrubbed later
    body = getattr(options, "json_data", None)
    model = body.get("model") if isinstance(body, dict) else None
    return _SDKCall(
        base_url=str(getattr(client, "base_url", "") or ""),
        model=str(model or ""),
        stream=stream,
        started_at=utcnow(),
    )


def _start_sdk_call(client: Any, options: Any, kwargs: dict[str, Any]) -> _SDKCall | None:
    """The ``_SDKCall`` a wrapped request records (None: not watched); never raises."""
    try:
        return _new_sdk_call(client, options, bool(kwargs.get("stream")))
    except Exception:
        RecordingMiddleware._failed("watch an OpenAI SDK request")
        return None


def _wrap_request(original: Callable[..., Any]) -> Callable[..., Any]:
    async def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        call = _start_sdk_call(self, options, kwargs)
        if call is None:
            return await original(self, cast_to, options, *args, **kwargs)
        token = _in_sdk_call.set(call)
        try:
            result = await original(self, cast_to, options, *args, **kwargs)
        except BaseException as exc:
            call.error = exc
            _sdk_call_done(call)
            raise
        finally:
            _in_sdk_call.reset(token)
        return _sdk_result(call, result, _watched_stream)

    return request


def _sdk_result(call: _SDKCall, result: Any, watch: Callable[[Any, _SDKCall], Any]) -> Any:
    """The SDK's ``result`` unchanged; a stream's chunks go through ``watch`` (the call is done
    when the stream ends), any other reply's id, model and usage are noted now."""
    if call.stream and hasattr(result, "_iterator"):
        result._iterator = watch(result._iterator, call)
        return result
    _note_reply(call, result)
    _sdk_call_done(call)
    return result


def _note_reply(call: _SDKCall, reply: Any) -> None:
    """A reply's (or a stream chunk's) usage, id and model, where it has them."""
    if getattr(reply, "usage", None) is not None:
        call.usage = reply.usage
    call.response_id = str(getattr(reply, "id", "") or "") or call.response_id
    call.model = str(getattr(reply, "model", "") or "") or call.model


def _wrap_sync_request(original: Callable[..., Any]) -> Callable[..., Any]:
    """``_wrap_request`` for ``SyncAPIClient.request`` (``openai.OpenAI`` in a session)."""

    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        call = _start_sdk_call(self, options, kwargs)
        if call is None:
            return original(self, cast_to, options, *args, **kwargs)
        token = _in_sdk_call.set(call)
        try:
            result = original(self, cast_to, options, *args, **kwargs)
        except BaseException as exc:
            call.error = exc
            _sdk_call_done(call)
            raise
        finally:
            _in_sdk_call.reset(token)
        return _sdk_result(call, result, _watched_sync_stream)

    return request


class BudgetRefused(BaseEvent):
    """Published on the LLM call's stream when a budget refuses its request, just before
    ``BudgetExceeded`` is raised: AG2's ``RetryMiddleware`` does not repeat an attempt that
    published an event, so a refusal is not retried (each retry would be refused again).
    ``budget``: the Budget's id (None: a per-session limit); ``scope``; ``message``: the
    exception's text. Transient (not kept in the history) and never sent to a model."""

    __transient__ = True
    __conversational__ = False
    budget: int | None
    scope: str
    message: str


def _budget_args(client: Any, options: Any) -> tuple[Any, str, str, Any] | None:
    """``(session, provider, model, body)`` for the budgets' check of a request; None when no
    budget can apply (not an LLM endpoint, logging off, no budget for this session)."""
    session = current_session.get()
    if budgets.idle(session):  # first: the common case (no session, no budget) reads least
        return None
    url = str(getattr(options, "url", "") or "")
    if not url.endswith(_LLM_PATHS) or not conf.resolved.enabled:
        return None
    body = getattr(options, "json_data", None)
    model = str(body.get("model") or "") if isinstance(body, dict) else ""
    provider = detect_provider("openai", str(getattr(client, "base_url", "") or ""), model)
    return session, provider, model, body


async def _budget_check(client: Any, options: Any) -> budgets.Reservation | None:
    """The budgets' reservation for a request (None: no budget applies); raises
    ``BudgetExceeded`` when a ``block`` budget would be passed: the request is not sent."""
    args = _budget_args(client, options)
    if args is None:
        return None
    try:
        return await asyncio.to_thread(budgets.check, *args)
    except BudgetExceeded as exc:
        await _publish_refusal(exc)
        raise


async def _publish_refusal(exc: BudgetExceeded) -> None:
    """``BudgetRefused`` on the stream of the LLM call in progress (none outside our middleware)."""
    context = _llm_context.get()
    if context is None:
        return
    try:
        await context.send(BudgetRefused(budget=exc.budget, scope=exc.scope, message=str(exc)))
    except Exception:
        RecordingMiddleware._failed("publish a budget refusal")


def _wrap_budget(original: Callable[..., Any]) -> Callable[..., Any]:
    """The budgets' check before the SDK sends a request; settle or release after it."""

    async def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        reservation = await _budget_check(self, options)
        if reservation is None:
            return await original(self, cast_to, options, *args, **kwargs)
        return await budget_hooks.asent(
            reservation,
            lambda: original(self, cast_to, options, *args, **kwargs),
            stream=bool(kwargs.get("stream")),
        )

    return request


def _wrap_sync_budget(original: Callable[..., Any]) -> Callable[..., Any]:
    """``_wrap_budget`` for ``SyncAPIClient.request`` (``openai.OpenAI`` in a session: a tool, a
    helper); the ledger is reached in a worker thread when this thread runs an event loop."""

    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        check = _budget_args(self, options)
        reservation = budgets.run_off_loop(budgets.check, *check) if check is not None else None
        if reservation is None:
            return original(self, cast_to, options, *args, **kwargs)
        return budget_hooks.sent(
            reservation,
            lambda: original(self, cast_to, options, *args, **kwargs),
            stream=bool(kwargs.get("stream")),
        )

    return request


def _wrap_send(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _send_request(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        call = _in_sdk_call.get()
        if call is None:
            return await original(self, request, *args, **kwargs)
        attempt = _Attempt(started_at=utcnow())
        call.attempts.append(attempt)
        try:
            response = await original(self, request, *args, **kwargs)
        except BaseException as exc:
            attempt.ended_at, attempt.error = utcnow(), _error_text(exc)
            raise
        _attempt_answered(attempt, response)
        return response

    return _send_request


def _wrap_sync_send(original: Callable[..., Any]) -> Callable[..., Any]:
    """``_wrap_send`` for ``SyncAPIClient._send_request`` (one HTTP attempt)."""

    def _send_request(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        call = _in_sdk_call.get()
        if call is None:
            return original(self, request, *args, **kwargs)
        attempt = _Attempt(started_at=utcnow())
        call.attempts.append(attempt)
        try:
            response = original(self, request, *args, **kwargs)
        except BaseException as exc:
            attempt.ended_at, attempt.error = utcnow(), _error_text(exc)
            raise
        _attempt_answered(attempt, response)
        return response

    return _send_request


def _attempt_answered(attempt: _Attempt, response: Any) -> None:
    attempt.ended_at, attempt.status = utcnow(), int(response.status_code)
    if attempt.status >= 400:
        attempt.error = f"HTTP {attempt.status} {getattr(response, 'reason_phrase', '')}".strip()


async def _watched_stream(chunks: AsyncIterator[Any], call: _SDKCall) -> AsyncIterator[Any]:
    """The stream's chunks, unchanged; its id, model and usage noted; done when it ends."""
    try:
        async for chunk in chunks:
            _note_reply(call, chunk)
            yield chunk
    except BaseException as exc:
        call.error = exc
        raise
    finally:
        _sdk_call_done(call)


def _watched_sync_stream(chunks: Iterator[Any], call: _SDKCall) -> Iterator[Any]:
    """``_watched_stream`` for a synchronous ``openai.Stream``."""
    try:
        for chunk in chunks:
            _note_reply(call, chunk)
            yield chunk
    except BaseException as exc:
        call.error = exc
        raise
    finally:
        _sdk_call_done(call)


def _sdk_call_done(call: _SDKCall) -> None:
    """Hand a finished SDK call to the middleware watching it, else record it from the SDK."""
    if call.ended_at is not None:
        return
    call.ended_at = utcnow()
    watch = _watch.get()
    if watch is not None:
        watch.append(call)
        return
    session = current_session.get()
    if session is None:
        return  # outside a session, unwatched SDK requests are not ours to record
    # A session that has ended still takes it: the recorder hands a late call to the
    # unattributed journal, marked late_of, and warns once (a task that outlived the block).
    try:
        _record_unwatched(session, call)
    except Exception:
        RecordingMiddleware._failed("record an OpenAI SDK request")


_warned_unwatched: set[uuid.UUID] = set()


def _record_unwatched(session: SessionRecorder, call: _SDKCall) -> None:
    """An LLM request no middleware of ours saw: its rows from the SDK alone (no agent name)."""
    provider = detect_provider("openai", call.base_url, call.model)
    if session.session_id is not None and session.status == "running":  # late: warned as late
        with _warned_lock:
            first = session.session_id not in _warned_unwatched
            _warned_unwatched.add(session.session_id)
        if first:
            logger.warning(
                "ag2_logging: session %s made an LLM request (%s, %s) that no logging_middleware() saw: "
                "it is recorded from the OpenAI SDK, without its agent's turn. Add logging_middleware() "
                "to that Agent's middleware (after RetryMiddleware) to record it fully.",
                session.session_id,
                provider,
                call.model,
            )
    stats.incr("unwatched_llm_requests")
    invocation_id = str(uuid.uuid4())
    for number, attempt, error in _attempt_rows(
        call, None if call.error is None else _error_text(call.error)
    ):
        final = number == len(call.attempts) or not call.attempts
        usage = _sdk_usage(provider, call.usage) if final and not error else None
        _UNWATCHED_LEDGER.note(session, provider, call.model, usage)
        session.record(
            _call_input(
                agent_name=_subtask_agent.get(),
                provider=provider,
                model=call.model,
                usage=usage,
                usage_reported=bool(error) or usage is not None,
                error=error,
                started_at=attempt.started_at if attempt else call.started_at,
                ended_at=(attempt.ended_at if attempt else None) or call.ended_at,
                invocation_id=invocation_id,
                response_id=call.response_id if final and not error else "",
                attempt=number,
                response={"source": "openai_sdk", "stream": call.stream} if final else None,
            )
        )


def _attempt_rows(call: _SDKCall, final_error: str | None) -> list[tuple[int, _Attempt | None, str]]:
    """(attempt number, attempt, error) for each HTTP attempt of ``call``; the last attempt's
    error is ``final_error`` (the SDK's exception), earlier ones failed and were retried."""
    if not call.attempts:
        return [(1, None, final_error or "")]
    rows: list[tuple[int, _Attempt | None, str]] = []
    for index, attempt in enumerate(call.attempts, start=1):
        last = index == len(call.attempts)
        error = (final_error or "") if last else (attempt.error or "failed; retried by the OpenAI SDK")
        rows.append((index, attempt, error))
    return rows


def _sdk_usage(provider: str, usage: Any) -> pricing.NormalizedUsage | None:
    """The raw usage of an OpenAI-SDK reply in the app's convention; None when none came."""
    if usage is None:
        return None
    if _usage_from_report is not None:
        return _usage_from_report(provider, usage)
    details = getattr(usage, "prompt_tokens_details", None)
    reasoning = getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None)
    counts = pricing.normalize_usage(
        provider,
        _count(getattr(usage, "prompt_tokens", None)),
        _count(getattr(usage, "completion_tokens", None)),
        _count(getattr(details, "cached_tokens", None)),
        _count(reasoning),
    )
    return counts if counts.total_tokens else None


class _Ledger:
    """Tokens recorded from the SDK alone, per session, by (provider, model, counts): a sub-task's
    rollup that reaches a parent's middleware later skips them instead of counting them twice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[Any, ...], int] = {}

    @staticmethod
    def _key(session: SessionRecorder, model: str, usage: pricing.NormalizedUsage) -> tuple[Any, ...]:
        return (session.session_id, model, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)

    def note(
        self, session: SessionRecorder, provider: str, model: str, usage: pricing.NormalizedUsage | None
    ) -> None:
        if usage is None:
            return
        key = self._key(session, model, usage)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def take(self, session: SessionRecorder | None, model: str, usage: pricing.NormalizedUsage) -> bool:
        if session is None:
            return False
        key = self._key(session, model, usage)
        with self._lock:
            left = self._counts.get(key, 0)
            if not left:
                return False
            if left == 1:
                del self._counts[key]
            else:
                self._counts[key] = left - 1
            return True


_UNWATCHED_LEDGER = _Ledger()


def _call_input(
    *, usage: pricing.NormalizedUsage | None, usage_reported: bool, **values: Any
) -> LLMCallInput:
    """An ``LLMCallInput`` with ``usage`` (None: zero tokens). A reply without usage
    (``usage_reported`` False) is recorded with no price (``LLMCallInput.usage_missing``:
    ``no_usage``, cost unknown)."""
    counts = usage or pricing.NormalizedUsage(prompt_tokens=0, completion_tokens=0)
    values.update(
        prompt_tokens=counts.prompt_tokens,
        completion_tokens=counts.completion_tokens,
        cached_tokens=counts.cached_tokens,
        reasoning_tokens=counts.reasoning_tokens,
        cache_write_tokens=counts.cache_write_tokens,
        usage_normalized=True,
        generation=GENERATION,
    )
    if not usage_reported:
        values["usage_missing"] = True
    values["retries"] = 1 if values.get("attempt", 1) > 1 else 0
    return LLMCallInput(**values)


# -- AG2's tool executor ----------------------------------------------------------------------------
#
# Every tool call an ``ag2.Agent`` (or a plugin) runs goes through ``ag2.tools.executor._execute_call``
# (ag2 1.2.1): ``ToolExecutor.execute_tools`` starts one task per call of a ``ToolCallsEvent``, which
# sends the call on the agent's stream (the tool's middleware chain, ours included, runs inline
# in that task) and awaits its ``ToolResultEvent`` / ``ToolErrorEvent`` / ``ClientToolCallEvent``.
# ``install()`` wraps that function, process-wide, so a tool that runs inside a session is
# recorded even where no middleware of ours is listed: a ``TaskConfig`` sub-task's bare Agent
# (parallel ``run_subtasks`` included), an Agent built without ``logging_middleware()``, a helper
# agent awaited inside a tool. A call a middleware of ours took on is marked in ``_tool_watch``
# and not recorded again.


@dataclass
class _ToolWatch:
    """One tool call in ``_execute_call``: whether a middleware of ours recorded it."""

    recorded: bool = False


#: Set by the wrapped ``_execute_call`` around one tool call; ``on_tool_execution`` marks it.
_tool_watch: ContextVar[_ToolWatch | None] = ContextVar("ag2_logging_ag2_tool_watch", default=None)

TOOL_EXECUTOR_MODULE: Final = "ag2.tools.executor"


def _tool_executor_module() -> Any:
    return importlib.import_module(TOOL_EXECUTOR_MODULE)


def _install_tool_hook() -> None:
    """Wrap ``ag2.tools.executor._execute_call`` (idempotent; the caller holds the install lock).
    Without it (another AG2), tools are recorded only by ``logging_middleware()``: warned once."""
    if "execute_call" in _originals:
        return
    try:
        module = _tool_executor_module()
        original = module._execute_call
    except (ImportError, AttributeError):
        stats.incr("unhooked_tool_executor")
        logger.warning(
            "ag2_logging: this AG2 has no %s._execute_call to watch: tool executions are recorded only "
            "by logging_middleware(), so the tools of TaskConfig sub-tasks and of Agents without it are "
            "not recorded. List logging_middleware() on every Agent, or pin ag2 to a version this app "
            "supports (1.2).",
            TOOL_EXECUTOR_MODULE,
        )
        return
    _originals["execute_call"] = original
    module._execute_call = _wrap_execute_call(original)


def _wrap_execute_call(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _execute_call(context: Any, call: Any) -> Any:
        if not conf.resolved.enabled:
            return await original(context, call)
        watch = _ToolWatch()
        token = _tool_watch.set(watch)
        started_at, started = utcnow(), time.perf_counter()
        try:
            outcome = await original(context, call)
        except Exception as exc:
            _tool_done(watch, context, call, None, exc, started_at, started)
            raise
        finally:
            _tool_watch.reset(token)
        _tool_done(watch, context, call, outcome, None, started_at, started)
        return outcome

    return _execute_call


def _tool_done(
    watch: _ToolWatch,
    context: Any,
    call: Any,
    outcome: Any,
    exc: BaseException | None,
    started_at: datetime,
    started: float,
) -> None:
    """Record a tool call no middleware of ours recorded, into the calling context's session
    (outside a session it is not ours to record, as with unwatched LLM requests); never raises."""
    if watch.recorded:
        return
    session = current_session.get()
    if session is None:
        return
    try:
        agent = context.dependencies.get(AGENT_KEY)
        _record_tool(
            session,
            str(getattr(agent, "name", "") or ""),
            call,
            outcome,
            exc,
            started_at,
            (time.perf_counter() - started) * 1000.0,
        )
        stats.incr("unwatched_tool_calls")
    except Exception:
        RecordingMiddleware._failed("record an AG2 tool execution")


def _record_tool(
    target: BaseRecorder,
    agent_name: str,
    event: ToolCallEvent,
    result: Any,
    exc: BaseException | None,
    started_at: datetime,
    duration_ms: float,
) -> None:
    """One ``tool_call`` row: ``result`` is what AG2 answered the call with (a
    ``ToolResultEvent``, a ``ToolErrorEvent`` (``ToolNotFoundEvent`` included) or a
    ``ClientToolCallEvent``), ``exc`` what it raised instead; ``duration_ms`` in milliseconds."""
    value: Any = None
    error = ""
    if exc is not None:
        error = _error_text(exc)
    elif isinstance(result, ToolErrorEvent):
        error = _error_text(result.error)
    elif isinstance(result, ToolResultEvent):
        value = _tool_result_value(result)
    elif isinstance(result, ClientToolCallEvent):
        value = "<handed to the client>"
    target.record_tool_call(
        agent_name=agent_name,
        name=str(event.name),
        arguments=_tool_arguments(event),
        result=value,
        error=error,
        duration_ms=duration_ms,
        started_at=started_at,
    )


# -- pure helpers ---------------------------------------------------------------------------------


def _count(value: float | None) -> int:
    try:
        return max(round(value or 0), 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def normalized_usage(ag2_provider: str | None, usage: Usage | None) -> pricing.NormalizedUsage:
    """AG2's ``Usage`` of a call made by ``ag2_provider``'s client, in the app's convention."""
    if not usage:
        return pricing.NormalizedUsage(prompt_tokens=0, completion_tokens=0)
    prompt_includes, completion_includes = _USAGE_SHAPES.get((ag2_provider or "").lower(), (True, True))
    return pricing.normalize_usage(
        ag2_provider or "",
        _count(usage.prompt_tokens),
        _count(usage.completion_tokens),
        _count(usage.cache_read_input_tokens),
        _count(usage.thinking_tokens),
        _count(usage.cache_creation_input_tokens),
        prompt_includes_cached=prompt_includes,
        completion_includes_reasoning=completion_includes,
    )


#: detect_provider's answers for the settings they were found with (a turn asks the same
#: question each time: about 7 µs saved per call).
_providers_found: dict[tuple[str | None, str | None, str | None], str] = {}
_providers_found_for: list[object] = [None]


def detect_provider(ag2_provider: str | None, base_url: str | None, model: str | None) -> str:
    """Our provider id for a call AG2's ``ag2_provider`` client made to ``base_url``."""
    resolved = conf.resolved
    key = (ag2_provider, base_url, model)
    if _providers_found_for[0] is not resolved:  # settings changed: answers may differ
        _providers_found.clear()
        _providers_found_for[0] = resolved
    else:
        found = _providers_found.get(key)
        if found is not None:
            return found
    kind = (ag2_provider or "").lower()
    provider = pricing.detect_provider(
        api_type=_API_TYPES.get(kind),
        base_url=base_url,
        model=model,
        base_url_map=resolved.provider_base_urls,
    )
    if provider == "unknown" and kind in _PRICES_PROVIDERS:
        provider = _PRICES_PROVIDERS[kind]
    if len(_providers_found) < 1_000:
        _providers_found[key] = provider
    return provider


def _config_provider(config: Any) -> str:
    try:
        provider = config.provider
    except Exception:  # ModelConfig.provider raises NotImplementedError on the protocol itself
        return ""
    return str(getattr(provider, "value", provider) or "")


def _config_text(config: Any, name: str) -> str:
    try:
        value = getattr(config, name, None)
    except Exception:
        return ""
    return str(value) if isinstance(value, str) and value else ""


def _error_text(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]


def _event_body(event: Any) -> Any:
    body: dict[str, Any] = {"type": type(event).__name__}
    try:
        data = event.to_dict()
    except Exception:
        # Redact before cutting, so no secret's head survives the cut.
        body["repr"] = redact_text(repr(event)[:100_000])[:2_000]
        return body
    if isinstance(data, dict):
        data.pop("created_at", None)
        body.update(data)
    return body


def _response_body(response: ModelResponse) -> dict[str, Any]:
    calls = getattr(response.tool_calls, "calls", None) or []
    return {
        "id": response.response_id,
        "model": response.model,
        "provider": response.provider,
        "finish_reason": response.finish_reason,
        "message": {
            "content": response.content,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
        },
    }


def _part_value(part: Any) -> Any:
    if isinstance(part, TextInput):
        return part.content
    if isinstance(part, DataInput):
        return part.data
    return f"<{type(part).__name__}>"


def _tool_result_value(result: ToolResultEvent) -> Any:
    parts = getattr(result.result, "parts", None) or []
    values = [_part_value(part) for part in parts]
    return values[0] if len(values) == 1 else values


def _tool_arguments(event: ToolCallEvent) -> Any:
    try:
        return event.serialized_arguments
    except Exception:  # not JSON: keep the text the model sent
        return event.arguments


@dataclass
class _Outcome:
    """What one ``on_llm_call`` saw: AG2's side and the SDK calls made inside it."""

    context: Context
    events: Sequence[BaseEvent]
    attempt: int
    started_at: datetime
    watched: list[_SDKCall]
    response: ModelResponse | None
    exc: BaseException | None


#: AG2's built-in middleware factories that put nothing on the stream (ag2 1.2.1); one that is
#: missing its optional dependency (``TelemetryMiddleware`` without OpenTelemetry) is no class.
#: Compared by exact type: ``isinstance`` against these (``typing.Protocol`` subclasses) costs
#: about 5 µs a check.
_QUIET_FACTORIES: Final[frozenset[type]] = frozenset(
    factory
    for factory in (
        RetryMiddleware,
        LoggingMiddleware,
        HistoryLimiter,
        TokenLimiter,
        TelemetryMiddleware,
        MetricsMiddleware,
    )
    if isinstance(factory, type)
)


def _quiet_agent(agent: Any) -> bool:
    """True if every middleware listed on ``agent`` is ours or one of AG2's quiet built-ins: its
    turns then report usage on the stream only from tools (AG2's compaction and aggregation, or
    a custom middleware, may report a call of their own there at any point of the turn)."""
    factories = getattr(agent, "_middleware", None)  # the list behind ``agent.middleware``
    if not isinstance(factories, list):
        try:  # the public view builds a DescribedMiddleware per entry (about 4 µs each)
            factories = [entry.middleware for entry in agent.middleware]
        except Exception:  # not an ag2.Agent (None, a stand-in): watch the stream, as before
            return False
    for factory in factories:
        kind = type(factory)
        if kind in _QUIET_FACTORIES:
            continue
        if kind is Middleware and issubclass(factory.cls, RecordingMiddleware):
            continue
        return False
    return True


def _config_provider_of(context: Context) -> str:
    return _config_provider(context.dependencies.get(MODEL_CONFIG_KEY))


# -- the middleware -------------------------------------------------------------------------------


class RecordingMiddleware(BaseMiddleware):
    """Records one agent turn's LLM calls, tool executions and events (made per turn by AG2)."""

    def __init__(self, event: BaseEvent, context: Context, *, session: SessionArg = None) -> None:
        super().__init__(event, context)
        self._session_arg = session if isinstance(session, SessionRecorder | uuid.UUID) else None
        self._enabled = False
        self._recorder: SessionRecorder | None = None
        self._resolved = False
        self._agent_name = ""
        self._llm_calls = 0
        self._tool_calls = 0
        # Retry detection: AG2's RetryMiddleware calls the rest of the chain again with the very
        # same events after a failure.
        self._last_events: Sequence[BaseEvent] | None = None
        self._last_attempt = 0
        self._last_failed = False
        self._invocation_id = ""
        # Usages recorded by on_llm_call whose UsageEvent has not been seen yet.
        self._pending: list[Usage] = []
        # The turn's ExitStack while on_turn runs, and whether the stream is watched (below).
        self._turn_stack: ExitStack | None = None
        self._watching = False
        # The model config whose secrets were remembered in this turn (read once a turn).
        self._config_read: Any = None
        try:
            self._enabled = conf.resolved.enabled
            if self._enabled:
                agent = context.dependencies.get(AGENT_KEY)
                self._agent_name = str(getattr(agent, "name", "") or "")
        except Exception:
            self._failed("set up a turn")

    # -- plumbing --------------------------------------------------------------------------------

    @staticmethod
    def _failed(what: str) -> None:
        stats.incr("hook_failures")
        logger.exception("ag2_logging failed to %s", what)

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            self._failed(what)
            return None

    def _session(self) -> SessionRecorder | None:
        """The session of this turn: resolved once, on first use, in the turn's context."""
        if not self._resolved:
            self._resolved = True
            self._recorder = _resolve(self._session_arg)
        return self._recorder

    def _target(self, what: str) -> BaseRecorder:
        """Where an LLM or tool call goes: the session, else the unattributed journal (warned)."""
        session = self._session()
        if session is not None:
            return session
        warn_unattributed(what)
        return get_unattributed_recorder()

    # -- AG2 hooks -------------------------------------------------------------------------------

    async def on_turn(self, call_next: AgentTurn, event: BaseEvent, context: Context) -> ModelResponse:
        claim = _claim(context) if self._enabled else None
        if claim is None:
            return await call_next(event, context)
        try:
            started = time.perf_counter()
            with ExitStack() as stack:
                self._guard("watch an agent turn", self._begin_turn, stack, context)
                try:
                    response = await call_next(event, context)
                except BaseException as exc:
                    self._guard("record an agent turn", self._end_turn, event, None, exc, started)
                    raise
            self._guard("record an agent turn", self._end_turn, event, response, None, started)
            return response
        finally:
            self._turn_stack = None
            _release(claim)

    async def on_llm_call(
        self, call_next: LLMCall, events: Sequence[BaseEvent], context: Context
    ) -> ModelResponse:
        claim = _claim(events) if self._enabled else None
        if claim is None:
            return await call_next(events, context)
        try:
            attempt = self._guard("count an LLM attempt", self._next_attempt, events) or 1
            started_at = utcnow()
            watched: list[_SDKCall] = []
            watch, in_call = _watch.set(watched), _llm_context.set(context)
            try:
                response = await call_next(events, context)
            except Exception as exc:
                self._last_failed = True
                _watch.reset(watch)
                _llm_context.reset(in_call)
                self._guard(
                    "record an LLM call",
                    self._record_llm_calls,
                    _Outcome(context, events, attempt, started_at, watched, None, exc),
                )
                raise
            _watch.reset(watch)
            _llm_context.reset(in_call)
            self._last_failed = False
            self._guard(
                "record an LLM call",
                self._record_llm_calls,
                _Outcome(context, events, attempt, started_at, watched, response, None),
            )
            return response
        finally:
            _release(claim)

    async def on_tool_execution(
        self, call_next: ToolExecution, event: ToolCallEvent, context: Context
    ) -> ToolResultType:
        claim = _claim(event) if self._enabled else None
        if claim is None:
            return await call_next(event, context)
        watch = _tool_watch.get()
        if watch is not None:
            watch.recorded = True  # ours to record (a failure counted once), not AG2's executor's
        try:
            with ExitStack() as own:
                # A tool may run a sub-task (TaskStarted, its usage rollup, TaskCompleted on this
                # stream): watched from here to the end of the turn (of the tool, outside a turn).
                self._guard("watch a tool call", self._watch_stream, self._turn_stack or own, context)
                started_at = utcnow()
                started = time.perf_counter()
                try:
                    result = await call_next(event, context)
                except Exception as exc:
                    self._guard(
                        "record a tool call", self._record_tool_call, event, None, exc, started_at, started
                    )
                    raise
                self._guard(
                    "record a tool call", self._record_tool_call, event, result, None, started_at, started
                )
                return result
        finally:
            _release(claim)

    async def on_human_input(
        self, call_next: HumanInputHook, event: HumanInputRequest, context: Context
    ) -> HumanMessage:
        claim = _claim(event) if self._enabled else None
        if claim is None:
            return await call_next(event, context)
        try:
            return await self._human_input(call_next, event, context)
        finally:
            _release(claim)

    async def _human_input(
        self, call_next: HumanInputHook, event: HumanInputRequest, context: Context
    ) -> HumanMessage:
        started = time.perf_counter()
        try:
            reply = await call_next(event, context)
        except Exception as exc:
            self._guard("record human input", self._record_human_input, event, None, exc, started)
            raise
        self._guard("record human input", self._record_human_input, event, reply, None, started)
        return reply

    # -- turns and stream events -----------------------------------------------------------------

    def _begin_turn(self, stack: ExitStack, context: Context) -> None:
        self._turn_stack = stack
        agent = context.dependencies.get(AGENT_KEY)
        if not _quiet_agent(agent):
            # Watch first: usage reported on the stream is recorded even outside a session.
            self._watch_stream(stack, context)
        recorder = self._session()
        config = context.dependencies.get(MODEL_CONFIG_KEY) or getattr(agent, "config", None)
        remember_from_config(config)  # its api_key, headers and URL secrets, scrubbed if echoed
        self._config_read = config
        if recorder is not None and agent is not None and not recorder.announced(agent):
            recorder.record_agent_event(
                agent_name=self._agent_name,
                name="new_agent",
                data={
                    "class": type(agent).__qualname__,
                    "generation": GENERATION,
                    "config_class": type(config).__qualname__ if config is not None else None,
                    "provider": _config_provider(config),
                    "model": _config_text(config, "model"),
                },
            )

    def _end_turn(
        self, event: BaseEvent, response: ModelResponse | None, exc: BaseException | None, started: float
    ) -> None:
        recorder = self._session()
        if recorder is None:
            return  # agent events outside a session are not kept (as with classic AG2)
        data: dict[str, Any] = {
            "trigger": type(event).__name__,
            "llm_calls": self._llm_calls,
            "tool_calls": self._tool_calls,
        }
        if response is not None:
            data["finish_reason"] = _finish_reason(response.finish_reason, recorder)
        recorder.record_agent_event(
            agent_name=self._agent_name,
            name="turn",
            data=data,
            error=_error_text(exc) if exc is not None else "",
            duration_ms=(time.perf_counter() - started) * 1000.0,
            own_data=True,  # a class name, two counts and the screened finish reason
        )

    def _watch_stream(self, stack: ExitStack, context: Context) -> None:
        """Subscribe to the stream's usage and task events until ``stack`` closes (once a turn).

        A subscription costs AG2 a pydantic model built for the callback (0.5 to 0.9 ms in
        ag2 1.2.1: ``ag2.utils.build_model``, on every ``subscribe``), so a turn subscribes only
        when something may report there: a tool (a sub-task's rollup and lifecycle), or agent
        middleware other than ours and AG2's quiet built-ins (compaction, aggregation, custom).
        """
        if self._watching:
            return
        watched = UsageEvent | TaskStarted | TaskCompleted | TaskFailed
        stack.enter_context(context.stream.where(watched).sub_scope(self._on_stream_event))
        self._watching = stack is self._turn_stack

    async def _on_stream_event(self, event: Any) -> None:
        # Called by the stream inline, inside the turn's task; never raises into the stream.
        self._guard("record a stream event", self._handle_stream_event, event)

    def _handle_stream_event(self, event: Any) -> None:
        if isinstance(event, UsageEvent):
            self._on_usage_event(event)
            return
        name = _TASK_EVENTS.get(type(event))
        if name is not None:
            # Delivered inline, in the task that runs the sub-task: the SDK requests its bare
            # Agent makes are recorded under its name.
            _subtask_agent.set(str(event.agent_name or "") if name == "task_started" else "")
        recorder = self._session()
        if name is None or recorder is None:
            return
        data: dict[str, Any] = {"task_id": event.task_id, "parent_agent": self._agent_name}
        if recorder.settings.capture_bodies:
            data["objective"] = event.objective
        error = event.error if isinstance(event, TaskFailed) else None
        recorder.record_agent_event(
            agent_name=str(event.agent_name or ""),
            name=name,
            data=data,
            error=_error_text(error) if isinstance(error, BaseException) else str(error or ""),
        )

    def _on_usage_event(self, event: UsageEvent) -> None:
        if event in _recorded:
            return
        if event.kind == "subtask":
            # One rollup of a delegated run; its parts are the calls it sums (nested rollups
            # already flattened by AG2). Record each part no middleware of ours recorded.
            for part in getattr(event, "parts", None) or [event]:
                if part in _recorded or (part.usage is not None and part.usage in _recorded):
                    continue
                if part.usage:
                    self._record_usage_event(part, event.label or part.label or "")
                _recorded.add(part)
            _recorded.add(event)
            return
        if event.kind == "model_call" and self._take_pending(event.usage):
            _recorded.add(event)  # recorded by on_llm_call, with latency and response
            return
        if event.usage:
            self._record_usage_event(event, self._agent_name)
        _recorded.add(event)

    def _take_pending(self, usage: Usage) -> bool:
        pending = self._pending
        for index, candidate in enumerate(pending):
            if candidate is usage:
                del pending[index]
                return True
        for index, candidate in enumerate(pending):
            if candidate == usage:  # an outer middleware rebuilt the response
                del pending[index]
                return True
        return False

    def _record_usage_event(self, event: UsageEvent, agent_name: str) -> None:
        """A call this middleware did not see: tokens, model and provider from its UsageEvent."""
        config = self.context.dependencies.get(MODEL_CONFIG_KEY)
        base_url = None
        # A sub-task runs with the parent's model config unless TaskConfig names another: the
        # parent's base URL applies when the provider and model match.
        if _config_provider(config) == (event.provider or "") and _config_text(config, "model") == (
            event.model or ""
        ):
            base_url = _config_text(config, "base_url") or None
        counts = normalized_usage(event.provider, event.usage)
        if _UNWATCHED_LEDGER.take(self._session(), str(event.model or ""), counts):
            return  # recorded already, from the OpenAI SDK, when the sub-agent made it
        self._target("an LLM call").record(
            _call_input(
                usage=counts,
                usage_reported=True,
                agent_name=agent_name,
                provider=detect_provider(event.provider, base_url, event.model),
                model=str(event.model or ""),
                ended_at=_event_time(event),
                response={"source": "usage_event", "kind": event.kind, "finish_reason": event.finish_reason},
            )
        )

    # -- LLM calls -------------------------------------------------------------------------------

    def _next_attempt(self, events: Sequence[BaseEvent]) -> int:
        previous = self._last_events
        retry = (
            self._last_failed
            and previous is not None
            and (
                previous is events
                or (
                    len(previous) == len(events)
                    and all(a is b for a, b in zip(previous, events, strict=True))
                )
            )
        )
        attempt = self._last_attempt + 1 if retry else 1
        if attempt == 1:
            self._invocation_id = new_id()
        self._last_events = events
        self._last_attempt = attempt
        return attempt

    def _record_llm_calls(self, outcome: _Outcome) -> None:
        """The rows of one ``on_llm_call``: one per HTTP attempt the OpenAI SDK made inside it
        (its own retries, and calls a RetryMiddleware inside ours repeated), else one."""
        config = outcome.context.dependencies.get(MODEL_CONFIG_KEY)
        if config is not self._config_read:  # read at the turn's start, most often
            remember_from_config(config)
            self._config_read = config
        response = outcome.response
        ag2_provider = _config_provider(config) or str(getattr(response, "provider", None) or "")
        model = str(getattr(response, "model", None) or "") or _config_text(config, "model")
        usage = response.usage if response is not None else None
        if usage:
            # Accounted for even if writing it fails below: its UsageEvent must not record it again
            # (on this stream, if watched, or in a parent's rollup of a sub-agent's calls).
            self._pending.append(usage)
            _recorded.add(usage)
        final_error = _error_text(outcome.exc) if outcome.exc is not None else ""
        sdk = outcome.watched[-1] if outcome.watched else None
        base_url = sdk.base_url if sdk is not None else _config_text(config, "base_url") or None
        provider = detect_provider(ag2_provider, base_url, model)
        rows: list[tuple[_SDKCall | None, _Attempt | None, str]] = []
        for index, call in enumerate(outcome.watched):
            last = index == len(outcome.watched) - 1
            call_error = _error_text(call.error) if call.error is not None else ""
            for _, attempt, error in _attempt_rows(call, final_error if last else call_error):
                rows.append((call, attempt, error))
        if not rows:
            rows.append((None, None, final_error))
        for index, (row_call, attempt, error) in enumerate(rows):
            self._record_row(outcome, provider, model, outcome.attempt + index, row_call, attempt, error)
        self._last_attempt = outcome.attempt + len(rows) - 1
        self._llm_calls += 1

    def _record_row(
        self,
        outcome: _Outcome,
        provider: str,
        model: str,
        number: int,
        call: _SDKCall | None,
        attempt: _Attempt | None,
        error: str,
    ) -> None:
        response = outcome.response if not error else None
        counts: pricing.NormalizedUsage | None = None
        if response is not None and call is not None:
            counts = _sdk_usage(provider, call.usage)
        elif response is not None and response.usage:
            counts = normalized_usage(
                _config_provider_of(outcome.context) or response.provider, response.usage
            )
        recorder = self._target("an LLM call")
        capture = recorder.settings.capture_bodies
        events = outcome.events
        recorder.record(
            _call_input(
                usage=counts,
                usage_reported=bool(error) or counts is not None,
                agent_name=self._agent_name,
                provider=provider,
                model=model or (call.model if call is not None else ""),
                error=error,
                started_at=attempt.started_at if attempt is not None else outcome.started_at,
                ended_at=(attempt.ended_at if attempt is not None else None) or utcnow(),
                invocation_id=self._invocation_id,
                response_id=str(getattr(response, "response_id", None) or ""),
                attempt=number,
                # "messages" first: the recorder then screens message by message and skips the
                # conversation's earlier messages, screened clean on an earlier call
                # (redaction.screened_request), instead of the whole history on every call.
                request=(
                    {"messages": [_event_body(e) for e in events if is_conversational(e)], "model": model}
                    if capture
                    else None
                ),
                response=_response_body(response) if capture and response is not None else None,
            )
        )

    # -- tools and human input -------------------------------------------------------------------

    def _record_tool_call(
        self,
        event: ToolCallEvent,
        result: ToolResultType | None,
        exc: BaseException | None,
        started_at: datetime,
        started: float,
    ) -> None:
        duration_ms = (time.perf_counter() - started) * 1000.0
        _record_tool(
            self._target("a tool call"), self._agent_name, event, result, exc, started_at, duration_ms
        )
        self._tool_calls += 1

    def _record_human_input(
        self,
        event: HumanInputRequest,
        reply: HumanMessage | None,
        exc: BaseException | None,
        started: float,
    ) -> None:
        recorder = self._session()
        if recorder is None:
            return
        data: dict[str, Any] | None = None
        if recorder.settings.capture_bodies:
            data = {"question": event.content, "reply": reply.content if reply is not None else None}
        recorder.record_agent_event(
            agent_name=self._agent_name,
            name="human_input",
            data=data,
            error=_error_text(exc) if exc is not None else "",
            duration_ms=(time.perf_counter() - started) * 1000.0,
        )


#: Finish reasons providers send (OpenAI, Anthropic, Gemini and ag2's own), kept as they are.
_FINISH_REASONS = frozenset(
    {
        "stop",
        "length",
        "tool_calls",
        "function_call",
        "content_filter",
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "STOP",
        "MAX_TOKENS",
        "SAFETY",
        "RECITATION",
        "OTHER",
    }
)


def _finish_reason(value: Any, recorder: BaseRecorder) -> str | None:
    """A reply's finish reason for the turn event: a known one as it is, any other text redacted
    and cut to 200 characters (a provider's own string is never trusted)."""
    if value is None or (isinstance(value, str) and value in _FINISH_REASONS):
        return value
    return redact_text(str(value), recorder.totals.redactions)[:200]


def _event_time(event: BaseEvent) -> datetime | None:
    created = getattr(event, "created_at", None)
    if isinstance(created, int | float):
        return datetime.fromtimestamp(created, UTC)
    return None


# When this module was the first to import its AG2 package, the attach it triggered waited for it.
if pending.take("ag2"):
    install()
