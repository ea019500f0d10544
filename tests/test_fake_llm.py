"""The fake OpenAI-compatible server, exercised over real HTTP with the openai SDK and real AG2 agents."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from ag2_logging.testing import FakeLLMServer, ServedRequest, Usage
from ag2_logging.testing.fake_llm import main

REPO_ROOT = Path(__file__).resolve().parent.parent
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(error_sleep_seconds=0.2) as srv:
        yield srv


def make_client(srv: FakeLLMServer, **kwargs) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 5.0)
    return openai.OpenAI(base_url=srv.base_url, api_key="sk-whatever", **kwargs)


def ask(client: openai.OpenAI, text: str, model: str = "gpt-4o-mini", **kwargs):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kwargs)


def test_default_reply_parses_with_the_openai_sdk(server):
    resp = ask(make_client(server), "hello")

    assert resp.id == "chatcmpl-fake-1"
    assert resp.object == "chat.completion"
    assert resp.model == "gpt-4o-mini"
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "fake reply 1"
    assert choice.message.tool_calls is None
    usage = resp.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (120, 30, 150)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 40
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 10

    (served,) = server.served
    assert isinstance(served, ServedRequest)
    assert served.index == 1
    assert served.model == "gpt-4o-mini"
    assert served.messages == [{"role": "user", "content": "hello"}]
    assert served.status == 200
    assert served.usage == Usage()
    assert served.tool_call is None
    assert served.marker is None
    assert served.response_id == "chatcmpl-fake-1"
    assert not hasattr(served, "headers")
    assert "sk-whatever" not in repr(server.served)


def test_model_is_echoed_and_counter_increments(server):
    client = make_client(server)
    first = ask(client, "a", model="some-local-model")
    second = ask(client, "b", model="gpt-4o")
    assert (first.model, second.model) == ("some-local-model", "gpt-4o")
    assert second.choices[0].message.content == "fake reply 2"
    assert second.id == "chatcmpl-fake-2"


def test_usage_does_not_depend_on_message_length(server):
    client = make_client(server)
    short = ask(client, "x").usage
    long = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are a helpful agent. " * 500},
            {"role": "user", "content": "y" * 10_000},
        ],
    ).usage
    assert short == long
    assert server.total_usage() == Usage(240, 60, 80, 20)
    assert server.total_usage().total_tokens == 300


def test_usage_directive_overrides_default(server):
    client = make_client(server)
    full = ask(client, "go [[usage:prompt=200,completion=50,cached=0,reasoning=0]]").usage
    assert full is not None
    assert (full.prompt_tokens, full.completion_tokens, full.total_tokens) == (200, 50, 250)
    assert full.prompt_tokens_details is not None
    assert full.prompt_tokens_details.cached_tokens == 0
    assert full.completion_tokens_details is not None
    assert full.completion_tokens_details.reasoning_tokens == 0

    subset = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "[[usage:prompt=1000]]"},
            {"role": "user", "content": [{"type": "text", "text": "[[usage:completion=80]] hi"}]},
        ],
    )
    # The most recent directive wins (list contents count too); unspecified keys keep the default.
    assert server.served[-1].usage == Usage(prompt_tokens=120, completion_tokens=80, cached_tokens=40)
    assert subset.usage is not None
    assert (subset.usage.prompt_tokens, subset.usage.completion_tokens) == (120, 80)

    ask(client, "[[usage:prompt=1000,cached=500]]")
    assert server.served[-1].usage == Usage(1000, 30, 500, 10)
    assert server.total_usage() == Usage(200, 50, 0, 0) + Usage(120, 80, 40, 10) + Usage(1000, 30, 500, 10)


def test_default_usage_and_bad_directives(server):
    with FakeLLMServer(default_usage=Usage(10, 5, 0, 0)) as custom:
        resp = ask(make_client(custom), "hi")
        assert resp.usage is not None
        assert resp.usage.total_tokens == 15

    client = make_client(server)
    with pytest.raises(openai.BadRequestError, match="cached_tokens"):
        ask(client, "[[usage:prompt=10]]")  # default cached=40 would exceed prompt
    with pytest.raises(openai.BadRequestError, match="bad usage directive"):
        ask(client, "[[usage:input=10]]")
    assert [r.status for r in server.served] == [400, 400]
    assert server.successful() == []
    assert server.total_usage() == Usage.zero()
    with pytest.raises(ValueError, match="reasoning_tokens"):
        Usage(completion_tokens=5, reasoning_tokens=6)


def test_marker_is_echoed_from_the_most_recent_message(server):
    client = make_client(server)
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "[[marker:old]]"},
            {"role": "user", "content": "one [[marker:new-1]] two"},
            {"role": "assistant", "content": "no marker here"},
        ],
    )
    assert resp.choices[0].message.content == "fake reply 1 [[marker:new-1]]"
    assert server.served[0].marker == "new-1"


def test_terminate_directive(server):
    client = make_client(server)
    resp = ask(client, "[[marker:m_2]] stop now [[terminate]]")
    content = resp.choices[0].message.content
    assert content == "fake reply 1 [[marker:m_2]] TERMINATE"
    assert content.endswith(" TERMINATE")
    assert ask(client, "go on").choices[0].message.content == "fake reply 2"


def test_tool_call_round_trip(server):
    client = make_client(server)
    messages: list[dict] = [{"role": "user", "content": 'please [[tool:add {"a": 2, "b": 3}]] [[marker:t]]'}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[ADD_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id == "call_fake_1"
    assert call.type == "function"
    assert call.function.name == "add"
    assert json.loads(call.function.arguments) == {"a": 2, "b": 3}
    assert server.served[0].tool_call == "add"

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "5"})
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[ADD_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "tool result: 5 [[marker:t]]"
    assert server.served[1].tool_call is None

    # Long tool output is truncated to 200 characters.
    messages[-1] = {"role": "tool", "tool_call_id": call.id, "content": "9" * 500}
    third = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[ADD_TOOL])
    assert third.choices[0].message.content == f"tool result: {'9' * 200} [[marker:t]]"


def test_tool_directive_needs_an_offered_tool_in_the_last_message(server):
    client = make_client(server)
    # No tools offered: a plain reply.
    assert ask(client, "[[tool:add {}]]").choices[0].finish_reason == "stop"
    # A tool that is not offered: a plain reply.
    resp = ask(client, "[[tool:mul {}]]", tools=[ADD_TOOL])
    assert resp.choices[0].message.content == "fake reply 2"
    # Arguments may be omitted.
    resp = ask(client, "[[tool:add]]", tools=[ADD_TOOL])
    assert resp.choices[0].message.tool_calls[0].function.arguments == "{}"
    # Only the last message counts.
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "content": "[[tool:add {}]]"},
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": "thanks"},
        ],
        tools=[ADD_TOOL],
    )
    assert resp.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError, match="invalid JSON"):
        ask(client, "[[tool:add {a: 1}]]", tools=[ADD_TOOL])


def read_stream(server: FakeLLMServer, text: str, include_usage: bool | None, **kwargs) -> list:
    options = {} if include_usage is None else {"stream_options": {"include_usage": include_usage}}
    return list(ask(make_client(server), text, stream=True, **options, **kwargs))


# (directives, include_usage, expected usage report): the usage chunk comes only when asked.
STREAM_USAGE_CASES = [
    ("", True, Usage()),
    ("", False, None),
    ("", None, None),
    ("[[usage:prompt=500,completion=50,cached=0,reasoning=0]]", True, Usage(500, 50, 0, 0)),
    ("[[usage_raw:null]]", True, None),  # a server that ignores include_usage
    (
        '[[usage_raw:{"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}]]',
        True,
        Usage(9, 3, 0, 0),
    ),
]


@pytest.mark.parametrize(("directives", "include_usage", "expected"), STREAM_USAGE_CASES)
def test_stream_sends_usage_in_a_final_chunk_only_when_asked(server, directives, include_usage, expected):
    chunks = read_stream(server, f"hi [[marker:s1]] {directives}", include_usage)

    assert all(c.object == "chat.completion.chunk" and c.id == "chatcmpl-fake-1" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "fake reply 1 [[marker:s1]]"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    with_usage = [c for c in chunks if c.usage is not None]
    served = server.served[0]
    assert (served.status, served.streamed, served.dropped_after) == (200, True, None)
    assert served.usage == expected
    if expected is None:
        assert with_usage == []
    else:
        assert len(with_usage) == 1 and with_usage[0] is chunks[-1] and chunks[-1].choices == []
        usage = chunks[-1].usage
        assert (usage.prompt_tokens, usage.completion_tokens) == (
            expected.prompt_tokens,
            expected.completion_tokens,
        )
    assert server.total_usage() == (expected or Usage.zero())


def test_stream_carries_a_tool_call(server):
    chunks = read_stream(server, '[[tool:add {"a": 2, "b": 3}]]', True, tools=[ADD_TOOL])

    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].id == "call_fake_1" and calls[0].function.name == "add"
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"a": 2, "b": 3}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]
    assert server.served[0].tool_call == "add" and server.served[0].usage == Usage()


@pytest.mark.parametrize("after", [1, 2, 3])
def test_stream_drop_ends_the_stream_after_n_chunks_without_usage(server, after):
    chunks = read_stream(server, f"hi [[stream_drop:{after}]]", True)

    assert len(chunks) == after
    assert all(c.usage is None for c in chunks)
    served = server.served[0]
    assert (served.status, served.usage, served.dropped_after) == (200, None, after)
    assert server.total_usage() == Usage.zero()
    # The server keeps serving after a drop.
    assert ask(make_client(server), "again").usage.prompt_tokens == Usage().prompt_tokens


def test_stream_drop_reset_breaks_the_connection_mid_body(server):
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        read_stream(server, "hi [[stream_drop:2:reset]]", True)
    assert server.served[0].dropped_after == 2
    assert ask(make_client(server), "again").id == "chatcmpl-fake-2"


def test_models_health_and_unknown_paths(server):
    root = server.base_url.removesuffix("/v1")
    with httpx.Client() as http:
        assert http.get(f"{root}/health").json() == {"status": "ok"}
        models = http.get(f"{server.base_url}/models", headers={"Authorization": "Bearer x"}).json()
        assert models["object"] == "list"
        assert "gpt-4o-mini" in {m["id"] for m in models["data"]}
        missing = http.get(f"{root}/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found_error"
    assert [m.id for m in make_client(server).models.list()] == [m["id"] for m in models["data"]]
    assert server.served == []


def test_fail_directive_429_twice_then_success(server):
    client = make_client(server, max_retries=3)
    resp = ask(client, "[[fail:429x2]] [[marker:r]]")
    assert resp.choices[0].message.content == "fake reply 3 [[marker:r]]"
    assert [r.status for r in server.served] == [429, 429, 200]
    assert [r.usage for r in server.served] == [None, None, Usage()]
    assert [r.marker for r in server.served] == ["r", "r", "r"]
    assert server.total_usage() == Usage()
    # The same request again has used up its failures; a different one fails on its own.
    ask(client, "[[fail:429x2]] [[marker:r]]")
    assert [r.status for r in server.served][-1] == 200


def test_scripted_error_body_is_openai_style(server):
    with httpx.Client() as http:
        resp = http.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "[[fail:429]]"}]},
        )
    assert resp.status_code == 429
    assert resp.headers["retry-after-ms"] == "20"
    error = resp.json()["error"]
    assert error["type"] == "rate_limit_exceeded"
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"]


def test_fail_directive_500_without_retries(server):
    with pytest.raises(openai.InternalServerError) as excinfo:
        ask(make_client(server, max_retries=0), "[[fail:500]]")
    assert excinfo.value.status_code == 500
    assert excinfo.value.body["type"] == "server_error"
    assert [r.status for r in server.served] == [500]


def test_fail_timeout_raises_client_timeout():
    with FakeLLMServer(error_sleep_seconds=1.5) as srv:
        client = make_client(srv, max_retries=0, timeout=0.5)
        with pytest.raises(openai.APITimeoutError):
            ask(client, "[[fail:timeoutx1]]")
        assert srv.wait_idle(timeout=5)
        # The delayed reply found the client gone.
        assert [r.status for r in srv.served] == [499]
        assert srv.total_usage() == Usage.zero()
        # The retry of the same request is answered at once.
        assert ask(client, "[[fail:timeoutx1]]").choices[0].message.content == "fake reply 2"


def test_script_errors_are_consumed_in_order(server):
    client = make_client(server, max_retries=0)
    server.script_errors([429, 500, "timeout"])
    with pytest.raises(openai.RateLimitError):
        ask(client, "a")
    with pytest.raises(openai.InternalServerError):
        ask(client, "b")
    # A timeout that the client outlasts (0.2 s sleep) is answered normally.
    assert ask(client, "c").choices[0].message.content == "fake reply 3"
    assert ask(client, "d").choices[0].message.content == "fake reply 4"
    assert [r.status for r in server.served] == [429, 500, 200, 200]
    assert len(server.successful()) == 2
    with pytest.raises(ValueError, match="timeout"):
        server.script_errors([200])


def test_reset_clears_everything(server):
    client = make_client(server)
    ask(client, "a")
    server.script_errors([500])
    server.reset()
    assert server.served == []
    resp = ask(client, "b")
    assert resp.id == "chatcmpl-fake-1"
    assert [r.status for r in server.served] == [200]


def test_64_concurrent_clients_get_their_own_marker(server):
    n_clients = 64
    barrier = threading.Barrier(n_clients)

    def one(i: int) -> str | None:
        client = make_client(server, timeout=10.0)
        barrier.wait(timeout=10)
        resp = ask(client, f"client {i} [[marker:c{i}]]")
        client.close()
        return resp.choices[0].message.content

    with ThreadPoolExecutor(max_workers=n_clients) as pool:
        contents = list(pool.map(one, range(n_clients)))

    for i, content in enumerate(contents):
        assert content is not None
        assert content.endswith(f"[[marker:c{i}]]")
    served = server.served
    assert len(served) == n_clients
    assert sorted(r.index for r in served) == list(range(1, n_clients + 1))
    assert {r.marker for r in served} == {f"c{i}" for i in range(n_clients)}
    assert len({r.response_id for r in served}) == n_clients
    assert server.total_usage() == Usage(120 * 64, 30 * 64, 40 * 64, 10 * 64)


def test_non_loopback_hosts_are_refused(capsys):
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(SystemExit) as excinfo:
            main(["--host", host, "--port", "0"])
        assert excinfo.value.code == 2
        assert "loopback" in capsys.readouterr().err
    with pytest.raises(ValueError, match="loopback"):
        FakeLLMServer("0.0.0.0")


def test_ipv6_loopback_and_localhost():
    with FakeLLMServer("localhost") as srv:
        assert srv.base_url == f"http://localhost:{srv.port}/v1"
        assert ask(make_client(srv), "hi").choices[0].message.content == "fake reply 1"
    try:
        srv6 = FakeLLMServer("::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert srv6.base_url.startswith("http://[::1]:")
        assert ask(make_client(srv6), "hi").choices[0].message.content == "fake reply 1"
    finally:
        srv6.stop()


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_cli_serves_until_interrupted():
    proc = subprocess.Popen(
        [sys.executable, "-m", "ag2_logging.testing.fake_llm", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base_url = line.split("base_url=", 1)[1].split()[0]
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        resp = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert resp.choices[0].message.content == "fake reply 1"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # a hang guard, generous for a loaded machine
        assert proc.returncode == 0
        assert "Traceback" not in err
        assert "RuntimeWarning" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# -- real classic AG2 agents ----------------------------------------------------------------


def _ag2_agents(srv: FakeLLMServer):
    autogen = pytest.importorskip("autogen")
    llm_config = {
        "config_list": [{"model": "gpt-4o-mini", "api_key": "sk-test", "base_url": srv.base_url}],
        "cache_seed": None,
    }
    assistant = autogen.AssistantAgent("assistant", llm_config=llm_config)
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=1
    )
    return autogen, assistant, user


@pytest.mark.classic
def test_real_ag2_two_agent_chat(server):
    _, assistant, user = _ag2_agents(server)
    result = user.initiate_chat(assistant, message="hi [[marker:m1]] [[terminate]]", max_turns=1)

    (served,) = server.successful()
    assert served.marker == "m1"
    assert served.model == "gpt-4o-mini"
    assert served.messages[0]["role"] == "system"
    assert served.messages[-1]["content"] == "hi [[marker:m1]] [[terminate]]"
    assert result.chat_history[-1]["content"] == "fake reply 1 [[marker:m1]] TERMINATE"
    assert server.served == server.successful()


@pytest.mark.classic
def test_real_ag2_tool_call(server):
    autogen, assistant, user = _ag2_agents(server)
    calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    autogen.register_function(add, caller=assistant, executor=user, description="Add two integers.")
    user.initiate_chat(assistant, message='[[tool:add {"a": 2, "b": 3}]]', max_turns=2)

    assert calls == [(2, 3)]
    first, second = server.successful()
    assert first.tool_call == "add"
    tool_messages = [m for m in second.messages if m.get("role") == "tool"]
    assert len(tool_messages) == 1
    assert "5" in tool_messages[0]["content"]
    assert second.tool_call is None
    assert server.total_usage() == Usage() + Usage()


LOOKUP_FUNCTION = {
    "name": "lookup_order",
    "description": "Find an order.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
}


@pytest.mark.parametrize(
    ("raw", "expected_total"),
    [
        # DeepSeek's own fields beside OpenAI's prompt/completion counts.
        (
            {
                "prompt_tokens": 16000,
                "prompt_cache_hit_tokens": 12000,
                "prompt_cache_miss_tokens": 4000,
                "completion_tokens": 500,
                "total_tokens": 16500,
            },
            Usage(prompt_tokens=16000, completion_tokens=500, cached_tokens=0, reasoning_tokens=0),
        ),
        # OpenAI's own shape: its cached tokens count in total_usage.
        (
            {"prompt_tokens": 900, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 800}},
            Usage(prompt_tokens=900, completion_tokens=10, cached_tokens=800, reasoning_tokens=0),
        ),
        # No usage at all in the reply.
        (None, Usage.zero()),
    ],
)
def test_usage_raw_directive_serves_the_object_as_given(server, raw, expected_total):
    with httpx.Client() as http:
        resp = http.post(
            f"{server.base_url}/chat/completions",
            json={
                "model": "deepseek-chat",
                "messages": [{"role": "user", "content": f"hi [[usage_raw:{json.dumps(raw)}]]"}],
            },
        )
    assert resp.status_code == 200
    body = resp.json()
    if raw is None:
        assert "usage" not in body
    else:
        assert body["usage"] == raw
    assert server.total_usage() == expected_total


@pytest.mark.parametrize(
    "text", ["[[usage_raw:[1, 2]]]", "[[usage_raw:{bad json}]]", '[[usage_raw:{"a": 1}]']
)
def test_bad_usage_raw_directive_is_a_400(server, text):
    with pytest.raises(openai.BadRequestError):
        ask(make_client(server), text)


def test_function_directive_answers_with_a_legacy_function_call(server):
    client = make_client(server)
    text = 'check [[function:lookup_order {"order_id": "A-1029"}]]'
    resp = ask(client, text, functions=[LOOKUP_FUNCTION])
    choice = resp.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.content is None
    assert choice.message.function_call.name == "lookup_order"
    assert json.loads(choice.message.function_call.arguments) == {"order_id": "A-1029"}
    assert server.served[0].tool_call == "lookup_order"
    # Not offered: a plain reply.
    plain = ask(client, text)
    assert plain.choices[0].finish_reason == "stop"
    assert plain.choices[0].message.function_call is None


@pytest.mark.parametrize(
    ("headers", "echoed"),
    [
        ({"Authorization": "Bearer tok-" + "a" * 44}, "tok-" + "a" * 44),
        ({"api-key": "azurekey" + "b" * 24}, "azurekey" + "b" * 24),
        ({"x-api-key": "xkey-" + "c" * 30}, "xkey-" + "c" * 30),
    ],
)
def test_401_echoes_the_credential_it_was_sent(server, headers, echoed):
    with httpx.Client() as http:
        resp = http.post(
            f"{server.base_url}/chat/completions",
            headers=headers,
            json={"model": "m", "messages": [{"role": "user", "content": "[[fail:401]]"}]},
        )
    assert resp.status_code == 401
    assert resp.json()["error"]["message"].startswith(f"Incorrect API key provided: {echoed}.")
    assert resp.json()["error"]["code"] == "invalid_api_key"
