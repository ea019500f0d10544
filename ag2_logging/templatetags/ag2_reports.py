"""Formatting for the report pages: money, unknown costs, shares, token counts, latencies."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

register = template.Library()


def format_money(value: Decimal | float | int | None) -> str:
    """$1,234.56 from a dollar up; below, three significant digits ($0.612, $0.000425); None is ''."""
    if value is None:
        return ""
    amount = Decimal(str(value)) if not isinstance(value, Decimal) else value
    if amount == 0:
        return "$0.00"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    exponent = amount.adjusted()  # position of the first significant digit
    return f"${amount:.{max(-exponent + 2, 2)}f}"


@register.filter
def money(value: Decimal | float | int | None) -> str:
    return format_money(value) if value is not None else _("unknown")


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
def num(value: int | float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


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
