"""Issue 15, items 7-9, each fault as one row of a table covering its kind.

7. A credential the app has seen (``llm_config`` ``api_key``, credential headers, a base URL's
   userinfo or query, an SDK client's key) is scrubbed wherever it shows up later, in each shape
   it can take (raw, JSON-escaped, percent-encoded, HTML-escaped, Basic base64), by every
   redaction entry point and by the sanitize pass; end to end, a provider's 401 that echoes the
   bearer token leaves it nowhere.
8. Keys without a recognisable prefix next to a key word (``azure key: <32 hex>``) are redacted,
   in every shape of prose a tester found (markdown, the next line, XML, no separator in a
   provider's error message...), and each pattern's screen sees them in every JSON encoding;
   git SHAs, UUIDs, hashes and counts are kept (a must-redact and a must-keep table); passwords
   with symbols go whole.
9. A quoted secret whose closing quote never comes (JSON cut at ``max_tokens``, pretty-printed,
   in a list, with an escaped quote inside, a URL cut before its ``@``) is redacted up to the end
   of its line or text.

Every value is generated from a seeded ``random.Random`` at test time: no secret-shaped literal is
committed.
"""

from __future__ import annotations

import base64
import html
import json
import random
import string
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ag2_logging.pipeline.sanitize import LineSanitizer, sanitize_json_line
from ag2_logging.redaction import (
    credentials,
    may_contain_secrets,
    redact,
    redact_json,
    redact_text,
    remember_credential,
    remember_from_client,
    remember_from_config,
    remember_from_url,
)
from ag2_logging.redaction.credentials import forget_credentials, known_credentials
from ag2_logging.redaction.patterns import PATTERNS, entropy, generic_value_ok
from ag2_logging.serialize import dumps

HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits
LOWER = string.ascii_lowercase
B64 = ALNUM + "+/"
RNG_SEED = 1507


@pytest.fixture(autouse=True)
def _nothing_remembered() -> Iterator[None]:
    """Each test starts and ends with no credential remembered (the store is process-wide)."""
    forget_credentials()
    yield
    forget_credentials()


def _s(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mixed(rng: random.Random, alphabet: str, n: int) -> str:
    """Random characters of ``alphabet`` with at least one digit and one letter."""
    return rng.choice("abcdef") + _s(rng, alphabet, n - 2) + rng.choice("0123456789")


def _letters(rng: random.Random, n: int = 48) -> str:
    """A credential no pattern recognises: lower-case letters only (no digit, one case)."""
    return _s(rng, LOWER, n)


# =============================================================================================
# 7. Remembered credentials
# =============================================================================================


def _openai_client(**kwargs: Any) -> Any:
    import openai

    return openai.OpenAI(base_url="http://127.0.0.1:9/v1", max_retries=0, **kwargs)


def _pydantic_entry(token: str) -> Any:
    from pydantic import BaseModel, SecretStr

    class Entry(BaseModel):
        model: str
        api_key: SecretStr

    return {"config_list": [Entry(model="gpt-4o-mini", api_key=SecretStr(token))]}


#: (where the app is shown the credential, how it is remembered). ``t`` is the credential.
SOURCES: dict[str, Callable[[str], None]] = {
    "config api_key": lambda t: remember_from_config(
        {"config_list": [{"model": "gpt-4o-mini", "api_key": t}], "cache_seed": None}
    ),
    "config Authorization Bearer header": lambda t: remember_from_config(
        {"config_list": [{"model": "m", "default_headers": {"Authorization": f"Bearer {t}"}}]}
    ),
    "config api-key header (Azure)": lambda t: remember_from_config(
        {"config_list": [{"model": "m", "default_headers": {"api-key": t}}]}
    ),
    "config x-api-key header (list of pairs)": lambda t: remember_from_config(
        {"config_list": [{"model": "m", "headers": [("x-api-key", t)]}]}
    ),
    "config azure_ad_token": lambda t: remember_from_config([{"model": "m", "azure_ad_token": t}]),
    "base_url userinfo password": lambda t: remember_from_config(
        {"config_list": [{"model": "m", "base_url": f"https://svc:{t}@llm.example/v1"}]}
    ),
    "base_url query secret": lambda t: remember_from_url(f"https://llm.example/v1?api_key={t}&x=1"),
    "pydantic SecretStr api_key (ag2 1.x LLMConfig)": lambda t: remember_from_config(_pydantic_entry(t)),
    "openai client api_key": lambda t: remember_from_client(_openai_client(api_key=t)),
    "openai client default header": lambda t: remember_from_client(
        _openai_client(api_key="placeholder", default_headers={"Authorization": f"Bearer {t}"})
    ),
    "a bare value": remember_credential,
}


def _echo(token: str) -> str:
    return f"Error code: 401 - {{'error': {{'message': 'Incorrect API key provided: {token}.'}}}}"


@pytest.mark.parametrize("source", list(SOURCES))
def test_a_credential_the_app_was_shown_is_scrubbed_from_its_echo(source: str) -> None:
    token = _letters(random.Random(source))
    text = _echo(token)
    # No pattern knows this token: without the remembered value it would be written.
    assert redact_text(text) == text and redact_text(text, thorough=True) == text
    SOURCES[source](token)
    assert token in known_credentials()
    counts: dict[str, int] = {}
    out = redact_text(text, counts)
    assert token not in out and "Incorrect API key provided: [REDACTED:credential]." in out
    assert counts == {"credential": 1}
    assert redact_text(out) == out  # idempotent


def _token_with_symbols(rng: random.Random) -> str:
    """A credential whose JSON, percent and HTML forms all differ from the raw value."""
    return _s(rng, LOWER, 16) + '"/+&<% ' + _s(rng, LOWER, 16) + "\\" + _s(rng, LOWER, 8)


#: shape name -> the form the value takes once written.
SHAPES: dict[str, Callable[[str], str]] = {
    "raw": lambda v: v,
    "JSON-escaped": lambda v: json.dumps(v)[1:-1],
    "JSON-escaped, non-ASCII kept": lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
    "percent-encoded": lambda v: quote(v, safe=""),
    "percent-encoded, + for space": quote_plus,
    "HTML-escaped": html.escape,
}


def _entry_points() -> dict[str, Callable[[str], str]]:
    """Every redaction entry point, each returning the string it would write (decoded)."""

    def in_structure(text: str) -> str:
        out = redact({"choices": [{"message": {"content": text}}], "n": [text]})
        return str(out["choices"][0]["message"]["content"]) + "\n" + str(out["n"][0])

    def sanitize_line(text: str) -> str:
        return LineSanitizer().line(text) or ""

    def sanitize_record(text: str) -> str:
        line = orjson.dumps({"type": "llm_call", "error": text}).decode()
        return str(orjson.loads(sanitize_json_line(line, {})[0])["error"])

    return {
        "redact_text": redact_text,
        "redact_text thorough": lambda t: redact_text(t, thorough=True),
        "redact on a structure": in_structure,
        "redact thorough on a structure": lambda t: str(redact([t], thorough=True)[0]),
        "redact_json (the recorder)": lambda t: str(redact_json(dumps({"error": t}))["error"]),
        "sanitize pass, text line": sanitize_line,
        "sanitize pass, JSON line": sanitize_record,
    }


ENTRY_POINTS = _entry_points()


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_scrubs_every_shape(entry: str, shape: str) -> None:
    rng = random.Random(f"{entry}/{shape}")
    token = _token_with_symbols(rng)
    written = SHAPES[shape](token)
    text = f"upstream said: {written} (end)"
    assert written in ENTRY_POINTS[entry](text)  # not caught before it is remembered
    remember_credential(token)
    out = ENTRY_POINTS[entry](text)
    for form in SHAPES.values():
        assert form(token) not in out, shape
    assert "[REDACTED:credential]" in out


_TOKEN_CHARS = "".join(c for c in string.printable if c not in "[]\t\n\r\x0b\x0c") + "éß€"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    token=st.text(alphabet=_TOKEN_CHARS, min_size=20, max_size=60).filter(
        lambda t: t.strip() == t and "REDACTED" not in t.upper()
    ),
    before=st.text(alphabet=string.ascii_letters + " :=,'\"", max_size=20),
)
def test_any_remembered_value_is_gone_in_every_shape(token: str, before: str) -> None:
    """Property: whatever characters a remembered value holds, none of its shapes survives any
    entry point, and a second pass changes nothing."""
    forget_credentials()
    remember_credential(token)
    for shape in SHAPES.values():
        text = f"{before}{shape(token)} end"
        for entry in ("redact_text", "redact on a structure", "redact_json (the recorder)"):
            out = ENTRY_POINTS[entry](text)
            assert shape(token) not in out and token not in out, (entry, out)
            assert ENTRY_POINTS[entry](out) == out or entry == "redact on a structure"
    forget_credentials()


def test_the_recorder_fast_path_sees_a_remembered_value() -> None:
    """``may_contain_secrets`` decides whether the recorder stores a body as is: a remembered
    value must make it say yes, for text and for serialized bytes."""
    token = _letters(random.Random(3))
    body = {"messages": [{"role": "user", "content": f"use {token} please"}]}
    raw = dumps(body)
    assert not may_contain_secrets(raw) and not may_contain_secrets(raw.decode())
    assert redact(body) is body
    remember_credential(token)
    assert may_contain_secrets(raw) and may_contain_secrets(raw.decode())
    assert redact(body) == {"messages": [{"role": "user", "content": "use [REDACTED:credential] please"}]}


def test_basic_auth_is_scrubbed_as_base64_and_as_the_password() -> None:
    rng = random.Random(11)
    user, password = _s(rng, LOWER, 6), _letters(rng, 24)
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    remember_credential(f"Basic {encoded}")
    out = redact_text(f"sent {encoded}; the server says password {password} is wrong")
    assert encoded not in out and password not in out and out.count("[REDACTED:credential]") == 2


def test_a_url_password_is_scrubbed_raw_decoded_and_as_the_basic_header_a_client_sends() -> None:
    rng = random.Random(12)
    password = _letters(rng, 20) + "@/"
    quoted = quote(password, safe="")
    remember_from_url(f"https://svc:{quoted}@llm.example/v1")
    basic = base64.b64encode(f"svc:{password}".encode()).decode()
    for text in (password, quoted, basic):
        assert redact_text(f"x {text} y") == "x [REDACTED:credential] y"


PLACEHOLDERS = ["anything", "not-needed", "sk-whatever", "sk-x", "short1", "[REDACTED:api_key]", "REDACTED-1"]


@pytest.mark.parametrize("value", [*PLACEHOLDERS, None, 12345, b"", "   "])
def test_placeholders_and_non_strings_are_not_remembered(value: Any) -> None:
    remember_credential(value)
    remember_from_config({"config_list": [{"api_key": value, "default_headers": {"Authorization": value}}]})
    assert known_credentials() == frozenset()
    prose = "anything not-needed sk-whatever short1 [REDACTED:api_key]"
    assert redact_text(prose) == prose


def test_nothing_remembered_costs_nothing_and_the_store_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"content": "hello " * 50}
    assert redact(body) is body and credentials.scrub_known_credentials("abc") == "abc"
    monkeypatch.setattr(credentials, "MAX_VALUES", 5)
    tokens = [_letters(random.Random(i), 30) for i in range(8)]
    for token in tokens:
        remember_credential(token)
    assert known_credentials() == frozenset(tokens[3:])  # the oldest forgotten first
    assert redact_text(tokens[0]) == tokens[0] and redact_text(tokens[7]) == "[REDACTED:credential]"


def test_many_remembered_values_use_one_expression_and_still_scrub_each() -> None:
    tokens = [_letters(random.Random(100 + i), 24) for i in range(40)]
    for token in tokens:
        remember_credential(token)
    text = " | ".join(tokens[::7])
    out = redact_text(text)
    assert out == " | ".join(["[REDACTED:credential]"] * len(tokens[::7]))
    assert may_contain_secrets(dumps({"a": tokens[-1]}))


# =============================================================================================
# 8. Keys in prose, anchored on a key word
# =============================================================================================


def _hex(rng: random.Random, n: int = 32) -> str:
    return rng.choice("abcdef") + _s(rng, HEX, n - 2) + rng.choice("0123456789")


def _b62(rng: random.Random) -> str:
    return _mixed(rng, ALNUM, 32)


#: (template, value generator): the value must be gone, whichever rule takes it.
MUST_REDACT: list[tuple[str, Callable[[random.Random], str]]] = [
    ("azure key: {v}", _hex),  # the reported input (issue 15, item 8)
    ("Azure OpenAI key = {v}", _hex),
    ("the API key is {v}.", lambda r: _mixed(r, ALNUM, 40)),
    ("Incorrect API key provided: {v}. You can find your key", lambda r: _mixed(r, ALNUM, 48)),
    ("secret for prod => {v}", lambda r: _mixed(r, B64, 44)),
    ("credentials -> {v}", lambda r: _hex(r, 40)),
    ("access key for the bucket: {v}", lambda r: _mixed(r, ALNUM, 20)),
    ('"azure key": "{v}"', _hex),
    ("token was {v}", lambda r: _mixed(r, ALNUM, 32)),
    ("my openai key: `{v}`", lambda r: _mixed(r, ALNUM, 40)),
    ("Passphrase: {v}", lambda r: _hex(r, 24)),
    ("the service KEY := {v}", lambda r: _mixed(r, ALNUM.upper()[:36], 32)),
    ("stripe secret is {v}, rotate it", lambda r: _mixed(r, ALNUM + "_-", 36)),
    ("apiKey: {v}", _hex),
    # more shapes of prose (issue 15, item 8, faults a tester found)
    ("**Azure API key:** `{v}`", _hex),  # markdown bold and backticks
    ("Azure key:\n{v}", _hex),  # the value on the next line
    ("<api_key>{v}</api_key>", _hex),  # an XML element
    ("use api key {v} for the call", _hex),  # no separator
    ("tokens: {v}", _b62),
    ("key :: {v}", _hex),
    ("key:\u00a0{v}", _hex),  # a no-break space
    ("key\uff1a{v}", _hex),  # a full-width colon
    ("keys: {v}", lambda r: _hex(r) + ", " + _hex(r)),  # every key of a list
    ("key1={v}", _hex),
    ("pw: {v}", _b62),
    ("client secret {v}", _b62),
    ("Token {v}", _b62),
    ("key: '''{v}'''", _hex),
    # third-party keys in error prose the app never saw
    ("The API key {v} is invalid", _b62),
    ("invalid x-api-key {v}", _b62),
    ("Error: Invalid subscription key '{v}'", _hex),
    ("api key '{v}' was revoked", _b62),
    ("Authentication failed for token {v}", _b62),
    ('HTTP 401: {"error": "invalid api key {v}"}', _b62),
]

#: (template, value generator): the text must come back unchanged, on the hot path and thorough.
MUST_KEEP: list[tuple[str, Callable[[random.Random], str]]] = [
    ("commit {v}", lambda r: _hex(r, 40)),
    ("Merged commit {v} into main; tokens are refreshed hourly", lambda r: _hex(r, 40)),
    ("token refresh commit: {v}", lambda r: _hex(r, 40)),
    ("request id: {v}", lambda r: str(uuid.UUID(int=r.getrandbits(128)))),
    ("idempotency key: {v}", lambda r: str(uuid.UUID(int=r.getrandbits(128)))),
    ("api key: {v}", lambda r: str(uuid.UUID(int=r.getrandbits(128)))),  # a UUID is an id
    ("key id: {v}", _hex),
    ("cache key: {v}", _hex),
    ("primary key = {v}", _hex),
    ("public key fingerprint: {v}", lambda r: _mixed(r, B64, 43)),
    ("public key: {v}", lambda r: _mixed(r, B64, 43)),
    ("sha256: {v}", lambda r: _hex(r, 64)),
    ("the file hash is {v}", lambda r: _hex(r, 64)),
    ("monkey: {v}", _hex),
    ("max_tokens: {v}", lambda r: str(r.randint(10**15, 10**17))),
    ("token count: {v}", lambda r: str(r.randint(10**15, 10**17))),
    ("key: {v}", lambda r: "a" * 20 + "1"),  # no entropy
    ("secret: {v}", lambda r: _s(r, LOWER, 24)),  # a word, no digit
    ("the key takeaway is {v}", lambda r: "documentationdrivendesign"),
    ("Reviewed {v} with no key or token in it", lambda r: _hex(r, 40)),
    ("git sha {v}", lambda r: _hex(r, 40)),
    ("key version: {v}", _hex),
    ("token length: {v}", lambda r: _hex(r, 20)),
    ("token prompt_tokens: {v}", _hex),  # found by the property test of test_redaction.py
    ("the token completionTokens: {v}", lambda r: _hex(r, 40)),
    # near misses of the shapes above
    ("max_tokens: {v}", lambda r: str(r.randint(256, 8192))),
    ("the key idea is {v}", lambda r: "to ship small changes"),
    ("tokens: {v}", lambda r: str(r.randint(100, 99999))),
    ("Token usage: {v} prompt, 20 completion", lambda r: str(r.randint(100, 99999))),
    ("token {v}", _hex),  # a bare hex value after a key word with no separator: a hash or an id
    ("the key {v} is missing from the cache", _hex),
    ("secret {v}", lambda r: str(uuid.UUID(int=r.getrandbits(128)))),
    ("token chatcmpl-{v}", lambda r: _mixed(r, ALNUM, 24)),
    ("prompt_tokens: {v}", _hex),
    ("primary keys: {v}", _hex),
    ("keys: {v}", lambda r: str(r.randint(100, 99999))),
    ("key points: {v}", lambda r: "simplicity and speed"),
    ("password: {v}", lambda r: "required."),
    ("served at http://localhost:{v}", lambda r: str(r.randint(1024, 65535))),
    ("served at http://localhost:{v}", lambda r: "port"),
    ("mysql -u root -P {v} -p", lambda r: str(r.randint(1024, 65535))),  # -P is the port
]


@pytest.mark.parametrize(("template", "make"), MUST_REDACT, ids=[t for t, _ in MUST_REDACT])
def test_a_key_next_to_a_key_word_is_redacted(template: str, make: Callable[[random.Random], str]) -> None:
    rng = random.Random(template)
    for _ in range(5):
        value = make(rng)
        text = template.replace("{v}", value)
        for out in (redact_text(text), redact_text(text, thorough=True), redact({"result": text})["result"]):
            assert "[REDACTED:" in out, (text, out)
            for part in value.split(", "):
                assert part not in out, (text, out)


@pytest.mark.parametrize(("template", "make"), MUST_KEEP, ids=[t for t, _ in MUST_KEEP])
def test_ids_hashes_and_counts_are_kept(template: str, make: Callable[[random.Random], str]) -> None:
    rng = random.Random(template)
    for _ in range(5):
        text = template.replace("{v}", make(rng))
        assert redact_text(text) == text and redact_text(text, thorough=True) == text
        assert redact({"result": text}) == {"result": text}


def _encodings(text: str) -> list[str]:
    return [text, json.dumps(text), json.dumps(json.dumps(text)), orjson.dumps({"c": text}).decode()]


@pytest.mark.parametrize(("template", "make"), MUST_REDACT, ids=[t for t, _ in MUST_REDACT])
def test_the_screens_see_every_new_shape_in_every_encoding(
    template: str, make: Callable[[random.Random], str]
) -> None:
    """Each pattern that takes a must-redact text has a screen matching the text and its JSON
    encodings (``\\u00a0``, ``\\uff1a``, ``\\n``): the hot path never skips it."""
    import re2

    text = template.replace("{v}", make(random.Random(template)))
    for pattern in PATTERNS:
        if pattern.screen is None or not any(pattern.accepts(m) for m in pattern.regex.finditer(text)):
            continue
        screen = re2.compile(pattern.screen)
        for encoded in _encodings(text):
            assert screen.search(encoded), (pattern.kind, encoded)
    for encoded in _encodings(text):
        assert may_contain_secrets(encoded) and may_contain_secrets(encoded.encode())


def _password(rng: random.Random, middle: str) -> str:
    """A password with ``middle`` (a symbol run) inside: ``Hunter7&Co2024``-like."""
    return "Hunter" + str(rng.randint(2, 9)) + middle + _s(rng, ALNUM, 6) + str(rng.randint(10, 99))


#: (template, the symbols inside the password): the whole password must be gone, not only the
#: part before its first symbol (``password: Hunter2&Co2024`` was ``[REDACTED]&Co2024``).
WHOLE_PASSWORDS: list[tuple[str, str]] = [
    ("password: {v}", "&Co"),
    ("password: {v}", ";rm"),
    ("DB password: {v}", "(2024)"),
    ("password: {v}, then log in", "&"),
    ("<password>{v}</password>", "-"),
    ("<db_password>{v}</db_password>", "&amp;"),
    ("mysql -u root -p{v}", "-"),
    ("mysqldump --password={v} shop", "!"),
    ('{"password": ["{v}", "x"]', "-"),
]


@pytest.mark.parametrize(
    ("template", "middle"), WHOLE_PASSWORDS, ids=[f"{t} {m}" for t, m in WHOLE_PASSWORDS]
)
def test_a_password_with_symbols_is_redacted_whole(template: str, middle: str) -> None:
    rng = random.Random(template + middle)
    for _ in range(5):
        value = _password(rng, middle)
        text = template.replace("{v}", value)
        head, tail = value[: value.index(middle)], value[value.index(middle) + len(middle) :]
        for out in (redact_text(text), redact_text(text, thorough=True), redact({"r": text})["r"]):
            assert head not in out and tail not in out, (text, out)
            assert redact_text(out) == out


def test_a_password_with_spaces_is_a_documented_limit() -> None:
    """Unquoted after ``password:``, a value ends at the first space: the first word goes, the
    rest stays (quoted, the whole value goes)."""
    assert (
        redact_text("password: p4ss w0rd with spaces")
        == "password: [REDACTED:secret_assignment] w0rd with spaces"
    )
    assert "w0rd" not in redact_text("password: 'p4ss w0rd with spaces'")


@pytest.mark.parametrize(
    ("alphabet", "length"), [(HEX, 32), (HEX, 16), (ALNUM, 20), (ALNUM, 48), (LOWER + "0123456789", 24)]
)
def test_random_keys_pass_the_entropy_floor_and_repeats_do_not(alphabet: str, length: int) -> None:
    """Property over 200 random keys of each alphabet: next to a key word, each is redacted."""
    rng = random.Random(f"{alphabet}{length}")
    caught = 0
    for _ in range(200):
        value = rng.choice("abcdef") + _s(rng, alphabet, length - 2) + rng.choice("23456789")
        caught += value not in redact_text(f"deploy key: {value}")
    assert caught >= 196  # a random draw may, rarely, be as repetitive as a word
    for word in ("ab" * 10 + "1", "1234abcd" * 3, "a1" * 12):
        assert not generic_value_ok(word), (word, entropy(word))


# =============================================================================================
# 9. A secret in cut-off JSON
# =============================================================================================

#: Texts cut before the value's closing quote. ``{v}`` is the secret.
CUT_OFF: list[str] = [
    '{"user": "ops", "password": "{v}',  # the reported input (issue 15, item 9)
    '{"user": "ops", "password": "{v}\u2026',
    '{"db": {"host": "x", "client_secret": "{v}',
    "password: '{v}",
    'DB_PASSWORD="{v}',
    'api_key: "{v}\nnext: line',
    '[{"name": "deploy", "arguments": {"token": "{v}',
    '{\\"user\\": \\"ops\\", \\"password\\": \\"{v}',  # JSON-escaped, as in a log line
    '{"user": "ops", "password": "Hunter2\\"-{v}',  # an escaped quote inside the value
    '{"password":\n  "{v}',  # pretty-printed
    '{"password": ["{v}',  # a list
    '{"url": "postgres://ops:{v}',  # a URL cut before its "@"
    "<password>{v}",
]


def _cut_value(rng: random.Random) -> str:
    return "Hunter" + str(rng.randint(2, 9)) + "-" + _s(rng, ALNUM, 10)


@pytest.mark.parametrize("template", CUT_OFF)
def test_an_unterminated_secret_is_redacted_to_the_end(template: str) -> None:
    rng = random.Random(template)
    value = _cut_value(rng)
    text = template.replace("{v}", value)
    body = {"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": text}}]}}]}
    outs = [
        redact_text(text),
        redact_text(text, thorough=True),
        orjson.dumps(redact(body)).decode(),
        orjson.dumps(redact(body, thorough=True)).decode(),
        orjson.dumps(redact_json(dumps(body))).decode(),
        LineSanitizer().line(text) or "",
    ]
    for out in outs:
        assert value not in out and value[:8] not in out, (text, out)
    assert redact_text(outs[0]) == outs[0]


@pytest.mark.parametrize(
    "text",
    [
        '{"note": "a quote that never closes',
        '{"user": "ops", "password": "',
        '{"password": "", "user": "ops"}',
        "tokens: 'many",
        '{"url": "http://localhost:8000',
        '{"password":\n  "',
    ],
)
def test_unterminated_text_without_a_secret_is_kept(text: str) -> None:
    assert redact_text(text) == text and redact_text(text, thorough=True) == text


def test_a_closed_value_still_ends_at_its_quote() -> None:
    value = _cut_value(random.Random(5))
    out = redact_text(f'{{"password": "{value}", "user": "ops"}}')
    assert value not in out and '"user":"ops"' in out.replace(" ", "")


# =============================================================================================
# End to end
# =============================================================================================


@pytest.fixture
def admin_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


def _tokens() -> dict[str, str]:
    rng = random.Random(RNG_SEED)
    return {
        "base62 with digits": _mixed(rng, ALNUM, 48),
        "lower-case letters (no pattern knows it)": _letters(rng, 48),
    }


def _chat(config: dict[str, Any], message: str) -> None:
    """One classic AG2 chat (an assistant and a user proxy) in a logged session."""
    import autogen

    from ag2_logging import ag2_logging_session

    with ag2_logging_session("chat-401", "secrets", "acme"):
        assistant = autogen.AssistantAgent("assistant", llm_config=config)
        user = autogen.UserProxyAgent(
            "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=1
        )
        user.initiate_chat(assistant, message=message, max_turns=1)


@pytest.mark.classic
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", list(_tokens()))
def test_a_token_echoed_by_a_401_is_nowhere(kind: str, llm: Any, logs_dir: Path, admin_client: Any) -> None:
    """Issue 15, item 7: a real classic agent sends ``Authorization: Bearer <48 chars>`` (its
    ``llm_config`` ``default_headers``) to a server that answers 401 echoing the token."""
    import openai

    from ag2_logging import flush
    from ag2_logging.models import Session
    from tests.secrets_scan import scan_everything

    token = _tokens()[kind]
    entry = {"model": "gpt-4o-mini", "api_key": "sk-" + "x" * 40, "base_url": llm.base_url, "max_retries": 0}
    config = {
        "config_list": [{**entry, "default_headers": {"Authorization": f"Bearer {token}"}}],
        "cache_seed": None,
    }
    with pytest.raises(openai.AuthenticationError) as raised:
        _chat(config, "[[fail:401]] hello")
    assert token in str(raised.value)  # the server really echoed it
    flush()

    session = Session.objects.get()
    assert session.status == "failed" and session.ingested_at is not None
    assert "Incorrect API key provided: [REDACTED:" in session.error
    if "letters" in kind:  # only the remembered value can have caught it
        assert "Incorrect API key provided: [REDACTED:credential]" in session.error
    findings = scan_everything([token], logs_dir=logs_dir, client=admin_client)
    assert [str(f) for f in findings] == []


def _ask_ag2(config: Any, message: str) -> None:
    """One ag2 1.x ``Agent.ask`` with the logging middleware, in a logged session."""
    import asyncio

    from ag2 import Agent

    from ag2_logging import ag2_logging_session
    from ag2_logging.integrations.ag2 import logging_middleware

    agent = Agent("assistant", "You help.", config=config, middleware=[logging_middleware()])

    async def chat() -> None:
        async with ag2_logging_session("chat-401-ag2", "secrets", "acme"):
            await agent.ask(message)

    asyncio.run(chat())


@pytest.mark.ag2
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", list(_tokens()))
def test_a_token_echoed_by_a_401_is_nowhere_ag2(
    kind: str, llm: Any, logs_dir: Path, admin_client: Any
) -> None:
    """Item 7 with ag2 1.x: ``OpenAIConfig(default_headers={"Authorization": "Bearer <48>"})``."""
    pytest.importorskip("ag2")
    import openai
    from ag2.config import OpenAIConfig

    from ag2_logging import flush
    from ag2_logging.models import Session
    from tests.secrets_scan import scan_everything

    token = _tokens()[kind]
    config = OpenAIConfig(
        model="gpt-4o-mini",
        api_key="sk-" + "x" * 40,
        base_url=llm.base_url,
        max_retries=0,
        default_headers={"Authorization": f"Bearer {token}"},
    )
    with pytest.raises(openai.AuthenticationError) as raised:
        _ask_ag2(config, "[[fail:401]] hello")
    assert token in str(raised.value)
    flush()
    session = Session.objects.get()
    assert session.status == "failed" and "Incorrect API key provided: [REDACTED:" in session.error
    if "letters" in kind:
        assert "Incorrect API key provided: [REDACTED:credential]" in session.error
    assert [str(f) for f in scan_everything([token], logs_dir=logs_dir, client=admin_client)] == []


@pytest.mark.classic
@pytest.mark.django_db(transaction=True)
def test_a_key_in_a_tool_result_is_nowhere(llm: Any, logs_dir: Path, admin_client: Any) -> None:
    """Issue 15, item 8: a tool answers ``azure key: <32 hex>``."""
    import autogen

    from ag2_logging import ag2_logging_session, flush
    from ag2_logging.models import ToolCall
    from tests.conftest import llm_config
    from tests.secrets_scan import scan_everything

    key = _hex(random.Random(RNG_SEED + 8))

    def vault(name: str) -> str:
        return f"azure key: {key}"

    with ag2_logging_session("chat-prose", "secrets", "acme"):
        assistant = autogen.AssistantAgent("assistant", llm_config=llm_config(llm))
        user = autogen.UserProxyAgent(
            "user", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=2
        )
        autogen.register_function(vault, caller=assistant, executor=user, description="Read the vault.")
        user.initiate_chat(assistant, message='[[tool:vault {"name": "azure"}]]', max_turns=2)
    flush()
    tool = ToolCall.objects.get()
    assert tool.result_summary == "azure key: [REDACTED:generic_secret]"
    assert [str(f) for f in scan_everything([key], logs_dir=logs_dir, client=admin_client)] == []


@pytest.mark.django_db(transaction=True)
def test_cut_off_tool_arguments_are_nowhere(logs_dir: Path, admin_client: Any) -> None:
    """Issue 15, item 9: tool-call arguments cut at ``max_tokens`` in an LLM response and in the
    tool call recorded from them (the recorder's public API; the fake server refuses invalid
    JSON arguments, so no AG2 agent can be handed them)."""
    from ag2_logging import ag2_logging_session, flush
    from ag2_logging.models import LLMCall, ToolCall
    from tests.secrets_scan import scan_everything

    value = _cut_value(random.Random(RNG_SEED + 9))
    cut = '{"user": "ops", "password": "' + value
    response = {
        "id": "chatcmpl-cut",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "login", "arguments": cut}}
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 16, "total_tokens": 36},
    }
    with ag2_logging_session("chat-cut", "secrets", "acme") as recorder:
        assert recorder is not None
        recorder.record_llm_call(
            agent_name="assistant",
            provider="openai",
            model="gpt-4o-mini",
            prompt_tokens=20,
            completion_tokens=16,
            request={
                "model": "gpt-4o-mini",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "log in"}],
            },
            response=response,
        )
        recorder.record_tool_call(agent_name="user", name="login", arguments=cut, result="refused")
    flush()
    stored = LLMCall.objects.get().response["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert stored == '{"user": "ops", "password": "[REDACTED:secret_assignment]'
    assert value not in json.dumps(ToolCall.objects.get().arguments)
    assert [str(f) for f in scan_everything([value], logs_dir=logs_dir, client=admin_client)] == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("kind", "remembered", "removed"),
    [
        ("base62 with digits", True, True),  # inline: this process remembers it
        ("lower-case letters (no pattern knows it)", True, True),
        ("base62 with digits", False, True),  # a Celery worker: generic_secret still catches it
        ("lower-case letters (no pattern knows it)", False, False),  # the documented limit
    ],
)
def test_the_sanitize_pass_scrubs_remembered_values_where_it_knows_them(
    kind: str, remembered: bool, removed: bool, settings: Any
) -> None:
    """A journal line written without redaction (an older version) holding an echoed token: the
    sanitize pass removes it from the journal and the ingested row when the process remembers
    the token, or when a pattern knows its shape; a worker that never saw it keeps a shapeless one."""
    from ag2_logging import ag2_logging_session, flush, tasks
    from ag2_logging.capture.recorder import BaseRecorder
    from ag2_logging.conf import conf
    from ag2_logging.models import AgentEvent, Session

    settings.AG2_LOGGING = {**settings.AG2_LOGGING, "INGEST_ON_SESSION_END": False}
    conf.reload()
    token = _tokens()[kind]
    error = f"Incorrect API key provided: {token}."
    with ag2_logging_session("chat-old-401", "old", "acme") as recorder:
        assert recorder is not None
        event = {"type": "agent_event", "id": str(uuid.UUID(int=RNG_SEED)), "ts": "2026-01-01T00:00:00+00:00"}
        BaseRecorder._write(
            recorder, {**event, "agent_name": "a", "name": "reply", "data": None, "error": error}
        )
    flush()
    session = Session.objects.get()
    tasks.ingest_session.delay(str(session.pk)).get()
    assert AgentEvent.objects.get().error == error  # ingested as written

    if remembered:
        remember_credential(f"Bearer {token}")
    result = tasks.sanitize_log.delay(str(session.pk)).get()
    journal = Path(session.journal_path).read_text()
    stored = AgentEvent.objects.get().error
    if removed:
        assert token not in journal and token not in stored and result["rows_updated"] == 1
        assert stored.startswith("Incorrect API key provided: [REDACTED:")
    else:
        assert token in journal and stored == error and result["removed"] == {}


def test_a_client_is_read_once_and_again_when_its_key_changes() -> None:
    """The integrations hand every request's client to ``remember_from_client``: a client
    already read is skipped, but a rotated key, or a forgotten one, is read again."""
    import openai

    from ag2_logging.redaction.credentials import remember_from_client

    forget_credentials()
    first, rotated = "sk-" + "a1b2c3d4" * 4, "sk-" + "e5f6a7b8" * 4
    client = openai.OpenAI(api_key=first, base_url="http://127.0.0.1:9/v1")
    remember_from_client(client)
    assert first in known_credentials()
    client.api_key = rotated
    remember_from_client(client)
    assert {first, rotated} <= known_credentials()
    forget_credentials()
    remember_from_client(client)  # forgotten: read again
    assert known_credentials() == {rotated}
    forget_credentials()
