"""The faster redaction finds what the slower one found: the same output, the same counts.

The oracle below is a copy of the redaction walk as it stood before the speed-ups (issue 19):
the thorough pass ran every pattern of the table on every string with Python's ``re``, the hot
path ran the patterns its screens picked, and neither remembered anything between calls. The
current code skips a pattern only when the RE2 superset of its expression finds nothing
(:mod:`ag2_logging.redaction.superset`) and remembers the results of identical strings; here
both are compared on generated payloads (planted secrets of every kind, near misses, key names,
header pairs, JSON inside strings, odd whitespace and escapes), on journals through the sanitize
pass, and the supersets are checked against the Python expressions they stand for.
"""

from __future__ import annotations

import dataclasses
import random
import re
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ag2_logging.pipeline.sanitize import sanitize_journal
from ag2_logging.redaction import (
    MARKER,
    MARKER_PREFIX,
    MARKER_RE,
    PATTERNS,
    forget_results,
    is_sensitive_key,
    redact,
    redact_json,
    redact_text,
    remember_credential,
    screened_request,
)
from ag2_logging.redaction.credentials import forget_credentials, scrub_known_credentials
from ag2_logging.redaction.engine import screens
from ag2_logging.redaction.patterns import SCREEN_QUOTE, SCREEN_WS, Pattern, key_kind
from ag2_logging.redaction.superset import superset_expression
from ag2_logging.serialize import dumps
from tests.secrets_scan import GENERATORS, KEY_NAMES, bare_secret, sample

KINDS = sorted(GENERATORS)
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(autouse=True)
def _nothing_remembered() -> Iterator[None]:
    forget_credentials()
    yield
    forget_credentials()


# ---------------------------------------------------------------------------------------------
# The oracle: the walk and the patterns as they were (no superset pre-check, no memo)
# ---------------------------------------------------------------------------------------------

_PY_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9_.\- ])([A-Za-z0-9_.\- ]++)" + SCREEN_QUOTE + SCREEN_WS + r"*[:=,>]"
)
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-goog-api-key",
        "x-access-token",
    }
)
_ALL = frozenset(range(len(PATTERNS)))


def _count(counts: dict[str, int] | None, kind: str) -> None:
    if counts is not None:
        counts[kind] = counts.get(kind, 0) + 1


def _old_name_starts(text: str, thorough: bool) -> list[int]:
    starts = []
    finder: Any = _PY_CANDIDATE if thorough else screens().candidates_str
    for m in finder.finditer(text):
        run = m.group(1)
        if is_sensitive_key(run):
            stripped = run.rstrip(" ")
            starts.append(m.start(1) + stripped.rfind(" ") + 1)
    return starts


def _old_replacement(pattern: Pattern, match: re.Match[str], counts: dict[str, int] | None) -> str | None:
    span = pattern.secret_span(match)
    if span is None or span[0] == span[1]:
        return None
    if match.string.startswith(MARKER_PREFIX, span[0]) or not pattern.accepts(match):
        return None
    _count(counts, pattern.kind)
    start, whole = match.start(), match.group(0)
    return whole[: span[0] - start] + MARKER.format(kind=pattern.kind) + whole[span[1] - start :]


def _old_apply(pattern: Pattern, text: str, counts: dict[str, int] | None) -> str:
    def sub(match: re.Match[str]) -> str:
        replaced = _old_replacement(pattern, match, counts)
        return match.group(0) if replaced is None else replaced

    return pattern.regex.sub(sub, text)


def _old_apply_at(pattern: Pattern, text: str, starts: list[int], counts: dict[str, int] | None) -> str:
    out: list[str] = []
    last = 0
    for pos in starts:
        if pos < last:
            continue
        match = pattern.regex.match(text, pos)
        if match is None:
            continue
        replaced = _old_replacement(pattern, match, counts)
        if replaced is None:
            continue
        out.append(text[last : match.start()])
        out.append(replaced)
        last = match.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _old_patterns(
    text: str, which: frozenset[int] | set[int], counts: dict[str, int] | None, thorough: bool
) -> str:
    for index, pattern in enumerate(PATTERNS):
        if index not in which:
            continue
        if pattern.screen is None:
            text = _old_apply_at(pattern, text, _old_name_starts(text, thorough), counts)
        else:
            text = _old_apply(pattern, text, counts)
    return text


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value or MARKER_RE.fullmatch(value) is not None
    return value is None or (isinstance(value, list | dict | tuple) and len(value) == 0)


def _looks_like_header_name(name: str) -> bool:
    if _HEADER_NAME.fullmatch(name) is None:
        return False
    return name.lower() in _CREDENTIAL_HEADERS or "-" in name or "_" in name or name[:1].isupper()


def _looks_like_credential(value: str | bytes) -> bool:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return (
        len(text) >= 8
        and not any(c.isspace() for c in text)
        and any(c.isdigit() for c in text)
        and any(c.isalpha() for c in text)
    )


def _key_marker(key: str, counts: dict[str, int] | None) -> str:
    kind = key_kind(key)
    _count(counts, "key:" + kind)
    return MARKER.format(kind=kind)


class OldWalker:
    """The walk over structures as it was (thorough: every pattern; else the screens' picks)."""

    def __init__(self, counts: dict[str, int] | None, thorough: bool) -> None:
        self.counts = counts
        self.thorough = thorough

    def string(self, text: str) -> str:
        if len(text) < 6:
            return text
        return scrub_known_credentials(self._string(text), self.counts)

    def _string(self, text: str) -> str:
        if self.thorough:
            which: frozenset[int] | set[int] = _ALL
        else:
            which = screens().hits(text)
            if not which:
                return text
        stripped = text.strip()
        if (stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]")) or (
            len(stripped) >= 2 and stripped[0] == '"' and stripped[-1] == '"'
        ):
            redacted = self.nested_json(stripped)
            if redacted is not None:
                return redacted if redacted is not stripped else text
        return _old_patterns(text, which, self.counts, self.thorough)

    def nested_json(self, text: str) -> str | None:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(parsed, dict | list | str):
            return None
        local: dict[str, int] = {}
        redacted = OldWalker(local, self.thorough).value(parsed, 64)
        if not local:
            return text
        if self.counts is not None:
            for kind, n in local.items():
                self.counts[kind] = self.counts.get(kind, 0) + n
        return orjson.dumps(redacted).decode()

    def key(self, key: Any) -> Any:
        return self.string(key) if isinstance(key, str) else key

    def value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.string(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if depth <= 0:
            return "[TRUNCATED:depth]"
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and is_sensitive_key(key) and not _is_empty(item):
                    out[self.key(key)] = _key_marker(key, self.counts)
                else:
                    out[self.key(key)] = self.value(item, depth - 1)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            if (
                len(items) == 2
                and isinstance(items[0], str)
                and _HEADER_NAME.fullmatch(items[0]) is not None
                and is_sensitive_key(items[0])
                and isinstance(items[1], str | bytes)
                and not _is_empty(items[1])
                and (_looks_like_header_name(items[0]) or _looks_like_credential(items[1]))
            ):
                return [self.string(items[0]), _key_marker(items[0], self.counts)]
            return [self.value(item, depth - 1) for item in items]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
            return self.value(fields, depth - 1)
        return orjson.loads(dumps(value))


def old_redact(value: Any, counts: dict[str, int] | None = None, *, thorough: bool = False) -> Any:
    """``redact`` as it was, for plain JSON values (what journals hold)."""
    if thorough or isinstance(value, str):
        return OldWalker(counts, thorough).value(value, 64)
    if value is None or isinstance(value, bool | int | float):
        return value
    raw = dumps(value)
    if not screens().dirty_bytes(raw):
        return value
    return OldWalker(counts, False).value(value, 64)


# ---------------------------------------------------------------------------------------------
# Generated payloads
# ---------------------------------------------------------------------------------------------

#: Pieces that sit next to secrets, break them or look like them.
NOISE = [
    " ", "\n", "\t", "\x0b", "\r\n", ", ", "; ", '"', "'", "\\", '\\"', "\\t", "\\n", "<", ">", "=",
    ": ", " = ", "://", "@", "/", "?", "&", "#", "é", "中", "Bearer ", "Basic ", "token ", "key ",
    "password is ", "api_key=", "PASSWORD=", "secret: ", "Authorization: ", "Cookie: a=b; ",
    "sk-", "ghp_", "AKIA", "eyJ", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
    "[REDACTED:openai_key]", "prompt_tokens: ", "commit ", "0123456789abcdef0123456789abcdef",
    "Zq8c1x9VbN3mK2pL7wR4tY6u", "user", "assistant", "max_tokens", "\u2028",
]  # fmt: skip
KEYS = [
    "content", "role", "name", "messages", "model", "id", "args", "text", "headers", "api_key",
    "password", "X-Api-Key", "Authorization", "token_count", "max_tokens", "cache_key", "secret_ref",
    "dsn", "prompt_tokens",
]  # fmt: skip


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Prose, noise and planted secrets of every kind, glued in any order."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        choice = draw(st.integers(0, 9))
        if choice <= 2:
            parts.append(sample(draw(st.sampled_from(KINDS)), rng).text)
        elif choice == 3:
            parts.append(draw(st.sampled_from(KEY_NAMES)) + draw(st.sampled_from([": ", "=", '": "'])))
            parts.append(bare_secret(rng))
        elif choice <= 6:
            parts.append(draw(st.sampled_from(NOISE)))
        else:
            parts.append(draw(st.text(alphabet=string.printable + "é中", max_size=24)))
    return "".join(parts)


def _json_values(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), texts()), children, max_size=4),
        st.tuples(st.sampled_from((*KEY_NAMES, "Content-Type", "token")), texts()).map(list),
        children.map(lambda v: orjson.dumps(v).decode()),
    )


PAYLOADS = st.recursive(
    st.one_of(texts(), st.integers(-(2**40), 2**40), st.none(), st.booleans(), st.sampled_from(NOISE)),
    _json_values,
    max_leaves=12,
)


def _same(new: Any, old: Any, new_counts: dict[str, int], old_counts: dict[str, int]) -> None:
    assert orjson.dumps(new) == orjson.dumps(old)
    assert new_counts == old_counts


@PROPERTY
@given(PAYLOADS)
def test_the_thorough_pass_finds_what_it_found(payload: Any) -> None:
    new_counts: dict[str, int] = {}
    old_counts: dict[str, int] = {}
    new = redact(payload, new_counts, thorough=True)
    _same(new, old_redact(payload, old_counts, thorough=True), new_counts, old_counts)
    again: dict[str, int] = {}  # a second time, from the remembered results
    _same(redact(payload, again, thorough=True), new, again, new_counts)


@PROPERTY
@given(PAYLOADS)
def test_the_hot_path_finds_what_it_found(payload: Any) -> None:
    for _ in range(2):  # the second time from the remembered results
        new_counts: dict[str, int] = {}
        old_counts: dict[str, int] = {}
        new = redact(payload, new_counts)
        _same(new, old_redact(payload, old_counts), new_counts, old_counts)
        json_counts: dict[str, int] = {}
        from_bytes = redact_json(dumps(payload), json_counts)
        _same(from_bytes, old_redact(orjson.loads(dumps(payload)), {}), json_counts, old_counts)


@PROPERTY
@given(texts())
def test_text_finds_what_it_found(text: str) -> None:
    for thorough in (True, False):
        new_counts: dict[str, int] = {}
        old_counts: dict[str, int] = {}
        new = redact_text(text, new_counts, thorough=thorough)
        assert new == OldWalker(old_counts, thorough).string(text)
        assert new_counts == old_counts


# ---------------------------------------------------------------------------------------------
# The supersets
# ---------------------------------------------------------------------------------------------


def _superset_matches(pattern: Pattern, text: str) -> bool:
    expression = superset_expression(pattern.source, pattern.flags)
    assert expression is not None, pattern.kind
    return re2.search(expression, text) is not None


@PROPERTY
@given(st.sampled_from(PATTERNS), texts())
def test_a_superset_matches_wherever_its_pattern_does(pattern: Pattern, text: str) -> None:
    if pattern.regex.search(text) is not None:
        assert _superset_matches(pattern, text), (pattern.kind, text)


@pytest.mark.parametrize("kind", KINDS)
def test_every_planted_kind_is_seen_by_its_superset(kind: str) -> None:
    rng = random.Random(19)
    for _ in range(20):
        text = sample(kind, rng).text
        for pattern in PATTERNS:
            if pattern.regex.search(text) is not None:
                assert _superset_matches(pattern, text), (pattern.kind, text)
                assert PATTERNS.index(pattern) in screens().exact.possible(text)


#: (Python expression, flags, a text it matches): each row a construct the translation widens.
CONSTRUCTS = [
    (r"a\sb", re.ASCII, "a\x0bb"),  # Python's \s holds \v, RE2's does not
    (r"a[\s]b", re.ASCII, "a\x0bb"),
    (r"a[^\S]b", re.ASCII, "a\x0bb"),
    (r"x\Z", re.ASCII, "x"),
    (r"x$", re.ASCII, "x\n"),  # $ before a final newline
    (r"^x", re.ASCII | re.MULTILINE, "a\nx"),
    (r"(?<![a-z])key", re.ASCII, "key"),
    (r"(?P<q>['\"])v(?P=q)", re.ASCII, "'v'"),
    (r"a{3,600}+b", re.ASCII, "a" * 500 + "b"),
    (r"a{146}", re.ASCII, "a" * 146),
    (r"(?i)bearer", re.ASCII, "BEARER"),
    (r"(?i:x)y", re.ASCII, "Xy"),
    (r"a.b", re.ASCII | re.DOTALL, "a\nb"),
    (r"a.b", re.ASCII, "a\u00e9b"),
    (r"(?>ab|a)c", re.ASCII, "abc"),
    (r"(a)?(?(1)b|c)", re.ASCII, "c"),
    (r"\bword\b", re.ASCII, "a word."),
    (r"[^\s@]+@", re.ASCII, "user\u00e9@"),
    (r"\w+\d\W", re.ASCII, "ab1!"),
]


@pytest.mark.parametrize(("source", "flags", "text"), CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_each_construct_is_widened_not_narrowed(source: str, flags: int, text: str) -> None:
    assert re.search(source, text, flags) is not None
    expression = superset_expression(source, flags)
    if expression is not None:  # None: a pattern that is always run
        assert re2.search(expression, text) is not None, expression


def test_a_text_re2_cannot_read_runs_every_pattern() -> None:
    text = "\ud800 key sk-proj-Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdF"
    assert screens().exact.possible(text) == _ALL
    assert "Zq8c1x9VbN3mK2pL7wR4" not in redact_text(text, thorough=True)


# ---------------------------------------------------------------------------------------------
# Remembered results
# ---------------------------------------------------------------------------------------------

ECHO = "Incorrect API key provided: plainlowercaseletterskeyvaluezzzz. Check it."


@pytest.mark.parametrize("thorough", [True, False])
@pytest.mark.parametrize("shape", ["text", "dict", "json"])
def test_a_value_remembered_after_a_string_was_seen_is_still_scrubbed(thorough: bool, shape: str) -> None:
    value: Any = {"text": ECHO, "json": orjson.dumps({"error": ECHO}).decode(), "dict": {"error": ECHO}}[
        shape
    ]
    assert redact(value, thorough=thorough) == value  # seen once, nothing to remove
    remember_credential("plainlowercaseletterskeyvaluezzzz")
    counts: dict[str, int] = {}
    out = orjson.dumps(redact(value, counts, thorough=thorough)).decode()
    assert "plainlowercaseletterskeyvaluezzzz" not in out
    assert counts == {"credential": 1}
    forget_credentials()
    assert redact(value, thorough=thorough) == value


def test_counts_are_given_again_for_a_remembered_result() -> None:
    text = "use sk-proj-Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdF twice: sk-proj-Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdG"
    for _ in range(3):
        counts: dict[str, int] = {}
        assert redact_text(text, counts, thorough=True).count("[REDACTED:openai_key]") == 2
        assert counts == {"openai_key": 2}


# ---------------------------------------------------------------------------------------------
# The sanitize pass over journals
# ---------------------------------------------------------------------------------------------


def _old_journal_lines(lines: list[bytes]) -> list[bytes]:
    out = []
    for line in lines:
        record = orjson.loads(line)
        rest = {k: v for k, v in record.items() if k not in ("totals", "redactions", "sanitized")}
        local: dict[str, int] = {}
        cleaned = old_redact(rest, local, thorough=True)
        out.append(orjson.dumps({**record, **cleaned}) if local else line)
    return out


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PAYLOADS, min_size=1, max_size=6))
def test_a_journal_sanitized_as_before(tmp_path_factory: pytest.TempPathFactory, payloads: list[Any]) -> None:
    lines = [
        orjson.dumps({"type": "llm_call", "id": f"00000000-0000-4000-8000-{i:012d}", "seq": i, "request": p})
        for i, p in enumerate(payloads)
    ]
    path: Path = tmp_path_factory.mktemp("journal") / "j.jsonl"
    path.write_bytes(b"\n".join(lines))
    expected = _old_journal_lines(lines)
    sanitize_journal(path)
    assert path.read_bytes().split(b"\n") == expected


def test_forget_results_makes_the_next_call_compute_again() -> None:
    text = "key sk-proj-Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdF"
    first: dict[str, int] = {}
    second: dict[str, int] = {}
    out = redact_text(text, first)
    forget_results()
    assert redact_text(text, second) == out
    assert first == second == {"openai_key": 1}


# ---------------------------------------------------------------------------------------------
# Chat requests: screened message by message, a conversation's earlier messages not again
# ---------------------------------------------------------------------------------------------

MESSAGES = st.lists(
    st.dictionaries(st.one_of(st.sampled_from(KEYS), texts()), PAYLOADS, max_size=4), max_size=4
)


@PROPERTY
@given(MESSAGES, MESSAGES, st.dictionaries(st.sampled_from(KEYS), PAYLOADS, max_size=3))
def test_a_growing_conversation_finds_what_it_found(
    first: list[Any], later: list[Any], rest: dict[str, Any]
) -> None:
    """Each call of a conversation repeats the earlier messages (screened clean once, then
    remembered): the request redacts as the oracle does, the recorder's bytes are those of
    ``serialize.dumps``, and "clean" means the oracle finds nothing."""
    history: list[Any] = []
    for turn in (first, later, []):
        history = history + turn
        request = {"messages": history, **{k: v for k, v in rest.items() if k != "messages"}}
        screened = screened_request(request)
        assert screened is not None
        raw, clean = screened
        assert raw == dumps(request)
        new_counts: dict[str, int] = {}
        old_counts: dict[str, int] = {}
        _same(redact(request, new_counts), old_redact(request, old_counts), new_counts, old_counts)
        if clean:
            assert old_counts == {}


def test_a_message_screened_clean_is_scanned_again_once_a_credential_is_remembered() -> None:
    value = "Zq8c1x9VbN3mK2pL7wR4tY6uI0oPaSdF-custom-credential"
    request = {"messages": [{"role": "user", "content": f"try {value} please"}], "model": "m"}
    assert screened_request(request) == (dumps(request), True)
    remember_credential(value)
    raw, clean = screened_request(request)
    assert (raw, clean) == (dumps(request), False)
    counts: dict[str, int] = {}
    assert value not in orjson.dumps(redact(request, counts)).decode()
    assert counts == {"credential": 1}


@pytest.mark.parametrize(
    "value",
    [
        {"model": "m", "messages": []},  # messages not first: serialized whole
        {"messages": ({"content": "x"},)},  # not a list
        {},
        ["messages"],
    ],
)
def test_other_values_are_not_read_as_requests(value: Any) -> None:
    assert screened_request(value) is None


def test_a_request_with_text_that_is_not_valid_unicode_serializes_as_dumps_does() -> None:
    request = {"messages": [{"role": "user", "content": "bad \ud800 text"}, {"c": 1}], "stream": False}
    raw, clean = screened_request(request)
    assert raw == dumps(request) and clean
