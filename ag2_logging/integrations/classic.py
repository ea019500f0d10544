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
from ag2_logging.budgets import enforce as budgets
from ag2_logging.budgets import hooks as budget_hooks
from ag2_logging.capture.context import bindings, current_session, routed
from ag2_logging.capture.counters import stats
from ag2_logging.capture.recorder import BaseRecorder, SessionRecorder
from ag2_logging.capture.unattributed import get_unattributed_recorder, warn_unattributed
from ag2_logging.conf import conf
from ag2_logging.events import LLMCallInput
from ag2_logging.integrations import pending
from ag2_logging.pricing.usage import NormalizedUsage, usage_from_report
from ag2_logging.redaction.credentials import remember_from_client, remember_from_config
from ag2_logging.serialize import as_received

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


def _usage_fields(provider: str, response: Any, error: str, sent: _Sent | None = None) -> dict[str, Any]:
    """``LLMCallInput``'s token fields for a reply: its ``usage`` read through the provider's row
    of ``pricing.usage.USAGE_REPORTS`` (already in the app's convention), or ``usage_missing``
    when a successful reply carried none (a failed call has no usage to miss). For a stream
    (``sent``), the usage chunk the SDK received, not the usage AG2 rebuilt from it (prompt and
    completion only, zeros when the stream carried none)."""
    reported = sent.usage if sent is not None and sent.stream else getattr(response, "usage", None)
    usage = None if error else usage_from_report(provider, reported)
    tokens = usage or NormalizedUsage(0, 0)
    return {
        "prompt_tokens": tokens.prompt_tokens,
        "completion_tokens": tokens.completion_tokens,
        "cached_tokens": tokens.cached_tokens,
        "reasoning_tokens": tokens.reasoning_tokens,
        "cache_write_tokens": tokens.cache_write_tokens,
        "usage_normalized": True,
        "usage_missing": usage is None and not error,
    }


#: Top-level fields of a chat completion kept beside its choices (AG2's own attributes, such as
#: ``cost`` and ``message_retrieval_function``, are left out: ``ag2_cost`` has the first).
_RESPONSE_FIELDS = ("id", "object", "created", "model", "system_fingerprint", "service_tier", "usage")


def _response_body(response: Any) -> Any:
    """The reply as AG2 received it: each choice whole (its message with content, tool calls,
    ``function_call``, refusal, audio, annotations... as the provider sent them, in the OpenAI
    shape), the id, model and the provider's own usage object. Redacted by the recorder."""
    choices = getattr(response, "choices", None)
    if choices is None:
        return as_received(response)
    body: dict[str, Any] = {}
    for name in _RESPONSE_FIELDS:
        value = getattr(response, name, None)
        if value is not None:
            # id, object, created, model...: already plain (as_received would walk them again).
            body[name] = value if type(value) in _PLAIN else as_received(value)
    body["choices"] = [as_received(choice) for choice in choices]
    return body


_PLAIN = frozenset({str, int, float, bool})


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
                raw = getattr(model_client, "_oai_client", None)
                if raw is not None:  # the budgets' SDK hook finds the session by it
                    bindings.bind(raw, recorder)

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
                        # A wrapper built before the logger was installed was never reported.
                        remember_from_config(config_list[index])
                    raw = getattr(model_client, "_oai_client", None) or getattr(model_client, "client", None)
                    if raw is not None:
                        raw_id = id(raw)
                        remember_from_client(raw)
                        # The URL the SDK really calls (OPENAI_BASE_URL, a client AG2 built),
                        # not only the config's base_url.
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
            sent = _take_sent(info.raw_client_id)
            error = response if isinstance(response, str) else ""
            model = str(getattr(response, "model", None) or request.get("model") or "")
            # What the recorder logs here (an unknown model, say) carries the session's context
            # even on an AG2 executor thread, where the ContextVar is not set.
            routed.recorder = recorder if isinstance(recorder, SessionRecorder) else None
            recorder.record(
                LLMCallInput(
                    agent_name=_agent_name(source),
                    provider=info.provider,
                    model=model,
                    **_usage_fields(info.provider, response, error, sent),
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

    def record_unlogged(
        self, wrapper: Any, agent: Any, calls: list[_Sent], exc: BaseException | None
    ) -> None:
        """Record the requests the OpenAI SDK sent inside one ``OpenAIWrapper.create`` that AG2
        never passed to ``log_chat_completion``: one error row each (a timeout, a stream cut off,
        a reply AG2 could not rebuild), with the SDK's own exception, else AG2's (``exc``)."""
        for sent in calls:
            try:
                self._record_unlogged(wrapper, agent, sent, exc)
            except Exception:
                stats.incr("hook_failures")
                logger.exception("ag2_logging failed to record a failed LLM request")
            finally:
                routed.recorder = None

    def _record_unlogged(self, wrapper: Any, agent: Any, sent: _Sent, exc: BaseException | None) -> None:
        client_id = next(
            (id(c) for c in getattr(wrapper, "_clients", ()) or () if _raw_id(c) == sent.raw_client_id), 0
        )
        recorder: BaseRecorder | None = self._route(agent, id(wrapper), client_id)
        if recorder is None:
            warn_unattributed("an LLM call")
            recorder = get_unattributed_recorder()
        request = dict(sent.request or {})
        info = self._client_info(agent, client_id, id(wrapper), request)
        failure = sent.error or exc
        error = f"{type(failure).__name__}: {failure}" if failure is not None else "no reply reached AG2"
        stats.incr("unlogged_llm_requests")
        routed.recorder = recorder if isinstance(recorder, SessionRecorder) else None
        recorder.record(
            LLMCallInput(
                agent_name=_agent_name(agent) if agent is not None else "",
                provider=info.provider,
                model=str(request.get("model") or ""),
                prompt_tokens=0,
                completion_tokens=0,
                usage_normalized=True,
                error=error,
                started_at=sent.started_at,
                ended_at=sent.ended_at or datetime.now(UTC),
                invocation_id=str(uuid.uuid4()),
                retries=max(0, _take_attempts(info.raw_client_id, sent.started_at) - 1),
                request=request,
                generation=GENERATION,
            )
        )

    def log_new_agent(self, agent: Any, init_args: dict[str, Any]) -> None:
        try:
            if not conf.resolved.enabled:
                return  # switched off after install (tests, override_settings)
            remember_from_config(init_args.get("llm_config"))  # so an echoed api key is scrubbed
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
            remember_from_config({k: v for k, v in init_args.items() if k != "self"})
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
            remember_from_client(client)  # api_key, default headers, base URL secrets
            remember_from_config(init_args)
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


# -- budgets: a hook before every request the OpenAI SDK sends ------------------------------------
#
# Classic AG2 calls the OpenAI SDK (openai<3) synchronously, and every request goes through
# ``SyncAPIClient.request``: the budgets' check runs there, before the request is sent, and the
# call's reservation is settled to its real cost (or released) when the SDK returns, a stream's
# when it ends (``budgets.hooks``).

_LLM_PATHS = ("/chat/completions", "/responses", "/completions")
_sdk_originals: dict[str, Any] = {}


def _budget_check(client: Any, options: Any) -> budgets.Reservation | None:
    url = str(getattr(options, "url", "") or "")
    session = current_session.get() or bindings.lookup(client)
    if not url.endswith(_LLM_PATHS) or not conf.resolved.enabled or budgets.idle(session):
        return None
    body = getattr(options, "json_data", None)
    model = str(body.get("model") or "") if isinstance(body, dict) else ""
    provider = pricing.detect_provider(
        base_url=str(getattr(client, "base_url", "") or ""),
        model=model,
        base_url_map=conf.resolved.provider_base_urls,
    )
    return budgets.run_off_loop(budgets.check, session, provider, model, body)


def _wrap_sdk_request(original: Any) -> Any:
    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        reservation = _budget_check(self, options)  # raises BudgetExceeded: the call is not sent
        if reservation is None:
            return original(self, cast_to, options, *args, **kwargs)
        return budget_hooks.sent(
            reservation,
            lambda: original(self, cast_to, options, *args, **kwargs),
            stream=bool(kwargs.get("stream")),
        )

    return request


def _install_budget_hook() -> None:
    """Wrap ``openai._base_client.SyncAPIClient.request`` (once; no-op without the SDK)."""
    if _sdk_originals:
        return
    try:
        import importlib

        base = importlib.import_module("openai._base_client").SyncAPIClient
        original = base.request
    except (ImportError, AttributeError):
        logger.warning("ag2_logging: the OpenAI SDK has no request boundary: budgets are not enforced")
        return
    _sdk_originals["request"] = original
    base.request = _wrap_sdk_request(original)
    budgets.install()


# -- what the OpenAI SDK really sent and received ---------------------------------------------------
#
# AG2 classic rebuilds a streamed reply's usage from its prompt and completion tokens only (zeros
# when the stream carried no usage chunk), and raises without a logger call when a request fails
# other than with an APIError (a timeout, a stream cut off, a reply it cannot rebuild). So each
# request the SDK sends inside ``OpenAIWrapper.create`` is noted on this thread (``_Sent``), with a
# stream's last usage chunk; ``log_chat_completion`` takes its own, and ``create`` records those
# left over as error rows.


class _Sent:
    """One LLM request the SDK sent inside ``OpenAIWrapper.create`` on this thread."""

    __slots__ = ("ended_at", "error", "raw_client_id", "request", "started_at", "stream", "usage")

    def __init__(self, raw_client_id: int, stream: bool, request: dict[str, Any] | None) -> None:
        self.raw_client_id = raw_client_id
        self.stream = stream
        self.request = request
        self.started_at = datetime.now(UTC)
        self.ended_at: datetime | None = None
        self.usage: Any = None  # a stream's usage chunk's, None if none came
        self.error: BaseException | None = None


# ``.calls``: the requests of the ``OpenAIWrapper.create`` running on this thread (None outside).
_sent = threading.local()
_watch_originals: dict[str, Any] = {}


def _raw_id(model_client: Any) -> int | None:
    raw = getattr(model_client, "_oai_client", None) or getattr(model_client, "client", None)
    return id(raw) if raw is not None else None


def _take_sent(raw_client_id: int | None) -> _Sent | None:
    """The latest request of this thread's ``create`` to the SDK client ``raw_client_id``."""
    calls: list[_Sent] | None = getattr(_sent, "calls", None)
    for index in range(len(calls or ()) - 1, -1, -1):
        if calls is not None and calls[index].raw_client_id == raw_client_id:
            return calls.pop(index)
    return None


def _note_sent(client: Any, options: Any, stream: bool) -> _Sent | None:
    calls: list[_Sent] | None = getattr(_sent, "calls", None)
    url = str(getattr(options, "url", "") or "")
    if calls is None or not url.endswith(_LLM_PATHS) or not conf.resolved.enabled:
        return None
    body = getattr(options, "json_data", None)
    sent = _Sent(id(client), stream, body if isinstance(body, dict) else None)
    calls.append(sent)
    return sent


def _watched_chunks(chunks: Any, sent: _Sent) -> Any:
    """A stream's chunks, unchanged; the last usage chunk and an error noted on ``sent``."""
    try:
        for chunk in chunks:
            if getattr(chunk, "usage", None) is not None:
                sent.usage = chunk.usage
            yield chunk
    except BaseException as exc:
        sent.error = exc
        raise
    finally:
        sent.ended_at = datetime.now(UTC)


def _watch_sdk_request(original: Any) -> Any:
    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            sent = _note_sent(self, options, bool(kwargs.get("stream")))
        except Exception:
            stats.incr("hook_failures")
            logger.exception("ag2_logging failed to watch an OpenAI SDK request")
            sent = None
        if sent is None:
            return original(self, cast_to, options, *args, **kwargs)
        try:
            result = original(self, cast_to, options, *args, **kwargs)
        except BaseException as exc:
            sent.error, sent.ended_at = exc, datetime.now(UTC)
            raise
        if sent.stream and hasattr(result, "_iterator"):
            result._iterator = _watched_chunks(result._iterator, sent)
        else:
            sent.ended_at = datetime.now(UTC)
        return result

    return request


def _watch_create(original: Any) -> Any:
    def create(self: Any, **config: Any) -> Any:
        outer = getattr(_sent, "calls", None)
        calls: list[_Sent] = []
        _sent.calls = calls
        failure: BaseException | None = None
        try:
            return original(self, **config)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            _sent.calls = outer
            if calls and _logger is not None:  # requests AG2 never logged
                _logger.record_unlogged(self, config.get("agent"), calls, failure)

    return create


def _install_sdk_watch() -> None:
    """Wrap ``SyncAPIClient.request`` and ``OpenAIWrapper.create`` (once; before the budgets'
    hook, so a request the budgets refuse is never sent, hence never noted)."""
    if _watch_originals:
        return
    try:
        import importlib

        base = importlib.import_module("openai._base_client").SyncAPIClient
        wrapper_cls = importlib.import_module("autogen.oai.client").OpenAIWrapper
        request, create = base.request, wrapper_cls.create
    except (ImportError, AttributeError):
        logger.warning("ag2_logging: the OpenAI SDK has no request boundary: streamed usage is AG2's")
        return
    _watch_originals.update(request=request, create=create)
    base.request = _watch_sdk_request(request)
    wrapper_cls.create = _watch_create(create)


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
        _install_sdk_watch()
        _install_budget_hook()
        return _logger


def uninstall() -> None:
    """Stop AG2 runtime logging if ours is the installed logger (tests, shutdown)."""
    with _install_lock:
        if _logger is not None and runtime_logging.autogen_logger is _logger:
            runtime_logging.stop()


# When this module was the first to import its AG2 package, the attach it triggered waited for it.
if pending.take("classic"):
    install()
