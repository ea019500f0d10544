"""The redaction engine: the screens over every pattern, and applying patterns to text.

Nothing is compiled at import: :func:`screens` builds the screens (one RE2 automaton over every
pattern's screen, plus the identifiers that resemble secret names) the first time a redaction
needs them, and each pattern's own expression is compiled on its first use. Without google-re2
the same screens run on Python's ``re``.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from ag2_logging.redaction.patterns import (
    MARKER,
    MARKER_PREFIX,
    PATTERNS,
    SCREEN_QUOTE,
    SCREEN_WS,
    SENSITIVE_KEYS,
    SENSITIVE_SUBSTRINGS,
    SENSITIVE_SUFFIXES,
    Pattern,
    is_sensitive_key,
)
from ag2_logging.redaction.superset import superset_expression

try:  # pragma: no branch - google-re2 is a dependency; the fallback keeps odd platforms working
    import re2 as _re2

    HAVE_RE2 = True
except ImportError:  # pragma: no cover
    _re2 = None
    HAVE_RE2 = False

_UNANCHORED: Any = getattr(getattr(_re2, "_Anchor", None), "UNANCHORED", None)

__all__ = ["ALL", "HAVE_RE2", "SHORTEST", "count", "redact_patterns", "screens"]

# ---------------------------------------------------------------------------------------------
# Screens: one automaton over all patterns, plus identifiers that resemble secret names
# ---------------------------------------------------------------------------------------------


def _word(word: str) -> str:
    # "_" in a normalized name stands for "_", "-", ".", " " or a camelCase boundary.
    return "".join("[_.\\- ]?" if c == "_" else re.escape(c) for c in word)


def _candidate_regex() -> str:
    """RE2: an identifier that may be a secret name, then an optional (escaped) quote and a
    separator: JSON keys (``"api_key":``), list pairs (``"Authorization",``), assignments
    (``DB_PASSWORD=``, ``token: ``, ``\\"pwd\\":``), XML elements (``<password>``).

    It accepts every name :func:`is_sensitive_key` accepts (and a few more, such as ``monkey``):
    names ending in a sensitive word, or holding a sensitive substring. The captured run is the
    identifier's last run of ``[A-Za-z0-9_.- ]`` characters, which normalizes to the same last
    segment as the full key, so ``is_sensitive_key(capture)`` is the verdict on the real name.
    Token counts (``prompt_tokens``, ``max_tokens``) end in no sensitive word and never match,
    which keeps the clean path to one scan.
    """
    words = sorted(SENSITIVE_KEYS | {suffix[1:] for suffix in SENSITIVE_SUFFIXES}, key=len, reverse=True)
    ending = "|".join(_word(w) for w in words)
    inside = "|".join(_word(w) for w in SENSITIVE_SUBSTRINGS)
    run = r"[A-Za-z0-9_.\- ]*"
    return rf"(?i)({run}(?:(?:{inside}){run}|(?:{ending})))" + SCREEN_QUOTE + SCREEN_WS + r"*[:=,>]"


_CANDIDATE = _candidate_regex()
#: The same for Python's ``re`` (the thorough pass, and platforms without google-re2): every run
#: before a separator, taken whole (possessive, from its first character: linear time), judged by
#: is_sensitive_key alone.
_PY_CANDIDATE = r"(?<![A-Za-z0-9_.\- ])([A-Za-z0-9_.\- ]++)" + SCREEN_QUOTE + SCREEN_WS + r"*[:=,>]"


def _found(compiled: Any, data: bytes) -> bool:
    """Does RE2 ``compiled`` (a bytes expression) match somewhere in ``data``? Asked of the
    compiled program directly when the binding exposes it: its ``search`` builds a generator and
    a match object per call, a third of the cost of scanning a short text."""
    regexp = getattr(compiled, "_regexp", None)
    if regexp is None or _UNANCHORED is None:  # pragma: no cover - another binding version
        return compiled.search(data) is not None
    return bool(regexp.Match(_UNANCHORED, data, 0, len(data))[0][0] != -1)


class _Engine:
    """The compiled screens, for ``str`` and ``bytes`` haystacks."""

    def __init__(self, patterns: tuple[Pattern, ...]) -> None:
        self.screened = [(i, p.screen) for i, p in enumerate(patterns) if p.screen is not None]
        self.identifier_patterns = frozenset(i for i, p in enumerate(patterns) if p.screen is None)
        screens = "|".join(f"(?:{screen})" for _, screen in self.screened)
        # One pass decides the clean case: no screen and no candidate name anywhere.
        everything = f"{screens}|(?:{_CANDIDATE})"
        if _re2 is not None:
            options = _re2.Options()
            options.max_mem = 64 << 20
            self.any_bytes = _re2.compile(everything.encode(), options)
            self.screens_bytes = _re2.compile(screens.encode(), options)
            self.candidates_bytes = _re2.compile(_CANDIDATE.encode(), options)
            self.candidates_str = _re2.compile(_CANDIDATE, options)
            self.set_str = _re2.Set.SearchSet(options)
            for _, screen in self.screened:
                self.set_str.Add(screen)
            self.set_str.Compile()
        else:  # pragma: no cover - exercised only without google-re2
            self.py_screens = [(i, re.compile(s)) for i, s in self.screened]
            self.candidates_str = re.compile(_PY_CANDIDATE)
            self.candidates_bytes = re.compile(_PY_CANDIDATE.encode())
        self.py_candidates_str = re.compile(_PY_CANDIDATE)
        self.exact = _Exact(patterns)

    def dirty_bytes(self, data: bytes) -> bool:
        if _re2 is not None:
            if not _found(self.any_bytes, data):
                return False
            if _found(self.screens_bytes, data):
                return True
        else:  # pragma: no cover
            text = data.decode("utf-8", "replace")
            if any(r.search(text) for _, r in self.py_screens):
                return True
        return any(
            is_sensitive_key(m.group(1).decode("utf-8", "replace"))
            for m in self.candidates_bytes.finditer(data)
        )

    def sensitive_identifier(self, text: str) -> bool:
        return any(is_sensitive_key(m.group(1)) for m in self.candidates_str.finditer(text))

    def name_starts(self, text: str, *, thorough: bool = False) -> list[int]:
        """Where the last word of each sensitive name starts (``DB_PASSWORD`` in ``export DB_PASSWORD=``).

        ``thorough``: found with Python's ``re`` rather than RE2 (the sanitize pass trusts no
        screen).
        """
        starts = []
        finder = self.py_candidates_str if thorough else self.candidates_str
        for m in finder.finditer(text):
            run = m.group(1)
            if is_sensitive_key(run):
                stripped = run.rstrip(" ")
                starts.append(m.start(1) + stripped.rfind(" ") + 1)
        return starts

    def hits(self, text: str) -> set[int]:
        """Indices of the patterns worth running on ``text`` (empty: nothing to do)."""
        if _re2 is not None:
            if not _found(self.any_bytes, text.encode()):
                return set()
            found = {self.screened[j][0] for j in self.set_str.Match(text) or ()}
        else:  # pragma: no cover
            found = {i for i, r in self.py_screens if r.search(text)}
        if self.sensitive_identifier(text):
            found |= self.identifier_patterns
        return found

    def dirty_text(self, text: str) -> bool:
        return bool(self.hits(text))


class _Exact:
    """Which patterns can match a text at all (:mod:`~ag2_logging.redaction.superset`): one RE2
    search over every pattern's superset decides "none" (the common case), an RE2 set says which.
    Exact, so the thorough pass may rely on it; patterns without a superset are always run."""

    def __init__(self, patterns: tuple[Pattern, ...]) -> None:
        expressions = [superset_expression(p.source, p.flags) for p in patterns]
        self.always = frozenset(i for i, e in enumerate(expressions) if e is None)
        self.indices = [i for i, e in enumerate(expressions) if e is not None]
        self.gate: Any = None
        self.set: Any = None
        if _re2 is None or not self.indices:  # pragma: no cover - without google-re2 every pattern runs
            return
        options = _re2.Options()
        options.max_mem = 64 << 20
        try:
            gate = _re2.compile("|".join(expressions[i] or "" for i in self.indices).encode(), options)
            found = _re2.Set.SearchSet(options)
            for i in self.indices:
                found.Add((expressions[i] or "").encode())
            found.Compile()
        except Exception:  # pragma: no cover - past RE2's budget: every pattern runs
            return
        self.gate, self.set = gate, found

    def possible(self, text: str) -> frozenset[int]:
        """Indices of the patterns that can match somewhere in ``text`` (a superset of those
        that do)."""
        if self.gate is None:  # pragma: no cover
            return ALL
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: RE2 cannot read it, every pattern runs
            return ALL
        if not _found(self.gate, data):
            return self.always
        found = self.set.Match(data)
        if not found:  # the set's automaton ran out of memory (the gate, which falls back, matched)
            return ALL
        return self.always.union(self.indices[j] for j in found)


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def screens() -> _Engine:
    """The compiled screens, built on first use (once per process, whichever thread asks first)."""
    built = _engine
    if built is None:
        with _engine_lock:
            built = _engine or _build()
    return built


def _build() -> _Engine:
    global _engine
    _engine = _Engine(PATTERNS)
    return _engine


#: No pattern matches fewer characters than this (``://:x@``), so shorter strings are skipped.
SHORTEST = 6
ALL = frozenset(range(len(PATTERNS)))


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def count(counts: dict[str, int] | None, kind: str) -> None:
    if counts is not None:
        counts[kind] = counts.get(kind, 0) + 1


def _replacement(pattern: Pattern, match: re.Match[str], counts: dict[str, int] | None) -> str | None:
    """The text that replaces ``match`` (None: leave it)."""
    span = pattern.secret_span(match)
    if span is None or span[0] == span[1]:
        return None
    # A marker is never redacted again (idempotence), even when a pattern's value class stops
    # short of its closing bracket.
    if match.string.startswith(MARKER_PREFIX, span[0]) or not pattern.accepts(match):
        return None
    count(counts, pattern.kind)
    start, whole = match.start(), match.group(0)
    return whole[: span[0] - start] + MARKER.format(kind=pattern.kind) + whole[span[1] - start :]


def _apply(pattern: Pattern, text: str, counts: dict[str, int] | None) -> str:
    changed = False

    def sub(match: re.Match[str]) -> str:
        nonlocal changed
        replaced = _replacement(pattern, match, counts)
        if replaced is None:
            return match.group(0)
        changed = True
        return replaced

    out = pattern.regex.sub(sub, text)
    return out if changed else text  # matches all refused: the caller's own object


def _apply_at(pattern: Pattern, text: str, starts: list[int], counts: dict[str, int] | None) -> str:
    """Like :func:`_apply`, trying the pattern only where a sensitive name starts."""
    out: list[str] = []
    last = 0
    for pos in starts:
        if pos < last:
            continue
        match = pattern.regex.match(text, pos)
        if match is None:
            continue
        replaced = _replacement(pattern, match, counts)
        if replaced is None:
            continue
        out.append(text[last : match.start()])
        out.append(replaced)
        last = match.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def redact_patterns(
    text: str, which: frozenset[int] | set[int], counts: dict[str, int] | None, *, thorough: bool = False
) -> str:
    """Apply the patterns of ``which`` in table order, each to what the previous ones left.

    ``thorough``: a pattern that cannot match the current text (its RE2 superset finds nothing)
    is skipped, which changes no result; after a replacement the question is asked again of the
    new text. The hot path runs its screens' few picks as they are (another RE2 pass would cost
    more than it saves).
    """
    engine = screens()
    todo = sorted(engine.exact.possible(text).intersection(which) if thorough else which)
    starts: list[int] | None = None  # where sensitive names start in the current text
    while todo:
        index = todo.pop(0)
        pattern = PATTERNS[index]
        if pattern.screen is None:
            if starts is None:
                starts = engine.name_starts(text, thorough=thorough)
            new = _apply_at(pattern, text, starts, counts)
        else:
            new = _apply(pattern, text, counts)
        if new is not text:
            text, starts = new, None
            if thorough:
                todo = sorted(i for i in engine.exact.possible(text).intersection(which) if i > index)
    return text
