"""Control characters in ids, names and content are shown escaped in every admin page, list,
timeline, chart label and CSV export, and never reorder the text around them (issue 15,
item 10); CSV keeps its formula-injection defence."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from ag2_logging.models import AgentEvent, LLMCall, ModelPrice, ToolCall
from ag2_logging.pipeline.rollups import rebuild_rollups
from ag2_logging.reports import safe_cell
from ag2_logging.reports.text import BIDI_CONTROLS, INVISIBLE, html_visible, is_control, visible
from tests.report_data import at, call, session, week_params
from tests.test_admin_reports import client_for, read_csv, staff

# The reported characters, then one of each other kind.
CONTROLS = [
    ("\x00", "\\x00"),  # NUL
    ("\u202e", "\\u202e"),  # RIGHT-TO-LEFT OVERRIDE
    ("\u202a", "\\u202a"),
    ("\u2066", "\\u2066"),
    ("\u2069", "\\u2069"),
    ("\u200e", "\\u200e"),
    ("\u200f", "\\u200f"),
    ("\u061c", "\\u061c"),
    ("\x1b", "\\x1b"),  # ESC (terminal sequences)
    ("\x7f", "\\x7f"),
    ("\x85", "\\x85"),  # C1 NEXT LINE
    ("\x9b", "\\x9b"),  # C1 CSI
    # Invisible format characters: look-alike names, text hidden from readers.
    ("\u200b", "\\u200b"),  # ZERO WIDTH SPACE
    ("\ufeff", "\\ufeff"),  # BOM / ZERO WIDTH NO-BREAK SPACE
    ("\xad", "\\xad"),  # SOFT HYPHEN
    ("\u2062", "\\u2062"),  # INVISIBLE TIMES
    ("\u180e", "\\u180e"),  # MONGOLIAN VOWEL SEPARATOR
    ("\ufff9", "\\ufff9"),  # INTERLINEAR ANNOTATION ANCHOR
    ("\u2028", "\\u2028"),  # LINE SEPARATOR
    ("\u2029", "\\u2029"),  # PARAGRAPH SEPARATOR
    ("\U000e0041", "\\U000e0041"),  # TAG LATIN CAPITAL LETTER A
    ("\U000e007f", "\\U000e007f"),  # CANCEL TAG
]
EVERY_CONTROL = [
    chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), *sorted(BIDI_CONTROLS), *sorted(INVISIBLE))
]


def _raw_controls(text: str, *, allowed: str = "\t\n\r") -> list[str]:
    return sorted({hex(ord(ch)) for ch in text if is_control(ord(ch)) and ch not in allowed})


# -- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(("char", "shown"), CONTROLS)
def test_visible_escapes_each_kind(char: str, shown: str) -> None:
    assert visible(f"ab{char}cd") == f"ab{shown}cd"
    assert visible(f"ab{char}cd", multiline=True) == f"ab{shown}cd"


@pytest.mark.parametrize("joiner", ["\u200c", "\u200d"])
def test_joiners_kept_in_text_escaped_in_names(joiner: str) -> None:
    # Emoji sequences and Persian or Indic text need them; in an id or a name they only make
    # look-alikes ("assistant" and "assistant" + ZWJ).
    family = f"\U0001f468{joiner}\U0001f469"
    assert visible(family, multiline=True) == family
    assert html_visible(f"<p>{family}</p>") == f"<p>{family}</p>"
    assert visible(f"assistant{joiner}") == f"assistant\\u{ord(joiner):04x}"


def test_tab_and_newline_kept_only_where_content_may_span_lines() -> None:
    assert visible("a\tb\nc") == "a\\x09b\\x0ac"
    assert visible("a\tb\nc\r", multiline=True) == "a\tb\nc\\x0d"


@given(st.text(alphabet=st.sampled_from([*EVERY_CONTROL, "a", "é", "=", "\\", "\u05d0"]), max_size=40))
def test_no_control_survives_and_other_text_is_untouched(text: str) -> None:
    shown = visible(text)
    assert not _raw_controls(shown, allowed="")
    kept = "".join(ch for ch in text if not is_control(ord(ch)))
    assert visible(kept) == kept  # text without controls is left as it is
    assert len(shown) == len(kept) + sum(len(visible(ch)) for ch in text if is_control(ord(ch)))
    assert not _raw_controls(html_visible(text), allowed="\t\n\r\u200c\u200d")  # joiners: text needs them


@given(
    st.text(
        alphabet=st.sampled_from([*EVERY_CONTROL, "a", "é", "\t", "\n", "\r", "\u200c", "\ue000"]),
        max_size=40,
    )
)
def test_the_fast_path_is_the_translation(text: str) -> None:
    """``visible`` and ``html_visible`` skip ``str.translate`` for text without a character to
    escape: whatever the text, the answer is the translation's, a plain ``str`` (a ``SafeString``
    in is never a ``SafeString`` out: the template escapes it as before)."""
    from django.utils.safestring import SafeString, mark_safe

    from ag2_logging.reports import text as module

    assert visible(text) == text.translate(module._SINGLE_LINE)
    assert visible(text, multiline=True) == text.translate(module._MULTILINE)
    assert html_visible(text) == text.translate(module._HTML)
    assert not isinstance(visible(mark_safe(text)), SafeString)
    assert not isinstance(html_visible(mark_safe(text)), SafeString)


# -- CSV ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "multiline", "cell"),
    [
        ("chat\x00id", False, "chat\\x00id"),
        ("\u202eexe.txt", False, "\\u202eexe.txt"),
        ("=1+1\u202e", False, "'=1+1\\u202e"),  # the formula defence still applies
        ("\u202e=1+1", False, "\\u202e=1+1"),  # no longer starts with "=": text already
        ("\tbad", True, "'\tbad"),  # an error may hold a tab: kept, and still defused
        ("\tbad", False, "\\x09bad"),
        ("line 1\nline 2\x00", True, "line 1\nline 2\\x00"),
        ("-2+3", False, "'-2+3"),
    ],
)
def test_csv_cells_escape_controls_and_keep_the_formula_defence(
    value: str, multiline: bool, cell: str
) -> None:
    assert safe_cell(value, multiline=multiline) == cell


# -- every admin page -----------------------------------------------------------------------


def _evil_rows(char: str) -> tuple[object, LLMCall]:
    s = session(f"chat{char}1", f"acme{char}", f"triage{char}", at(1))
    c = call(
        s,
        1,
        model=f"gpt{char}-4o",
        agent=f"agent{char}",
        start=at(1, 10, 0, 1),
        prompt=10,
        completion=5,
        cost=Decimal("0.001"),
        latency_ms=120,
        error=f"boom{char}\nsecond line",
        status="error",
    )
    LLMCall.objects.filter(pk=c.pk).update(
        response_id=f"resp{char}", request={"messages": [{"content": f"hi{char}"}]}
    )
    ToolCall.objects.create(
        id=uuid.uuid4(),
        session=s,
        seq=2,
        agent_name=f"agent{char}",
        name=f"tool{char}",
        result_summary=f"res{char}",
        started_at=at(1, 10, 0, 2),
        ended_at=at(1, 10, 0, 3),
    )
    AgentEvent.objects.create(
        id=uuid.uuid4(),
        session=s,
        seq=3,
        agent_name=f"agent{char}",
        name=f"event{char}",
        created_at=at(1, 10, 0, 4),
    )
    ModelPrice.objects.create(
        model=f"gpt{char}*", input_per_mtok=1, output_per_mtok=2, currency_note=f"n{char}"
    )
    rebuild_rollups()
    return s, c


@pytest.mark.django_db
@pytest.mark.parametrize(("char", "shown"), CONTROLS[:3] + CONTROLS[8:11])
def test_admin_pages_and_exports_show_controls_escaped(char: str, shown: str) -> None:
    from django.db import connection

    if char == "\x00" and connection.vendor == "postgresql":
        pytest.skip("PostgreSQL text cannot hold NUL (ingest removes it); the rule is tested above")
    s, c = _evil_rows(char)
    tool = ToolCall.objects.get()
    event = AgentEvent.objects.get()
    user = staff("viewer")
    user.is_superuser = True
    user.save()
    client: Client = client_for(user)
    pages = [
        reverse("admin:ag2_logging_session_changelist"),
        reverse("admin:ag2_logging_session_change", args=[s.pk]),  # type: ignore[attr-defined]
        reverse("admin:ag2_logging_session_timeline", args=[s.pk]),  # type: ignore[attr-defined]
        reverse("admin:ag2_logging_llmcall_changelist"),
        reverse("admin:ag2_logging_llmcall_change", args=[c.pk]),
        reverse("admin:ag2_logging_toolcall_changelist"),
        reverse("admin:ag2_logging_toolcall_change", args=[tool.pk]),
        reverse("admin:ag2_logging_agentevent_changelist"),
        reverse("admin:ag2_logging_agentevent_change", args=[event.pk]),
        reverse("admin:ag2_logging_dailyrollup_changelist"),
        reverse("admin:ag2_logging_modelprice_changelist"),
        reverse("admin:ag2_logging_report_overview") + "?" + _query(),
        reverse("admin:ag2_logging_report_models") + "?" + _query(),
        *(
            reverse("admin:ag2_logging_report_breakdown", args=[d]) + "?" + _query()
            for d in ("enterprise", "workflow", "model", "agent", "day")
        ),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert not _raw_controls(page), url
        assert shown in page, url
    exports = [
        reverse("admin:ag2_logging_session_export"),
        reverse("admin:ag2_logging_llmcall_export"),
        reverse("admin:ag2_logging_toolcall_export"),
        reverse("admin:ag2_logging_agentevent_export"),
        reverse("admin:ag2_logging_dailyrollup_export"),
        reverse("admin:ag2_logging_session_timeline", args=[s.pk]) + "?format=csv",  # type: ignore[attr-defined]
        *(
            reverse("admin:ag2_logging_report_breakdown", args=[d]) + "?" + _query(format="csv")
            for d in ("enterprise", "workflow", "model", "agent")
        ),
        reverse("admin:ag2_logging_report_models") + "?" + _query(format="csv"),
        reverse("admin:ag2_logging_report_overview") + "?" + _query(format="csv"),
    ]
    for url in exports:
        rows = read_csv(client.get(url))
        cells = [v for row in rows for v in row.values()]
        assert not any(_raw_controls(v, allowed="\t\n") for v in cells), url
        assert any(shown in v for v in cells), url
    # Errors may span lines: the newline is kept there (and only there).
    calls = read_csv(client.get(reverse("admin:ag2_logging_llmcall_export")))
    assert calls[0]["error"] == f"boom{shown}\nsecond line"
    assert calls[0]["model"] == f"gpt{shown}-4o"


def _query(**extra: str) -> str:
    from urllib.parse import urlencode

    return urlencode(week_params(**extra))


@pytest.mark.django_db
def test_names_with_newlines_are_escaped_in_lists_not_in_errors() -> None:
    s = session("two\nlines", "acme", "triage", at(1, 9))
    call(
        s,
        1,
        model="m",
        start=at(1, 9, 0, 1),
        cost=Decimal(0),
        latency_ms=1,
        status="error",
        error="first\nsecond",
    )
    client = client_for(staff("v", "view_session", "view_llmcall"))
    listing = client.get(reverse("admin:ag2_logging_session_changelist")).content.decode()
    assert "two\\x0alines" in listing and "two\nlines" not in listing
    change = client.get(reverse("admin:ag2_logging_llmcall_change", args=[LLMCall.objects.get().pk]))
    assert "first<br>second" in change.content.decode()
    assert dt.date.today()
