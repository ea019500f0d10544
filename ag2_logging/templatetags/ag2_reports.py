"""Formatting for the report pages: money, unknown costs, shares, token counts, latencies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from ag2_logging.formats import show
from ag2_logging.reports.text import visible as _visible

register = template.Library()


@register.filter
def svg_shapes(chart: Any) -> SafeString:
    """The SVG elements of a ``reports.charts.Chart``: its lines, rectangles, labels and markers,
    each with its ``<title>``, written in one pass. Four template loops wrote the same markup,
    character for character, at a few hundred microseconds a shape through the template engine:
    a 90-day stacked chart has over a thousand, most of the overview page's time."""

    def f1(value: Any) -> str:
        return "%.1f" % value  # noqa: UP031 - stringformat's own operator (a Decimal as a float)

    def f2(value: Any) -> str:
        return "%.2f" % value  # noqa: UP031

    def text(value: Any) -> str:
        return escape(visible(value))

    def css(value: Any) -> str:
        return f' class="{escape(value)}"' if value else ""

    groups = [
        "".join(
            f'<line x1="{f1(ln.x1)}" y1="{f1(ln.y1)}" x2="{f1(ln.x2)}" y2="{f1(ln.y2)}"'
            f' class="{escape(ln.css)}"/>'
            for ln in chart.lines
        ),
        "".join(
            f'<rect x="{f2(r.x)}" y="{f2(r.y)}" width="{f2(r.width)}" height="{f2(r.height)}"'
            f' fill="{escape(r.color)}"{css(r.css)}><title>{text(r.title)}</title></rect>'
            for r in chart.rects
        ),
        "".join(
            f'<text x="{f1(t.x)}" y="{f1(t.y)}" text-anchor="{escape(t.anchor)}"{css(t.css)}>'
            + (f"<title>{text(t.title)}</title>" if t.title else "")
            + text(t.text)
            + "</text>"
            for t in chart.labels
        ),
        "".join(
            f'<text x="{f1(t.x)}" y="{f1(t.y)}" text-anchor="middle" class="{escape(t.css)}">'
            f"<title>{text(t.title)}</title>{text(t.text)}</text>"
            for t in chart.markers
        ),
    ]
    # The template's line breaks between the four kinds, kept.
    return mark_safe("\n    ".join(groups))  # every value above is escaped


@register.filter
def visible(value: Any, multiline: bool = False) -> str:
    """Text from the record with its control characters escaped (NUL as ``\\x00``, U+202E as
    ``\\u202e``; tab and newline kept with ``multiline``); '' for None."""
    if value is None:
        return ""
    return _visible(str(value), multiline=bool(multiline))


def format_money(value: Decimal | float | int | None) -> str:
    """$1,234.56 from a dollar up; below, three significant digits ($0.612, $0.000425, $0.0095);
    None is '' (:func:`ag2_logging.formats.show`)."""
    return show(value, money=True, empty="")


def money_text(value: Decimal | float | int | None) -> str:
    """:func:`format_money`, or the word "unknown" for None (an unknown cost is never $0)."""
    return format_money(value) if value is not None else str(_("unknown"))


@register.filter
def money(value: Decimal | float | int | None) -> str:
    return money_text(value)


@register.filter
def cost(figures: Any) -> SafeString:
    """The cost of a ``reports.Figures``: unknown when every call is unpriced, a lower bound
    (≥) when some are; never 0 for calls without a price."""
    state = figures.cost_state
    if state == "none":
        return mark_safe('<span class="ag2-quiet">—</span>')
    if state == "unknown":
        return format_html(
            '<span class="ag2-unknown" title="{}">{}</span>',
            _("%(n)s call(s) without a price") % {"n": figures.unpriced},
            _("unknown"),
        )
    text = format_money(figures.priced_cost)
    if state == "partial":
        return format_html(
            '<span class="ag2-partial" title="{}">≥ {}</span>',
            _("at least: %(n)s call(s) without a price are not included") % {"n": figures.unpriced},
            text,
        )
    return format_html("{}", text)


@register.filter
def call_cost(value: Decimal | None) -> SafeString:
    if value is None:
        return format_html(
            '<span class="ag2-unknown" title="{}">{}</span>', _("no price for this model"), _("unknown")
        )
    return format_html("{}", format_money(value))


@register.filter
def pct(value: float | None, places: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{places}f}%"


@register.filter
def num(value: int | float | Decimal | None) -> str:
    """A count or measure for the page: ``9,000``, ``12.5``, ``0.000123``; "—" for None."""
    return show(value)


@register.filter
def ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms"


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"+{value:,.2f} s"


@register.filter
def bar_width(value: float | None) -> str:
    """A share as a CSS width (the share bars in tables)."""
    if not value:
        return "0%"
    return f"{max(min(value, 1.0), 0.0) * 100:.1f}%"


@register.filter
def moment(value: dt.datetime | None, *, millis: bool = False, stacked: bool = False) -> SafeString | str:
    """A point in time for a list or a page: in the admin's time zone, to the second (to the
    millisecond with ``millis``: events of one session are that close), the date without the
    year when it is this year (``Nov 30, 15:32:07``; with ``stacked``, the time over the date,
    for a narrow list column); the UTC time on hover (``title``) and in ``datetime``. "—" for
    None."""
    if value is None:
        return "—"
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    utc = value.astimezone(dt.UTC) if timezone.is_aware(value) else value
    day = date_format(local, "M j" if local.year == timezone.localtime().year else "M j, Y")
    clock = local.strftime("%H:%M:%S") + (f".{local.microsecond // 1000:03d}" if millis else "")
    template = (
        '<time datetime="{}" title="{} UTC">{}<br><small class="ag2-quiet">{}</small></time>'
        if stacked
        else '<time datetime="{}" title="{} UTC">{}, {}</time>'
    )
    utc_text = utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}"
    if stacked:
        return format_html(template, utc.isoformat(), utc_text, clock, day)
    return format_html(template, utc.isoformat(), utc_text, day, clock)
