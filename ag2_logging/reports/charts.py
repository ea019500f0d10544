"""Chart geometry for the report pages, rendered as inline SVG by the app's own templates.

Nothing here draws: each function turns report figures into plain shapes (rectangles, ticks,
labels with coordinates in a fixed ``viewBox``) that ``templates/admin/ag2_logging/charts/*.html``
write out as SVG. Inline SVG needs no JavaScript, scales with the page and prints. Colours follow
the Okabe-Ito palette, which stays distinguishable with the common colour-vision deficiencies;
every shape also carries a ``<title>`` with its figures, and every chart sits next to a table
with the same numbers.

Moved from ``ag2_logging.charts`` (a deprecated alias for one release).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from ag2_logging import formats

#: Okabe & Ito (2008), "Color Universal Design": blue, orange, bluish green, vermillion, sky blue,
#: reddish purple, yellow. Black is left out (it reads as text); grey is "other".
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442")
OTHER_COLOR = "#8C8C8C"
UNKNOWN_COLOR = "#D55E00"


def assign_colors(names: Sequence[str], other: str = "other") -> dict[str, str]:
    """A colour per name in order; the palette repeats only past seven names."""
    colors: dict[str, str] = {}
    i = 0
    for name in names:
        if name == other:
            colors[name] = OTHER_COLOR
        else:
            colors[name] = PALETTE[i % len(PALETTE)]
            i += 1
    return colors


def nice_step(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above ``value``."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    base = 10.0**exponent
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * base * (1 + 1e-9):
            return step * base
    return 10 * base


def ticks(maximum: float, count: int = 4) -> list[float]:
    """Axis ticks from 0 in round steps (1, 2, 2.5 or 5 x 10^k), about ``count`` of them, the last
    at or above ``maximum``."""
    if maximum <= 0:
        return [float(i) for i in range(count + 1)]
    step = nice_step(maximum / count)
    n = max(1, math.ceil(maximum / step - 1e-9))
    return [round(step * i, 12) for i in range(n + 1)]


def short_number(value: float) -> str:
    """1234 -> '1.23k', 0.5 -> '0.5': below a thousand, :func:`formats.show`'s digits."""
    magnitude = abs(value)
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= size:
            return f"{formats.show(value / size)}{suffix}"
    return formats.show(value)


def short_money(value: float) -> str:
    """$1.23k from a thousand dollars up; below, :func:`formats.show` as money ($0.0095)."""
    if abs(value) >= 1000:
        return ("-" if value < 0 else "") + formats.CURRENCY + short_number(abs(value))
    return formats.show(value, money=True)


def truncate(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str
    css: str = ""


@dataclass
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"
    title: str = ""
    css: str = ""


@dataclass
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    css: str = ""


@dataclass
class LegendItem:
    name: str
    color: str
    value: str = ""


@dataclass
class Chart:
    """Shapes in a ``width`` x ``height`` viewBox, plus an HTML legend and an accessible summary."""

    width: float
    height: float
    title: str
    summary: str
    rects: list[Rect] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    markers: list[Label] = field(default_factory=list)
    legend: list[LegendItem] = field(default_factory=list)
    empty: bool = False

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width:g} {self.height:g}"


def _day_label(day: dt.date, previous: dt.date | None) -> str:
    """'Oct 27' for the first label and the first of each month, then '30', '02' ..."""
    if previous is None or previous.month != day.month:
        return day.strftime("%b %d")
    return day.strftime("%d")


def stacked_bars(
    *,
    title: str,
    days: Sequence[dt.date],
    series: Mapping[str, Sequence[Decimal | int | float]],
    colors: Mapping[str, str],
    unknown: Sequence[int] = (),
    money: bool = True,
    legend_values: Mapping[str, str] | None = None,
    width: float = 920,
    height: float = 260,
) -> Chart:
    """One bar per day, stacked by series (bottom to top in ``series`` order). Days with unpriced
    calls get a marker: their bar is a lower bound."""
    left, right, top, bottom = 64.0, 12.0, 14.0, 36.0
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(days), 1)
    totals = [sum(float(series[name][i]) for name in series) for i in range(len(days))]
    fmt = short_money if money else short_number
    axis = ticks(max(totals, default=0.0))
    chart = Chart(width=width, height=height, title=title, summary="")
    chart.empty = not any(totals) and not any(unknown)
    _value_axis(chart, axis, fmt, left=left, right=right, top=top, plot_h=plot_h)
    slot = plot_w / n
    bar_w = max(slot * 0.78, 1.0)
    every = max(1, math.ceil(n / 12))
    labelled: dt.date | None = None
    for i, day in enumerate(days):
        x = left + slot * i + (slot - bar_w) / 2
        y = _day_stack(
            chart,
            day,
            i,
            series,
            colors,
            fmt,
            x=x,
            bar_w=bar_w,
            base=top + plot_h,
            plot_h=plot_h,
            top_value=axis[-1],
        )
        if i % every == 0:
            chart.labels.append(
                Label(x + bar_w / 2, height - bottom + 16, _day_label(day, labelled), css="axis")
            )
            labelled = day
        if i < len(unknown) and unknown[i]:
            chart.markers.append(_unknown_marker(day, unknown[i], x=x + bar_w / 2, y=max(y - 4, top + 8)))
    chart.lines.append(Line(left, top + plot_h, width - right, top + plot_h, css="baseline"))
    chart.legend = _series_legend(series, colors, legend_values or {}, fmt)
    chart.summary = _days_summary(days, totals, fmt)
    return chart


def _value_axis(
    chart: Chart,
    axis: Sequence[float],
    fmt: Callable[[float], str],
    *,
    left: float,
    right: float,
    top: float,
    plot_h: float,
) -> None:
    """Grid lines and their labels at each tick of ``axis`` (the last tick is the top)."""
    for value in axis:
        y = top + plot_h - plot_h * value / axis[-1]
        chart.lines.append(Line(left, y, chart.width - right, y, css="grid"))
        chart.labels.append(Label(left - 6, y + 4, fmt(value), anchor="end", css="axis"))


def _day_stack(
    chart: Chart,
    day: dt.date,
    i: int,
    series: Mapping[str, Sequence[Decimal | int | float]],
    colors: Mapping[str, str],
    fmt: Callable[[float], str],
    *,
    x: float,
    bar_w: float,
    base: float,
    plot_h: float,
    top_value: float,
) -> float:
    """The stacked rectangles of day ``i``; returns the top of the stack."""
    y = base
    for name, values in series.items():
        value = float(values[i])
        if value <= 0:
            continue
        h = plot_h * value / top_value
        y -= h
        chart.rects.append(
            Rect(x, y, bar_w, h, colors.get(name, OTHER_COLOR), f"{day.isoformat()} · {name}: {fmt(value)}")
        )
    return y


def _unknown_marker(day: dt.date, unpriced: int, *, x: float, y: float) -> Label:
    """The "?" over a day whose bar is a lower bound."""
    return Label(
        x, y, "?", title=f"{day.isoformat()}: {unpriced} unpriced call(s), cost unknown", css="unknown"
    )


def _series_legend(
    series: Mapping[str, Sequence[Decimal | int | float]],
    colors: Mapping[str, str],
    legend_values: Mapping[str, str],
    fmt: Callable[[float], str],
) -> list[LegendItem]:
    return [
        LegendItem(
            name,
            colors.get(name, OTHER_COLOR),
            legend_values.get(name) or fmt(float(sum((Decimal(v) for v in values), Decimal(0)))),
        )
        for name, values in series.items()
    ]


def _days_summary(days: Sequence[dt.date], totals: Sequence[float], fmt: Callable[[float], str]) -> str:
    peak = max(range(len(totals)), key=lambda i: totals[i]) if totals else None
    return (
        f"{len(days)} days, total {fmt(sum(totals))}"
        + (
            f", highest on {days[peak].isoformat()} ({fmt(totals[peak])})"
            if peak is not None and totals[peak]
            else ""
        )
        + "."
    )


def horizontal_bars(
    *,
    title: str,
    items: Sequence[tuple[str, float, str]],
    colors: Mapping[str, str] | None = None,
    width: float = 560,
    row_height: float = 26,
    label_chars: int = 30,
) -> Chart:
    """One bar per (name, fraction 0..1, value text), longest first as given."""
    left, right = 210.0, 130.0
    plot_w = width - left - right
    height = max(row_height * len(items), row_height) + 8
    chart = Chart(width=width, height=height, title=title, summary="")
    chart.empty = not items
    for i, (name, fraction, text) in enumerate(items):
        y = 4 + row_height * i
        color = (colors or {}).get(name, PALETTE[0])
        w = max(plot_w * max(fraction, 0.0), 1.0 if fraction > 0 else 0.0)
        chart.labels.append(
            Label(left - 8, y + row_height / 2 + 4, truncate(name, label_chars), anchor="end", title=name)
        )
        chart.rects.append(Rect(left, y + 4, w, row_height - 8, color, f"{name}: {text}"))
        chart.labels.append(Label(left + w + 6, y + row_height / 2 + 4, text, anchor="start", css="value"))
    chart.summary = "; ".join(f"{name}: {text}" for name, _fraction, text in items[:5])
    return chart


def histogram(
    *,
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[int]],
    colors: Mapping[str, str],
    width: float = 560,
    height: float = 240,
) -> Chart:
    """Calls per latency bucket, stacked by series."""
    left, right, top, bottom = 52.0, 10.0, 18.0, 40.0
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    axis = ticks(max(totals, default=0))
    top_value = axis[-1]
    chart = Chart(width=width, height=height, title=title, summary="")
    chart.empty = not any(totals)
    for value in axis:
        y = top + plot_h - plot_h * value / top_value
        chart.lines.append(Line(left, y, width - right, y, css="grid"))
        chart.labels.append(Label(left - 6, y + 4, short_number(value), anchor="end", css="axis"))
    slot = plot_w / n
    bar_w = slot * 0.82
    grand = sum(totals) or 1
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for name, values in series.items():
            if not values[i]:
                continue
            h = plot_h * values[i] / top_value
            y -= h
            chart.rects.append(
                Rect(x, y, bar_w, h, colors.get(name, OTHER_COLOR), f"{label} · {name}: {values[i]} calls")
            )
        if totals[i]:
            chart.labels.append(Label(x + bar_w / 2, y - 4, f"{totals[i] / grand:.0%}", css="value small"))
        chart.labels.append(Label(x + bar_w / 2, height - bottom + 16, label, css="axis small"))
    chart.lines.append(Line(left, top + plot_h, width - right, top + plot_h, css="baseline"))
    chart.legend = [
        LegendItem(name, colors.get(name, OTHER_COLOR), f"{sum(values)} calls")
        for name, values in series.items()
    ]
    chart.summary = ", ".join(f"{label}: {total}" for label, total in zip(labels, totals, strict=True))
    return chart


KIND_COLORS = {"llm": PALETTE[0], "tool": PALETTE[1], "event": OTHER_COLOR}


def lanes(
    *,
    title: str,
    agents: Sequence[str],
    steps: Sequence[object],
    span_s: float,
    width: float = 920,
    lane_height: float = 30,
) -> Chart:
    """A lane per agent: LLM calls and tool calls as bars over the session's time, events as ticks.

    ``steps`` are ``reports.Step`` (kind, agent, offset_s, duration_ms, name, error).
    """
    left, right, top, bottom = 130.0, 16.0, 8.0, 30.0
    lanes_list = list(agents) or [""]
    plot_w = width - left - right
    height = top + lane_height * len(lanes_list) + bottom
    chart = Chart(width=width, height=height, title=title, summary="")
    axis = ticks(span_s, 5)
    scale = plot_w / axis[-1]
    for value in axis:
        x = left + value * scale
        chart.lines.append(Line(x, top, x, height - bottom, css="grid"))
        chart.labels.append(Label(x, height - bottom + 16, f"{short_number(value)} s", css="axis"))
    index = {agent: i for i, agent in enumerate(lanes_list)}
    for agent, i in index.items():
        y = top + lane_height * i
        chart.labels.append(
            Label(
                left - 8,
                y + lane_height / 2 + 4,
                truncate(agent or "(no agent)", 18),
                anchor="end",
                title=agent,
            )
        )
        chart.lines.append(Line(left, y + lane_height, width - right, y + lane_height, css="lane"))
    for step in steps:
        offset = getattr(step, "offset_s", None)
        if offset is not None:
            lane_top = top + lane_height * index.get(getattr(step, "agent", ""), 0)
            chart.rects.append(
                _step_rect(
                    step,
                    offset,
                    x=left + max(offset, 0.0) * scale,
                    y=lane_top,
                    scale=scale,
                    lane_height=lane_height,
                )
            )
    chart.legend = [
        LegendItem("LLM call", KIND_COLORS["llm"]),
        LegendItem("tool call", KIND_COLORS["tool"]),
        LegendItem("agent event", KIND_COLORS["event"]),
        LegendItem("error (outlined)", UNKNOWN_COLOR),
    ]
    chart.summary = f"{len(steps)} steps by {len(agents)} agents over {span_s:.2f} s."
    return chart


def _step_rect(step: object, offset: float, *, x: float, y: float, scale: float, lane_height: float) -> Rect:
    """One step in its lane: a bar as long as it took (calls), a tick (events)."""
    kind = getattr(step, "kind", "event")
    duration = (getattr(step, "duration_ms", None) or 0) / 1000
    name = getattr(step, "name", "")
    error = getattr(step, "error", "")
    label = {"llm": "LLM call", "tool": "tool call", "event": "event"}[kind]
    text = f"{label} {name} at +{offset:.2f} s" + (f", {duration * 1000:.0f} ms" if duration else "")
    if error:
        text += f" — error: {truncate(error, 80)}"
    if kind == "event":
        return Rect(x - 1, y + lane_height * 0.62, 2, lane_height * 0.3, KIND_COLORS[kind], text, "event")
    pad = 5 if kind == "llm" else 9
    return Rect(
        x,
        y + pad,
        max(duration * scale, 3.0),
        lane_height * 0.62 - pad,
        KIND_COLORS[kind],
        text,
        "error" if error else kind,
    )
