"""AG2 1.x (the ``ag2`` package): a middleware each ``ag2.Agent`` carries.

The only module that imports ``ag2``. AG2 1.x has no process-wide hook (no runtime logger, no
global middleware or plugin registry: checked in ag2 1.2.1), so recording is attached per agent,
or per call, with the factory this module exports::

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
  error; a tool that raised comes back from AG2 as a ``ToolErrorEvent``).
* ``on_turn``: one ``turn`` agent event, a ``new_agent`` event the first time a session sees an
  agent, and, while the turn runs, a subscription to the agent's stream for ``UsageEvent`` and
  the task lifecycle events (``task_started`` / ``task_completed`` / ``task_failed``).
* ``on_human_input``: a ``human_input`` agent event.

Usage AG2 reports that no ``on_llm_call`` of ours saw is recorded from its ``UsageEvent``: a
sub-task runs on a bare ``Agent`` without this middleware and reaches the parent's stream only as
one ``kind="subtask"`` rollup (its per-call events stay on the sub-task's private stream), so
each of the rollup's ``parts`` becomes one row for the sub-agent; compaction and aggregation calls
(``kind="compaction"`` / ``"aggregation"``) are recorded the same way. Every ``UsageEvent`` whose
tokens were recorded is remembered (by identity, weakly): a sub-agent that carries this
middleware itself has its calls recorded once, by its own middleware, and the rollup that later
reaches the parent skips them. The session's totals therefore equal what AG2's own
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

import logging
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from contextvars import ContextVar, Token
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
    HumanInputHook,
    LLMCall,
    Middleware,
    ToolExecution,
    ToolResultType,
)

from ag2_logging import pricing
from ag2_logging.capture.context import current_session
from ag2_logging.capture.counters import stats
from ag2_logging.capture.recorder import BaseRecorder, SessionRecorder, utcnow
from ag2_logging.capture.scope import live_session
from ag2_logging.capture.unattributed import get_unattributed_recorder, warn_unattributed
from ag2_logging.conf import conf
from ag2_logging.events import LLMCallInput
from ag2_logging.redaction import redact_text

__all__ = ["GENERATION", "RecordingMiddleware", "SessionArg", "logging_middleware"]

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
        if any(item is obj for item in active):
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


def detect_provider(ag2_provider: str | None, base_url: str | None, model: str | None) -> str:
    """Our provider id for a call AG2's ``ag2_provider`` client made to ``base_url``."""
    kind = (ag2_provider or "").lower()
    provider = pricing.detect_provider(
        api_type=_API_TYPES.get(kind),
        base_url=base_url,
        model=model,
        base_url_map=conf.resolved.provider_base_urls,
    )
    if provider == "unknown" and kind in _PRICES_PROVIDERS:
        return _PRICES_PROVIDERS[kind]
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
            try:
                response = await call_next(events, context)
            except Exception as exc:
                self._last_failed = True
                self._guard(
                    "record an LLM call",
                    self._record_llm_call,
                    context,
                    events,
                    attempt,
                    started_at,
                    None,
                    exc,
                )
                raise
            self._last_failed = False
            self._guard(
                "record an LLM call",
                self._record_llm_call,
                context,
                events,
                attempt,
                started_at,
                response,
                None,
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
        try:
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
        # Watch first: usage rolled up from sub-tasks is recorded even outside a session.
        watched = UsageEvent | TaskStarted | TaskCompleted | TaskFailed
        stack.enter_context(context.stream.where(watched).sub_scope(self._on_stream_event))
        recorder = self._session()
        agent = context.dependencies.get(AGENT_KEY)
        if recorder is not None and agent is not None and not recorder.announced(agent):
            config = context.dependencies.get(MODEL_CONFIG_KEY) or getattr(agent, "config", None)
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
            data["finish_reason"] = response.finish_reason
        recorder.record_agent_event(
            agent_name=self._agent_name,
            name="turn",
            data=data,
            error=_error_text(exc) if exc is not None else "",
            duration_ms=(time.perf_counter() - started) * 1000.0,
        )

    async def _on_stream_event(self, event: Any) -> None:
        # Called by the stream inline, inside the turn's task; never raises into the stream.
        self._guard("record a stream event", self._handle_stream_event, event)

    def _handle_stream_event(self, event: Any) -> None:
        if isinstance(event, UsageEvent):
            self._on_usage_event(event)
            return
        name = _TASK_EVENTS.get(type(event))
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
                if part in _recorded:
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
        self._target("an LLM call").record(
            LLMCallInput(
                agent_name=agent_name,
                provider=detect_provider(event.provider, base_url, event.model),
                model=str(event.model or ""),
                prompt_tokens=counts.prompt_tokens,
                completion_tokens=counts.completion_tokens,
                cached_tokens=counts.cached_tokens,
                reasoning_tokens=counts.reasoning_tokens,
                cache_write_tokens=counts.cache_write_tokens,
                usage_normalized=True,
                ended_at=_event_time(event),
                response={"source": "usage_event", "kind": event.kind, "finish_reason": event.finish_reason},
                generation=GENERATION,
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
            self._invocation_id = str(uuid.uuid4())
        self._last_events = events
        self._last_attempt = attempt
        return attempt

    def _record_llm_call(
        self,
        context: Context,
        events: Sequence[BaseEvent],
        attempt: int,
        started_at: datetime,
        response: ModelResponse | None,
        exc: BaseException | None,
    ) -> None:
        ended_at = utcnow()
        recorder = self._target("an LLM call")
        config = context.dependencies.get(MODEL_CONFIG_KEY)
        ag2_provider = _config_provider(config) or str(getattr(response, "provider", None) or "")
        model = str(getattr(response, "model", None) or "") or _config_text(config, "model")
        usage = response.usage if response is not None else None
        if usage:
            # Accounted for even if writing it fails below: its UsageEvent must not record it again.
            self._pending.append(usage)
        counts = normalized_usage(ag2_provider, usage)
        capture = recorder.settings.capture_bodies
        recorder.record(
            LLMCallInput(
                agent_name=self._agent_name,
                provider=detect_provider(ag2_provider, _config_text(config, "base_url") or None, model),
                model=model,
                prompt_tokens=counts.prompt_tokens,
                completion_tokens=counts.completion_tokens,
                cached_tokens=counts.cached_tokens,
                reasoning_tokens=counts.reasoning_tokens,
                cache_write_tokens=counts.cache_write_tokens,
                usage_normalized=True,
                error=_error_text(exc) if exc is not None else "",
                started_at=started_at,
                ended_at=ended_at,
                invocation_id=self._invocation_id,
                response_id=str(getattr(response, "response_id", None) or ""),
                attempt=attempt,
                retries=1 if attempt > 1 else 0,
                request=(
                    {"model": model, "messages": [_event_body(e) for e in events if is_conversational(e)]}
                    if capture
                    else None
                ),
                response=_response_body(response) if capture and response is not None else None,
                generation=GENERATION,
            )
        )
        self._llm_calls += 1

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
        self._target("a tool call").record_tool_call(
            agent_name=self._agent_name,
            name=str(event.name),
            arguments=_tool_arguments(event),
            result=value,
            error=error,
            duration_ms=duration_ms,
            started_at=started_at,
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


def _event_time(event: BaseEvent) -> datetime | None:
    created = getattr(event, "created_at", None)
    if isinstance(created, int | float):
        return datetime.fromtimestamp(created, UTC)
    return None
