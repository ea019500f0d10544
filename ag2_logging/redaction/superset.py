"""RE2 supersets of the Python patterns: which patterns can match a text at all, in one pass.

:func:`superset_expression` translates a pattern's Python expression (parsed by ``re``'s own
parser, so flags and escapes mean exactly what they mean to ``re``) into an RE2 expression that
matches somewhere in every text the Python one matches somewhere: look-arounds and anchors are
dropped, possessive, atomic and lazy repeats become greedy ones, a back-reference becomes its
group's expression, counted repeats above 64 become open, and ``\\s`` keeps Python's ``\\v``.
Each step only widens what matches, so a pattern whose superset finds nothing in a text cannot
change it, and skipping it is exact: this is what lets the thorough pass (which trusts no
hand-written screen) run only the patterns that can match. A construct the translation does not
know (a Unicode class, a ``[^\\S]``) makes the pattern one that is always run.
"""

from __future__ import annotations

import re
from re import _parser as _re_parser  # type: ignore[attr-defined]
from typing import Any

__all__ = ["superset_expression"]

_MAXREPEAT: Any = _re_parser.MAXREPEAT
#: Counted repeats above this become open (``x{146}`` -> ``x{64,}``): a superset, and a small
#: automaton.
_MAX_COUNT = 64
_ASCII_CATEGORIES = {
    "CATEGORY_DIGIT": "0-9",
    "CATEGORY_WORD": "0-9A-Za-z_",
    # Python's ASCII \s also holds \v, which RE2's \s does not.
    "CATEGORY_SPACE": "\\t\\n\\x0b\\f\\r ",
    # RE2's complements hold at least what Python's do (\S holds \v): supersets.
    "CATEGORY_NOT_DIGIT": "\\D",
    "CATEGORY_NOT_WORD": "\\W",
    "CATEGORY_NOT_SPACE": "\\S",
}


class _Unsupported(Exception):
    """A construct the translation does not handle: the pattern is always run."""


def _char(code: int) -> str:
    return chr(code) if chr(code).isascii() and chr(code).isalnum() else f"\\x{{{code:x}}}"


class _Superset:
    """Translate a parsed Python expression into an RE2 expression that matches every text the
    Python one can match somewhere (look-arounds and anchors dropped, possessive and lazy
    repeats made greedy, back-references replaced by their group's expression)."""

    def __init__(self) -> None:
        self.groups: dict[int, Any] = {}

    def seq(self, items: Any, dotall: bool) -> str:
        return "".join(self.item(op, av, dotall) for op, av in items)

    def item(self, op: Any, av: Any, dotall: bool) -> str:
        name = str(op)
        if name == "LITERAL":
            return _char(av)
        if name == "NOT_LITERAL":
            return f"[^{_char(av)}]"
        if name == "ANY":
            return "(?s:.)" if dotall else "[^\\n]"
        if name == "IN":
            return self.char_class(av)
        if name in ("AT", "ASSERT", "ASSERT_NOT"):
            return ""
        if name == "BRANCH":
            return "(?:" + "|".join(self.seq(alt, dotall) for alt in av[1]) + ")"
        if name == "SUBPATTERN":
            return self.subpattern(av, dotall)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            return self.repeat(av, dotall)
        if name == "ATOMIC_GROUP":
            return "(?:" + self.seq(av, dotall) + ")"
        if name == "GROUPREF" and av in self.groups:
            return "(?:" + self.seq(*self.groups[av]) + ")"
        if name == "GROUPREF_EXISTS":
            return "(?:" + self.seq(av[1], dotall) + "|" + self.seq(av[2] or [], dotall) + ")"
        raise _Unsupported(name)

    def subpattern(self, av: Any, dotall: bool) -> str:
        group, add_flags, del_flags, items = av
        inner_dotall = (dotall or bool(add_flags & re.DOTALL)) and not del_flags & re.DOTALL
        case = "i" if add_flags & re.IGNORECASE else ""
        uncase = "-i" if del_flags & re.IGNORECASE else ""
        if group is not None:
            self.groups[group] = (items, inner_dotall)
        return f"(?{case}{uncase}:" + self.seq(items, inner_dotall) + ")"

    def repeat(self, av: Any, dotall: bool) -> str:
        low, high, items = av
        body = "(?:" + self.seq(items, dotall) + ")"
        low = min(low, _MAX_COUNT)
        if high == _MAXREPEAT or high > _MAX_COUNT:
            return body + ("*" if low == 0 else "+" if low == 1 else f"{{{low},}}")
        return body + f"{{{low},{high}}}"

    def char_class(self, items: Any) -> str:
        negate = False
        parts = []
        for op, av in items:
            name = str(op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                parts.append(_char(av))
            elif name == "RANGE":
                parts.append(f"{_char(av[0])}-{_char(av[1])}")
            elif name == "CATEGORY" and str(av) in _ASCII_CATEGORIES:
                parts.append(_ASCII_CATEGORIES[str(av)])
            else:
                raise _Unsupported(name)
        if negate and any(p in ("\\D", "\\W", "\\S") for p in parts):
            raise _Unsupported("negated complement")  # [^\S] would lose \v
        return "[" + ("^" if negate else "") + "".join(parts) + "]"


def superset_expression(source: str, flags: int = re.ASCII) -> str | None:
    """An RE2 expression matching somewhere in every text where ``re.compile(source, flags)``
    matches somewhere (None: a construct it cannot translate; such a pattern is always run).

    Only ASCII-flagged expressions are translated (Unicode classes are not)."""
    if not flags & re.ASCII:
        return None
    try:
        parsed = _re_parser.parse(source, flags)
        all_flags = parsed.state.flags
        body = _Superset().seq(list(parsed), bool(all_flags & re.DOTALL))
    except (_Unsupported, re.error, RecursionError):
        return None
    return ("(?i:" + body + ")") if all_flags & re.IGNORECASE else "(?:" + body + ")"
