"""Text from the record made safe to show: control characters escaped visibly.

Ids, names, errors and bodies come from the model, the provider and the caller, and may hold NUL,
other C0/C1 controls and the Unicode bidirectional controls (U+202E RIGHT-TO-LEFT OVERRIDE, ...),
which hide text or reorder what is around them. Every page, list, timeline, chart label and CSV
export shows them as escapes instead: ``\\x00``, ``\\x1b``, ``\\x9b`` (code points below U+0100),
``\\u202e`` (the others). The invisible format characters (zero-width spaces, BOM, soft
hyphen, the tag characters U+E0000-U+E007F...) are escaped the same way, so ``assistant`` and
``assistant`` plus a hidden tag never look alike. Tab and newline are kept only where the content may span lines
(errors, result summaries, bodies): :func:`visible` with ``multiline=True``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["BIDI_CONTROLS", "INVISIBLE", "JOINERS", "html_visible", "is_control", "visible"]

#: The bidirectional formatting characters: ALM, LRM, RLM, LRE..RLO (U+202A-U+202E), LRI..PDI
#: (U+2066-U+2069).
BIDI_CONTROLS: Final = frozenset({0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})


def _invisible_formats() -> frozenset[int]:
    """The invisible format characters (Unicode category Cf: zero-width space, BOM, soft hyphen,
    invisible operators, interlinear annotations, the tag characters U+E0000-U+E007F that hide
    text from readers...) and the line and paragraph separators U+2028/U+2029 (Zl, Zp)."""
    candidates = [
        0x00AD, *range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x180E,
        *range(0x200B, 0x2010), 0x2028, 0x2029, *range(0x2060, 0x2070), 0xFEFF, *range(0xFFF9, 0xFFFC),
        0x110BD, 0x110CD, *range(0x13430, 0x13440), *range(0x1BCA0, 0x1BCA4), *range(0x1D173, 0x1D17B),
        *range(0xE0000, 0xE0080),
    ]  # fmt: skip
    return frozenset(cp for cp in candidates if unicodedata.category(chr(cp)) in {"Cf", "Zl", "Zp", "Cn"})


#: Invisible characters escaped everywhere (with the bidirectional controls).
INVISIBLE: Final = _invisible_formats() - BIDI_CONTROLS
#: Joiners that text needs (emoji sequences, Persian and Indic scripts): kept in multi-line
#: content, escaped in single-line values (ids, names), where they only make look-alikes.
JOINERS: Final = frozenset({0x200C, 0x200D})


def is_control(code_point: int) -> bool:
    """C0 (U+0000-U+001F), DEL, C1 (U+0080-U+009F), a bidirectional control or an invisible
    format character (:data:`INVISIBLE`)."""
    return (
        code_point < 0x20
        or 0x7F <= code_point <= 0x9F
        or code_point in BIDI_CONTROLS
        or code_point in INVISIBLE
    )


def _escape(code_point: int) -> str:
    if code_point < 0x100:
        return f"\\x{code_point:02x}"
    return f"\\u{code_point:04x}" if code_point <= 0xFFFF else f"\\U{code_point:08x}"


def _table(keep: frozenset[int]) -> dict[int, str]:
    codes = [*range(0x20), *range(0x7F, 0xA0), *BIDI_CONTROLS, *INVISIBLE]
    return {cp: _escape(cp) for cp in codes if cp not in keep}


def _finder(table: dict[int, str]) -> re.Pattern[str]:
    """A pattern matching any character ``table`` escapes: a search in C finds text with none
    (nearly all of it) at a fraction of ``str.translate``'s cost, a dictionary lookup a character."""
    ranges: list[list[int]] = []
    for cp in sorted(table):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    # As ranges: a class of a few dozen ranges is a fast bitmap test, one of every character not.
    return re.compile("[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]")


_SINGLE_LINE: Final = _table(frozenset())
_MULTILINE: Final = _table(frozenset({0x09, 0x0A}) | JOINERS)
#: HTML: carriage returns are whitespace too (a template saved with CRLF line ends has them).
_HTML: Final = _table(frozenset({0x09, 0x0A, 0x0D}) | JOINERS)
_FIND: Final = {id(t): _finder(t) for t in (_SINGLE_LINE, _MULTILINE, _HTML)}


def _translate(text: str, table: dict[int, str]) -> str:
    """``text.translate(table)``: the text itself when it holds none of the table's characters
    (a ``str`` subclass such as ``SafeString`` is still translated: the result is a plain ``str``)."""
    if type(text) is str and _FIND[id(table)].search(text) is None:
        return text
    return text.translate(table)


def visible(text: str, *, multiline: bool = False) -> str:
    """``text`` with every control character escaped (``"a\\x00b"`` -> ``"a\\\\x00b"``); with
    ``multiline``, tab and newline are kept. Other text is returned unchanged."""
    return _translate(text, _MULTILINE if multiline else _SINGLE_LINE)


def html_visible(html: str) -> str:
    """A rendered page with the control characters its data brought escaped (tab, newline and
    carriage return are HTML whitespace and kept): the last pass over every admin page of the
    app, so no value reaches the browser raw whatever template or widget showed it."""
    return _translate(html, _HTML)
