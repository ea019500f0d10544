"""Classic AG2 (the ``autogen`` package, 0.x): one routing ``BaseLogger`` for the whole process.

The only module that imports ``autogen``. AG2's runtime logger is a process global with no
per-thread or per-task scoping, so the app installs a single ``RoutingLogger`` with
``runtime_logging.start(logger=...)`` and routes each callback to its session: the
``current_session`` ContextVar where AG2 calls from the caller's context, else the agents,
wrappers and clients bound to a live session (AG2 calls ``log_chat_completion`` from an executor
thread in every async chat), else the unattributed journal. Every callback catches its own
errors: AG2 does not catch what its logger raises.

Known limits (README, "Classic AG2"): a request that times out is raised by AG2 without a logger
call, so only its retries within a later successful call are seen; retries inside the OpenAI SDK
are counted through an httpx request hook installed on each client AG2 reports.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from datetime import UTC, datetime
from typing import Any

from autogen import runtime_logging
from autogen.logger.base_logger import BaseLogger

from ag2_logging import pricing
from ag2_logging.capture.context import bindings, current_session, routed
from ag2_logging.capture.counters import stats
from ag2_logging.capture.recorder import BaseRecorder, SessionRecorder
from ag2_logging.capture.unattributed import get_unattributed_recorder, warn_unattributed
from ag2_logging.conf import conf
from ag2_logging.events import LLMCallInput

logger = logging.getLogger("ag2_logging.integrations.classic")

GENERATION = "classic"

# Per-thread timestamps of HTTP attempts, per raw SDK client: the SDK retries inside
# ``client.create`` on the same thread that then calls ``log_chat_completion``.
_attempts = threading.local()


def _agent_name(source: Any) -> str:
    if isinstance(source, str):
        return source
    return str(getattr(source, "name", "") or type(source).__name__)


def _parse_ts(value: str | None) -> datetime | None:
    """AG2's ``get_current_ts()`` text ("%Y-%m-%d %H:%M:%S.%f", UTC) as an aware datetime."""
    if not value:
        return None
    try:
        # fromisoformat reads AG2's format in C, ~6x faster than strptime (on every LLM call).
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f")
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _on_request(raw_client_id: int) -> Any:
    def hook(request: Any) -> None:
        store = getattr(_attempts, "by_client", None)
        if store is None:
            store = _attempts.by_client = {}
        times = store.setdefault(raw_client_id, [])
        times.append(time.time())
        if len(times) > 64:
            del times[:-64]

    return hook


def _take_attempts(raw_client_id: int | None, since: datetime | None) -> int:
    store = getattr(_attempts, "by_client", None)
    if not store or raw_client_id is None:
        return 0
    times = store.pop(raw_client_id, [])
    if since is None:
        return len(times)
    cutoff = since.timestamp() - 0.001
    return sum(1 for t in times if t >= cutoff)


def _usage(response: Any) -> tuple[int, int, int, int]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return 0, 0, 0, 0
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    cached = int(getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", 0) or 0)
    reasoning = int(getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", 0) or 0)
    return prompt, completion, cached, reasoning


def _response_body(response: Any) -> Any:
    """The parts of a ChatCompletion worth keeping: id, model, messages, finish reasons."""
    choices = getattr(response, "choices", None)
    if choices is None:
        return response
    out = []
    for choice in choices:
        message = getattr(choice, "message", None)
        tool_calls = getattr(message, "tool_calls", None) or []
        out.append(
            {
                "finish_reason": getattr(choice, "finish_reason", None),
                "message": {
                    "role": getattr(message, "role", None),
                    "content": getattr(message, "content", None),
                    "tool_calls": [
                        {
                            "id": getattr(call, "id", None),
                            "name": getattr(getattr(call, "function", None), "name", None),
                            "arguments": getattr(getattr(call, "function", None), "arguments", None),
                        }
                        for call in tool_calls
                    ],
                },
            }
        )
    return {"id": getattr(response, "id", None), "model": getattr(response, "model", None), "choices": out}


class _ClientInfo:
    __slots__ = ("provider", "raw_client_id", "wrapper_ref")

    def __init__(self, wrapper_ref: Any, provider: str, raw_client_id: int | None) -> None:
        self.wrapper_ref = wrapper_ref
        self.provider = provider
        self.raw_client_id = raw_client_id


class RoutingLogger(BaseLogger):
    """Routes AG2 classic's runtime-logging callbacks to the session they belong to."""

    def __init__(self) -> None:
        self.process_session_id = str(uuid.uuid4())
        self._wrappers: dict[int, Any] = {}  # id -> weakref to OpenAIWrapper
        self._clients: dict[tuple[int, int], _ClientInfo] = {}
        self._hooked: set[int] = set()

    # -- lifecycle (AG2's interface) -------------------------------------------------------------

    def start(self) -> str:
        return self.process_session_id

    def stop(self) -> None:
        return None

    def get_connection(self) -> None:
        return None

    # -- routing ---------------------------------------------------------------------------------

    def _bind_agent(self, agent: Any, recorder: SessionRecorder) -> None:
        wrapper = getattr(agent, "client", None)
        if bindings.lookup(agent) is recorder and (wrapper is None or bindings.lookup(wrapper) is recorder):
            return  # bound on an earlier call of this session (the hot path: two dict look-ups)
        bindings.bind(agent, recorder)
        if wrapper is not None:
            bindings.bind(wrapper, recorder)
            for model_client in getattr(wrapper, "_clients", ()) or ():
                bindings.bind(model_client, recorder)

    def _route(self, source: Any, *keys: int) -> SessionRecorder | None:
        recorder = current_session.get()
        if recorder is not None:
            if source is not None and not isinstance(source, str):
                self._bind_agent(source, recorder)
            return recorder
        if source is not None and not isinstance(source, str):
            found = bindings.lookup(source)
            if found is not None:
                return found
        for key in keys:
            found = bindings.lookup(key=key)
            if found is not None:
                return found
        return None

    def _client_info(
        self, source: Any, client_id: int, wrapper_id: int, request: dict[str, Any]
    ) -> _ClientInfo:
        key = (wrapper_id, client_id)
        info = self._clients.get(key)
        if info is not None and info.wrapper_ref() is not None:
            return info
        wrapper = getattr(source, "client", None)
        if wrapper is None or id(wrapper) != wrapper_id:
            ref = self._wrappers.get(wrapper_id)
            wrapper = ref() if ref is not None else None
        api_type = base_url = None
        raw_id = None
        if wrapper is not None:
            for index, model_client in enumerate(getattr(wrapper, "_clients", ()) or ()):
                if id(model_client) == client_id:
                    config_list = getattr(wrapper, "_config_list", None) or []
                    if index < len(config_list):
                        api_type = config_list[index].get("api_type")
                    raw = getattr(model_client, "_oai_client", None) or getattr(model_client, "client", None)
                    if raw is not None:
                        raw_id = id(raw)
                        base_url = str(getattr(raw, "base_url", "") or "") or None
                    break
        provider = pricing.detect_provider(
            api_type=api_type,
            base_url=base_url,
            model=str(request.get("model") or ""),
            base_url_map=conf.resolved.provider_base_urls,
        )
        info = _ClientInfo(weakref.ref(wrapper) if wrapper is not None else (lambda: None), provider, raw_id)
        if wrapper is not None:
            self._clients[key] = info
        return info

    # -- AG2 callbacks ---------------------------------------------------------------------------

    def log_chat_completion(
        self,
        invocation_id: uuid.UUID,
        client_id: int,
        wrapper_id: int,
        source: Any,
        request: dict[str, Any],
        response: Any,
        is_cached: int,
        cost: float,
        start_time: str,
    ) -> None:
        try:
            if not conf.resolved.enabled:
                return  # switched off after install (tests, override_settings)
            ended_at = datetime.now(UTC)
            recorder: BaseRecorder | None = self._route(source, wrapper_id, client_id)
            if recorder is None:
                warn_unattributed("an LLM call")
                recorder = get_unattributed_recorder()
            request = request if isinstance(request, dict) else {"request": request}
            info = self._client_info(source, client_id, wrapper_id, request)
            started_at = _parse_ts(start_time)
            attempts = _take_attempts(info.raw_client_id, started_at)
            error = response if isinstance(response, str) else ""
            prompt, completion, cached, reasoning = _usage(response) if not error else (0, 0, 0, 0)
            model = str(getattr(response, "model", None) or request.get("model") or "")
            # What the recorder logs here (an unknown model, say) carries the session's context
            # even on an AG2 executor thread, where the ContextVar is not set.
            routed.recorder = recorder if isinstance(recorder, SessionRecorder) else None
            recorder.record(
                LLMCallInput(
                    agent_name=_agent_name(source),
                    provider=info.provider,
                    model=model,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cached_tokens=cached,
                    reasoning_tokens=reasoning,
                    ag2_cost=cost,
                    is_cached=bool(is_cached),
                    error=error,
                    started_at=started_at,
                    ended_at=ended_at,
                    invocation_id=str(invocation_id),
                    response_id=str(getattr(response, "id", "") or ""),
                    retries=max(0, attempts - 1),
                    request=request,
                    response=_response_body(response) if not error else None,
                    generation=GENERATION,
                )
            )
        except Exception:
            stats.incr("hook_failures")
            logger.exception("ag2_logging failed to record an LLM call")
        finally:
            routed.recorder = None

    def log_new_agent(self, agent: Any, init_args: dict[str, Any]) -> None:
        try:
            if not conf.resolved.enabled:
                return  # switched off after install (tests, override_settings)
            recorder = current_session.get()
            if recorder is None:
                return
            if recorder.announced(agent):
                return  # AG2 reports an agent once per __init__ in its class chain
            self._bind_agent(agent, recorder)
            recorder.record_agent_event(
                agent_name=_agent_name(agent),
                name="new_agent",
                data={"class": type(agent).__qualname__, "init_args": init_args},
            )
        except Exception:
            stats.incr("hook_failures")
            logger.exception("ag2_logging failed to record a new agent")

    def log_event(self, source: Any, name: str, **kwargs: Any) -> None:
        try:
            if not conf.resolved.enabled:
                return  # switched off after install (tests, override_settings)
            recorder = self._route(source)
            if recorder is None:
                return
            recorder.record_agent_event(agent_name=_agent_name(source), name=name, data=kwargs or None)
        except Exception:
            stats.incr("hook_failures")
            logger.exception("ag2_logging failed to record an agent event")

    def log_new_wrapper(self, wrapper: Any, init_args: dict[str, Any]) -> None:
        try:
            if not conf.resolved.enabled:
                return  # switched off after install (tests, override_settings)
            try:
                self._wrappers[id(wrapper)] = weakref.ref(wrapper, self._forget_wrapper(id(wrapper)))
            except TypeError:
                pass
            recorder = current_session.get()
            if recorder is None:
                return
            bindings.bind(wrapper, recorder)
            recorder.record_agent_event(
                agent_name="", name="new_wrapper", data={"wrapper_id": id(wrapper), "init_args": init_args}
            )
        except Exception:
            stats.incr("hook_failures")
            logger.exception("ag2_logging failed to record a new wrapper")

    def _forget_wrapper(self, key: int) -> Any:
        def forget(_ref: Any) -> None:
            self._wrappers.pop(key, None)
            for client_key in [k for k in self._clients if k[0] == key]:
                self._clients.pop(client_key, None)

        return forget

    def log_new_client(self, client: Any, wrapper: Any, init_args: dict[str, Any]) -> None:
        try:
            if not conf.resolved.enabled:
                return  # switched off after install (tests, override_settings)
            self._hook_retries(client)
            recorder = current_session.get()
            if recorder is None:
                return
            bindings.bind(wrapper, recorder)
            recorder.record_agent_event(
                agent_name="",
                name="new_client",
                data={
                    "class": type(client).__qualname__,
                    "wrapper_id": id(wrapper),
                    "base_url": str(getattr(client, "base_url", "") or init_args.get("base_url") or ""),
                },
            )
        except Exception:
            stats.incr("hook_failures")
            logger.exception("ag2_logging failed to record a new client")

    def _hook_retries(self, client: Any) -> None:
        http = getattr(client, "_client", None)
        hooks = getattr(http, "event_hooks", None)
        if http is None or not isinstance(hooks, dict) or id(client) in self._hooked:
            return
        hooks = {name: list(fns) for name, fns in hooks.items()}
        hooks.setdefault("request", []).append(_on_request(id(client)))
        http.event_hooks = hooks
        self._hooked.add(id(client))
        try:
            weakref.finalize(client, self._hooked.discard, id(client))
        except TypeError:
            pass

    def log_function_use(self, source: Any, function: Any, args: dict[str, Any], returns: Any) -> None:
        try:
            if not conf.resolved.enabled:
                return  # switched off after install (tests, override_settings)
            recorder: BaseRecorder | None = self._route(source)
            if recorder is None:
                warn_unattributed("a tool call")
                recorder = get_unattributed_recorder()
            recorder.record_tool_call(
                agent_name=_agent_name(source),
                name=str(getattr(function, "__name__", None) or repr(function)),
                arguments=args,
                result=returns,
            )
        except Exception:
            stats.incr("hook_failures")
            logger.exception("ag2_logging failed to record a tool call")


_logger: RoutingLogger | None = None
_install_lock = threading.Lock()


def is_installed() -> bool:
    return _logger is not None and runtime_logging.autogen_logger is _logger and runtime_logging.is_logging


def install() -> RoutingLogger:
    """Install the routing logger as AG2's runtime logger (once per process; idempotent)."""
    global _logger
    with _install_lock:
        if _logger is not None and is_installed():
            return _logger
        current = runtime_logging.autogen_logger
        if runtime_logging.is_logging and current is not None and current is not _logger:
            logger.warning(
                "ag2_logging replaces the AG2 runtime logger %s that was already running: AG2 supports one "
                "runtime logger per process.",
                type(current).__qualname__,
            )
        if _logger is None:
            _logger = RoutingLogger()
        runtime_logging.start(logger=_logger)
        return _logger


def uninstall() -> None:
    """Stop AG2 runtime logging if ours is the installed logger (tests, shutdown)."""
    with _install_lock:
        if _logger is not None and runtime_logging.autogen_logger is _logger:
            runtime_logging.stop()
